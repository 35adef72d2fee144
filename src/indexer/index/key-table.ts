// The request-key table: an open-addressing hash table (linear probing, backward-shift deletion) from
// 64-bit block keys, stored as (lo, hi) uint32 columns, to dense key records. A record holds the head
// of its entry list and a CLOCK reference bit; CLOCK (second chance on store and on lookup) approximates
// LRU eviction with one byte per key instead of two list pointers.

import { growColumn, mixKey, nextCapacity } from './grow.ts';

const LIVE = 1;
const REFERENCED = 2;
const MAX_LOAD = 0.75;

export class KeyTable {
  /** Record id + 1 per slot; 0 is empty. */
  private slots: Int32Array;
  private mask: number;
  /** Key halves per record. */
  lo: Uint32Array;
  hi: Uint32Array;
  /** First entry of the record's entry list (-1: none); for free records, the next free record. */
  head: Int32Array;
  private flags: Uint8Array;
  private freeHead = -1;
  private used = 0;
  private hand = 0;
  size = 0;
  readonly maxKeys: number;

  constructor(maxKeys: number, initialCapacity = 1024) {
    this.maxKeys = maxKeys;
    const cap = Math.min(initialCapacity, maxKeys);
    this.lo = new Uint32Array(cap);
    this.hi = new Uint32Array(cap);
    this.head = new Int32Array(cap).fill(-1);
    this.flags = new Uint8Array(cap);
    let slotCap = 16;
    while (slotCap * MAX_LOAD < cap) slotCap *= 2;
    this.slots = new Int32Array(slotCap);
    this.mask = slotCap - 1;
  }

  /** The record id of key (hi:lo), or -1. */
  find(lo: number, hi: number): number {
    const slots = this.slots;
    const mask = this.mask;
    for (let i = mixKey(lo, hi) & mask; ; i = (i + 1) & mask) {
      const s = slots[i]!;
      if (s === 0) return -1;
      const id = s - 1;
      if (this.lo[id] === lo && this.hi[id] === hi) return id;
    }
  }

  /** Adds key (hi:lo), which must be absent and the table below maxKeys; returns its record id. */
  insert(lo: number, hi: number): number {
    let id: number;
    if (this.freeHead >= 0) {
      id = this.freeHead;
      this.freeHead = this.head[id]!;
    } else {
      if (this.used === this.lo.length) this.growRecords();
      id = this.used++;
    }
    this.lo[id] = lo >>> 0;
    this.hi[id] = hi >>> 0;
    this.head[id] = -1;
    // Referenced on insert (classic CLOCK): a new key survives one sweep.
    this.flags[id] = LIVE | REFERENCED;
    this.size++;
    if (this.size > this.slots.length * MAX_LOAD) this.growSlots();
    else this.place(id);
    return id;
  }

  /** Deletes a record (its entry list must already be empty). */
  remove(id: number): void {
    const slots = this.slots;
    const mask = this.mask;
    let i = mixKey(this.lo[id]!, this.hi[id]!) & mask;
    while (slots[i] !== id + 1) i = (i + 1) & mask;
    // Backward-shift deletion keeps probe chains intact without tombstones.
    for (let j = (i + 1) & mask; slots[j] !== 0; j = (j + 1) & mask) {
      const other = slots[j]! - 1;
      const home = mixKey(this.lo[other]!, this.hi[other]!) & mask;
      const movable = j > i ? home <= i || home > j : home <= i && home > j;
      if (movable) {
        slots[i] = slots[j]!;
        i = j;
      }
    }
    slots[i] = 0;
    this.flags[id] = 0;
    this.head[id] = this.freeHead;
    this.freeHead = id;
    this.size--;
  }

  /** Marks a record as recently used (stored or matched by a lookup): CLOCK spares it once. One byte write. */
  touch(id: number): void {
    this.flags[id] = LIVE | REFERENCED;
  }

  /** The next record CLOCK evicts: sweeps from the hand, clearing reference bits, to the first unreferenced live record. */
  victim(): number {
    const flags = this.flags;
    const n = this.used;
    for (;;) {
      if (this.hand >= n) this.hand = 0;
      const id = this.hand++;
      const f = flags[id]!;
      if (f === LIVE) return id;
      if (f & REFERENCED) flags[id] = LIVE;
    }
  }

  isLive(id: number): boolean {
    return id >= 0 && id < this.used && (this.flags[id]! & LIVE) !== 0;
  }

  /** Bytes held by the table's arrays. */
  bytes(): number {
    return this.slots.byteLength + this.lo.byteLength + this.hi.byteLength + this.head.byteLength + this.flags.byteLength;
  }

  private place(id: number): void {
    const mask = this.mask;
    let i = mixKey(this.lo[id]!, this.hi[id]!) & mask;
    while (this.slots[i] !== 0) i = (i + 1) & mask;
    this.slots[i] = id + 1;
  }

  private growRecords(): void {
    const cap = nextCapacity(this.lo.length, this.used + 1, this.maxKeys);
    this.lo = growColumn(this.lo, cap);
    this.hi = growColumn(this.hi, cap);
    this.head = growColumn(this.head, cap, -1);
    this.flags = growColumn(this.flags, cap);
  }

  private growSlots(): void {
    const slots = new Int32Array(this.slots.length * 2);
    const mask = slots.length - 1;
    const lo = this.lo;
    const hi = this.hi;
    const flags = this.flags;
    for (let id = 0; id < this.used; id++) {
      if ((flags[id]! & LIVE) === 0) continue;
      let i = mixKey(lo[id]!, hi[id]!) & mask;
      while (slots[i] !== 0) i = (i + 1) & mask;
      slots[i] = id + 1;
    }
    this.slots = slots;
    this.mask = mask;
  }
}
