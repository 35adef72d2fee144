// Engine key -> entry: an open-addressing table over entries, keyed by (engine block hash, source,
// tier, part). It answers BlockRemoved (which names engine hashes) and parent lookups for BlockStored
// (a block's parent lives in the same engine, so the parent's entry gives the parent request key).
// Storing entry ids, not keys, costs 4 bytes a slot; the key columns live in the EntryStore.

import type { EntryStore } from './entry-store.ts';
import { mixKey } from './grow.ts';

const MAX_LOAD = 0.75;

function homeHash(lo: number, hi: number, source: number, tier: number, part: number): number {
  return mixKey(lo ^ Math.imul(source + 1, 0x27d4eb2f) ^ ((tier << 8) | part), hi);
}

export class EngineTable {
  private slots = new Int32Array(1024);
  private mask = 1023;
  private size = 0;
  private readonly entries: EntryStore;

  constructor(entries: EntryStore) {
    this.entries = entries;
  }

  find(lo: number, hi: number, source: number, tier: number, part: number): number {
    const en = this.entries;
    const mask = this.mask;
    for (let i = homeHash(lo, hi, source, tier, part) & mask; ; i = (i + 1) & mask) {
      const s = this.slots[i]!;
      if (s === 0) return -1;
      const e = s - 1;
      if (en.engLo[e] === lo && en.engHi[e] === hi && en.source[e] === source && en.tier[e] === tier && en.part[e] === part) return e;
    }
  }

  /** Adds an entry (whose engine key, source, tier and part are set and not yet in the table). */
  add(e: number): void {
    this.size++;
    if (this.size > this.slots.length * MAX_LOAD) this.rehash(this.slots.length * 2);
    this.place(e);
  }

  remove(e: number): void {
    const slots = this.slots;
    const mask = this.mask;
    let i = this.home(e);
    while (slots[i] !== e + 1) {
      if (slots[i] === 0) return;
      i = (i + 1) & mask;
    }
    for (let j = (i + 1) & mask; slots[j] !== 0; j = (j + 1) & mask) {
      const h = this.home(slots[j]! - 1);
      const movable = j > i ? h <= i || h > j : h <= i && h > j;
      if (movable) {
        slots[i] = slots[j]!;
        i = j;
      }
    }
    slots[i] = 0;
    this.size--;
  }

  bytes(): number {
    return this.slots.byteLength;
  }

  private home(e: number): number {
    const en = this.entries;
    return homeHash(en.engLo[e]!, en.engHi[e]!, en.source[e]!, en.tier[e]!, en.part[e]!) & this.mask;
  }

  private place(e: number): void {
    const mask = this.mask;
    let i = this.home(e);
    while (this.slots[i] !== 0) i = (i + 1) & mask;
    this.slots[i] = e + 1;
  }

  private rehash(capacity: number): void {
    const old = this.slots;
    this.slots = new Int32Array(capacity);
    this.mask = capacity - 1;
    for (let i = 0; i < old.length; i++) if (old[i] !== 0) this.place(old[i]! - 1);
  }
}
