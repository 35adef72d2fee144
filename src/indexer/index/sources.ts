// Event sources interned as small ints (entry records store a uint16), the pod each belongs to and the
// model it publishes under (interned too, per source, not per entry). Ids of removed pods' sources are
// reused, so pod churn over months does not exhaust the id space.

import { podOfSourceKey, sourceKey, type EventSource } from '../types.ts';

const MAX_SOURCES = 65536;
/** Model id of a source whose topic names no model (per-pod mode with vLLM's empty default topic). */
export const NO_MODEL = 0;

export class Sources {
  private readonly ids = new Map<string, number>();
  /** Source key by id ('' for a free id). */
  readonly keys: string[] = [];
  /** Pod id by source id. */
  readonly pods: string[] = [];
  private readonly free: number[] = [];
  private readonly byPod = new Map<string, Set<number>>();
  /** Model id by source id (NO_MODEL for a free id). */
  readonly models: number[] = [];
  private readonly modelIds = new Map<string, number>([['', NO_MODEL]]);

  get limit(): number {
    return this.keys.length;
  }

  /**
   * The id of a source, assigning one on first sight; -1 when all 65536 ids are taken. Records the
   * model it names now: a pod restarted with another model keeps its source id under the new model.
   */
  intern(source: Pick<EventSource, 'podId' | 'dpRank' | 'model'>): number {
    const key = sourceKey(source);
    const known = this.ids.get(key);
    if (known !== undefined) {
      this.models[known] = this.modelIdOf(source.model);
      return known;
    }
    let id = this.free.pop();
    if (id === undefined) {
      if (this.keys.length >= MAX_SOURCES) return -1;
      id = this.keys.length;
      this.keys.push('');
      this.pods.push('');
      this.models.push(NO_MODEL);
    }
    this.models[id] = this.modelIdOf(source.model);
    const pod = podOfSourceKey(key);
    this.keys[id] = key;
    this.pods[id] = pod;
    this.ids.set(key, id);
    let set = this.byPod.get(pod);
    if (!set) this.byPod.set(pod, (set = new Set()));
    set.add(id);
    return id;
  }

  /** A model's id, interning it; model names are few (one per served model), so they are kept. */
  private modelIdOf(model: string): number {
    let id = this.modelIds.get(model);
    if (id === undefined) this.modelIds.set(model, (id = this.modelIds.size));
    return id;
  }

  /** A model's id if any source ever published under it, else -1. */
  findModel(model: string): number {
    return this.modelIds.get(model) ?? -1;
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
    this.models[id] = NO_MODEL;
    this.free.push(id);
  }
}
