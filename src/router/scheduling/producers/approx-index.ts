// The approximate prefix index (GAIE's prefix plugin, for engines without KV events): which endpoint
// was last sent which request block. block hash -> endpoints, with one LRU of bounded size per
// endpoint; an entry evicted from an endpoint's LRU leaves the map with it. Block hashes are numbers
// (53 bits of the 64-bit hash), so lookups allocate nothing.

import { LRUCache } from 'lru-cache';

export class ApproxPrefixIndex {
  readonly #capacity: number;
  readonly #holders = new Map<number, Set<string>>();
  readonly #lrus = new Map<string, LRUCache<number, 1>>();

  constructor(capacityPerEndpoint: number) {
    this.#capacity = capacityPerEndpoint;
  }

  /** Blocks indexed (counting a block once per endpoint holding it). */
  get size(): number {
    let n = 0;
    for (const lru of this.#lrus.values()) n += lru.size;
    return n;
  }

  /**
   * For each of `addresses`, how many of `keys[0..count)` it holds consecutively from the first. Walks
   * the chain once and stops as soon as no address is still matching.
   */
  match(keys: ArrayLike<number>, count: number, addresses: readonly string[]): Map<string, number> {
    const matched = new Map<string, number>();
    let live = addresses.filter((a) => this.#lrus.has(a));
    for (let i = 0; i < count && live.length > 0; i++) {
      const holders = this.#holders.get(keys[i]!);
      if (!holders) break;
      const next: string[] = [];
      for (const a of live) {
        if (holders.has(a)) {
          matched.set(a, i + 1);
          next.push(a);
        }
      }
      live = next;
    }
    return matched;
  }

  /** Records that `address` now holds `keys[0..count)` (most recent last, as vLLM fills them). */
  add(address: string, keys: ArrayLike<number>, count: number): void {
    let lru = this.#lrus.get(address);
    if (!lru) {
      lru = new LRUCache<number, 1>({
        max: this.#capacity,
        noDisposeOnSet: true,
        dispose: (_value, key) => {
          const holders = this.#holders.get(key);
          if (!holders) return;
          holders.delete(address);
          if (holders.size === 0) this.#holders.delete(key);
        },
      });
      this.#lrus.set(address, lru);
    }
    // Insert the last block first so the first blocks, shared by most requests, are the most recent.
    for (let i = count - 1; i >= 0; i--) {
      const key = keys[i]!;
      lru.set(key, 1);
      let holders = this.#holders.get(key);
      if (!holders) {
        holders = new Set();
        this.#holders.set(key, holders);
      }
      holders.add(address);
    }
  }

  /** Forgets everything `address` held (the endpoint is gone). */
  remove(address: string): void {
    const lru = this.#lrus.get(address);
    if (!lru) return;
    lru.clear();
    this.#lrus.delete(address);
  }

  clear(): void {
    for (const address of [...this.#lrus.keys()]) this.remove(address);
  }
}
