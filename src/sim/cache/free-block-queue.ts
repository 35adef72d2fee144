// vLLM's FreeKVCacheBlockQueue: a doubly linked list of free block ids in eviction order (head is
// evicted first), with O(1) removal from the middle when a cached block gets a prefix hit.
// Links live in two Int32Arrays; ids `n` and `n + 1` are the fake head and tail.

export class FreeBlockQueue {
  private readonly prev: Int32Array;
  private readonly next: Int32Array;
  private readonly head: number;
  private readonly tail: number;
  numFree: number;

  /** Starts with every block 0..numBlocks-1 free, in id order. */
  constructor(numBlocks: number) {
    this.head = numBlocks;
    this.tail = numBlocks + 1;
    this.prev = new Int32Array(numBlocks + 2).fill(-1);
    this.next = new Int32Array(numBlocks + 2).fill(-1);
    let last = this.head;
    for (let i = 0; i < numBlocks; i++) {
      this.next[last] = i;
      this.prev[i] = last;
      last = i;
    }
    this.next[last] = this.tail;
    this.prev[this.tail] = last;
    this.numFree = numBlocks;
  }

  contains(block: number): boolean {
    return this.prev[block]! !== -1;
  }

  popleft(): number {
    const first = this.next[this.head]!;
    if (first === this.tail) throw new Error('no free blocks available');
    this.unlink(first);
    return first;
  }

  popleftN(n: number): number[] {
    if (n > this.numFree) throw new Error(`cannot pop ${n} blocks: only ${this.numFree} free`);
    const out: number[] = new Array(n);
    for (let i = 0; i < n; i++) out[i] = this.popleft();
    return out;
  }

  remove(block: number): void {
    if (!this.contains(block)) throw new Error(`block ${block} is not in the free queue`);
    this.unlink(block);
  }

  private unlink(block: number): void {
    const p = this.prev[block]!;
    const nx = this.next[block]!;
    this.next[p] = nx;
    this.prev[nx] = p;
    this.prev[block] = -1;
    this.next[block] = -1;
    this.numFree--;
  }

  /** Puts blocks at the front, in the given order (the first one is evicted first). */
  prependN(blocks: readonly number[]): void {
    if (blocks.length === 0) return;
    const first = this.next[this.head]!;
    let p = this.head;
    for (const b of blocks) {
      this.prev[b] = p;
      this.next[p] = b;
      p = b;
    }
    this.next[p] = first;
    this.prev[first] = p;
    this.numFree += blocks.length;
  }

  appendN(blocks: readonly number[]): void {
    if (blocks.length === 0) return;
    let last = this.prev[this.tail]!;
    for (const b of blocks) {
      this.prev[b] = last;
      this.next[last] = b;
      last = b;
    }
    this.next[last] = this.tail;
    this.prev[this.tail] = last;
    this.numFree += blocks.length;
  }

  /** Free blocks in eviction order (for tests and debugging). */
  toArray(): number[] {
    const out: number[] = [];
    for (let b = this.next[this.head]!; b !== this.tail; b = this.next[b]!) out.push(b);
    return out;
  }
}
