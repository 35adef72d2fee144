// (block, source) entries: a slab of typed-array records with a free list. Each entry sits on two
// lists: its key's (singly linked, short: at most maxPodsPerKey) and its source's (doubly linked), so
// clearing one source walks only that source's entries. Engine keys are kept per entry when the
// index learns engine -> request keys from events (not in engine-key parity mode).

import { growColumn, nextCapacity } from './grow.ts';

export class EntryStore {
  /** Key record id, or -1 for a free entry. */
  key: Int32Array;
  source: Uint16Array;
  tier: Uint8Array;
  /** Which request block of its engine block (engine block larger than the index's), else 0. */
  part: Uint8Array;
  /** Next entry of the same key; for free entries, the next free entry. */
  nextInKey: Int32Array;
  prevInSource: Int32Array;
  nextInSource: Int32Array;
  engLo: Uint32Array;
  engHi: Uint32Array;
  /** Per source id: first entry and entry count. */
  sourceHead: Int32Array = new Int32Array(16).fill(-1);
  sourceCount: Int32Array = new Int32Array(16);
  private readonly withEngineKeys: boolean;
  private freeHead = -1;
  private used = 0;
  size = 0;

  constructor(withEngineKeys: boolean, initialCapacity = 1024) {
    this.withEngineKeys = withEngineKeys;
    const cap = initialCapacity;
    this.key = new Int32Array(cap).fill(-1);
    this.source = new Uint16Array(cap);
    this.tier = new Uint8Array(cap);
    this.part = new Uint8Array(cap);
    this.nextInKey = new Int32Array(cap);
    this.prevInSource = new Int32Array(cap);
    this.nextInSource = new Int32Array(cap);
    this.engLo = new Uint32Array(withEngineKeys ? cap : 0);
    this.engHi = new Uint32Array(withEngineKeys ? cap : 0);
  }

  /** Makes room for source ids below `n`. */
  ensureSources(n: number): void {
    if (n <= this.sourceHead.length) return;
    const cap = nextCapacity(this.sourceHead.length, n, 65536);
    this.sourceHead = growColumn(this.sourceHead, cap, -1);
    this.sourceCount = growColumn(this.sourceCount, cap);
  }

  /** Allocates an entry and links it at the head of its key list (given as the old head) and its source list. */
  allocate(keyId: number, keyHead: number, source: number, tier: number, part: number, engLo: number, engHi: number): number {
    let e: number;
    if (this.freeHead >= 0) {
      e = this.freeHead;
      this.freeHead = this.nextInKey[e]!;
    } else {
      if (this.used === this.key.length) this.grow();
      e = this.used++;
    }
    this.key[e] = keyId;
    this.source[e] = source;
    this.tier[e] = tier;
    this.part[e] = part;
    this.nextInKey[e] = keyHead;
    if (this.withEngineKeys) {
      this.engLo[e] = engLo;
      this.engHi[e] = engHi;
    }
    const head = this.sourceHead[source]!;
    this.prevInSource[e] = -1;
    this.nextInSource[e] = head;
    if (head >= 0) this.prevInSource[head] = e;
    this.sourceHead[source] = e;
    this.sourceCount[source]!++;
    this.size++;
    return e;
  }

  /** Unlinks an entry from its source list and frees it (the caller has unlinked it from its key list). */
  release(e: number): void {
    const source = this.source[e]!;
    const prev = this.prevInSource[e]!;
    const next = this.nextInSource[e]!;
    if (prev >= 0) this.nextInSource[prev] = next;
    else this.sourceHead[source] = next;
    if (next >= 0) this.prevInSource[next] = prev;
    this.sourceCount[source]!--;
    this.key[e] = -1;
    this.nextInKey[e] = this.freeHead;
    this.freeHead = e;
    this.size--;
  }

  bytes(): number {
    return (
      this.key.byteLength +
      this.source.byteLength +
      this.tier.byteLength +
      this.part.byteLength +
      this.nextInKey.byteLength +
      this.prevInSource.byteLength +
      this.nextInSource.byteLength +
      this.engLo.byteLength +
      this.engHi.byteLength +
      this.sourceHead.byteLength +
      this.sourceCount.byteLength
    );
  }

  private grow(): void {
    const cap = nextCapacity(this.key.length, this.used + 1, 0x7fffffff);
    this.key = growColumn(this.key, cap, -1);
    this.source = growColumn(this.source, cap);
    this.tier = growColumn(this.tier, cap);
    this.part = growColumn(this.part, cap);
    this.nextInKey = growColumn(this.nextInKey, cap);
    this.prevInSource = growColumn(this.prevInSource, cap);
    this.nextInSource = growColumn(this.nextInSource, cap);
    if (this.withEngineKeys) {
      this.engLo = growColumn(this.engLo, cap);
      this.engHi = growColumn(this.engHi, cap);
    }
  }
}
