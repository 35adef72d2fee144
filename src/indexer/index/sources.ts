// Event sources interned as small ints (entry records store a uint16), and the pod each belongs to.
// Ids of removed pods' sources are reused, so pod churn over months does not exhaust the id space.

import { podOfSourceKey, sourceKey, type EventSource } from '../types.ts';

const MAX_SOURCES = 65536;

export class Sources {
  private readonly ids = new Map<string, number>();
  /** Source key by id ('' for a free id). */
  readonly keys: string[] = [];
  /** Pod id by source id. */
  readonly pods: string[] = [];
  private readonly free: number[] = [];
  private readonly byPod = new Map<string, Set<number>>();

  get limit(): number {
    return this.keys.length;
  }

  /** The id of a source, assigning one on first sight; -1 when all 65536 ids are taken. */
  intern(source: Pick<EventSource, 'podId' | 'dpRank'>): number {
    const key = sourceKey(source);
    const known = this.ids.get(key);
    if (known !== undefined) return known;
    let id = this.free.pop();
    if (id === undefined) {
      if (this.keys.length >= MAX_SOURCES) return -1;
      id = this.keys.length;
      this.keys.push('');
      this.pods.push('');
    }
    const pod = podOfSourceKey(key);
    this.keys[id] = key;
    this.pods[id] = pod;
    this.ids.set(key, id);
    let set = this.byPod.get(pod);
    if (!set) this.byPod.set(pod, (set = new Set()));
    set.add(id);
    return id;
  }

  find(source: Pick<EventSource, 'podId' | 'dpRank'>): number {
    return this.ids.get(sourceKey(source)) ?? -1;
  }

  /** Source ids of a pod (all its data-parallel ranks). */
  ofPod(podId: string): number[] {
    return [...(this.byPod.get(podId) ?? [])];
  }

  podIds(): string[] {
    return [...this.byPod.keys()];
  }

  /** Frees a source id for reuse (its entries must be gone). */
  release(id: number): void {
    const key = this.keys[id]!;
    const pod = this.pods[id]!;
    this.ids.delete(key);
    const set = this.byPod.get(pod);
    set?.delete(id);
    if (set && set.size === 0) this.byPod.delete(pod);
    this.keys[id] = '';
    this.pods[id] = '';
    this.free.push(id);
  }
}
