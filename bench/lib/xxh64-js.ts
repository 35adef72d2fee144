// A pure-JavaScript XXH64 with 32-bit integer math: the candidate the WebAssembly build in
// src/indexer/keys/request-xxh64.ts replaced (~5x slower, see bench/results/indexer.json). Kept only so bench/indexer.ts
// can show that comparison; the benchmark checks it against the WASM result before timing it.

// Primes as (hi, lo) halves.
const P1H = 0x9e3779b1,
  P1L = 0x85ebca87;
const P2H = 0xc2b2ae3d,
  P2L = 0x27d4eb4f;
const P3H = 0x165667b1,
  P3L = 0x9e3779f9;
const P4H = 0x85ebca77,
  P4L = 0xc2b2ae63;
const P5H = 0x27d4eb2f,
  P5L = 0x165667c5;

// Results of the helpers below, (lo, hi). A typed array rather than module-level variables: uint32
// values above 2^30 stored in plain variables are boxed as heap numbers, one allocation per write.
const R = new Uint32Array(2);

/** (ah, al) * (bh, bl) mod 2^64 into (R[1]!, R[0]!). */
function mul(ah: number, al: number, bh: number, bl: number): void {
  const a0 = al & 0xffff,
    a1 = al >>> 16,
    b0 = bl & 0xffff,
    b1 = bl >>> 16;
  const m1 = a1 * b0,
    m2 = a0 * b1; // each < 2^32
  const carry = (((a0 * b0) >>> 16) + (m1 & 0xffff) + (m2 & 0xffff)) >>> 16;
  // Stores into the Uint32Array reduce mod 2^32, so the sums need no explicit wrapping.
  R[0] = Math.imul(al, bl);
  R[1] = a1 * b1 + (m1 >>> 16) + (m2 >>> 16) + carry + Math.imul(ah, bl) + Math.imul(al, bh);
}

/** round(acc, lane) = rotl(acc + lane * P2, 31) * P1, into (R[1]!, R[0]!). */
function round(acch: number, accl: number, lh: number, ll: number): void {
  mul(lh, ll, P2H, P2L);
  let lo = accl + R[0]!;
  const hi = (acch + R[1]! + (lo > 0xffffffff ? 1 : 0)) >>> 0;
  lo >>>= 0;
  // rotl 31
  const nh = ((hi << 31) | (lo >>> 1)) >>> 0;
  const nl = ((lo << 31) | (hi >>> 1)) >>> 0;
  mul(nh, nl, P1H, P1L);
}

/** merge(acc, v) = (acc ^ round(0, v)) * P1 + P4, into (R[1]!, R[0]!). */
function merge(acch: number, accl: number, vh: number, vl: number): void {
  round(0, 0, vh, vl);
  mul((acch ^ R[1]!) >>> 0, (accl ^ R[0]!) >>> 0, P1H, P1L);
  const lo = R[0]! + P4L;
  R[1] = (R[1]! + P4H + (lo > 0xffffffff ? 1 : 0)) >>> 0;
  R[0] = lo >>> 0;
}

function rotlHi(h: number, l: number, r: number): number {
  return ((h << r) | (l >>> (32 - r))) >>> 0;
}
function rotlLo(h: number, l: number, r: number): number {
  return ((l << r) | (h >>> (32 - r))) >>> 0;
}

/** Shared tail + avalanche; `read(i)` gives the little-endian uint32 at byte offset i of the input. */
function finish(
  hh: number,
  hl: number,
  len: number,
  tail: number,
  end: number,
  read32: (i: number) => number,
  read8: (i: number) => number,
): void {
  // h += len (len < 2^32 here)
  let lo = hl + len;
  hh = (hh + (lo > 0xffffffff ? 1 : 0)) >>> 0;
  hl = lo >>> 0;
  let i = tail;
  for (; i + 8 <= end; i += 8) {
    round(0, 0, read32(i + 4), read32(i));
    const xh = (hh ^ R[1]!) >>> 0,
      xl = (hl ^ R[0]!) >>> 0;
    mul(rotlHi(xh, xl, 27), rotlLo(xh, xl, 27), P1H, P1L);
    lo = R[0]! + P4L;
    hh = (R[1]! + P4H + (lo > 0xffffffff ? 1 : 0)) >>> 0;
    hl = lo >>> 0;
  }
  if (i + 4 <= end) {
    mul(0, read32(i), P1H, P1L);
    const xh = (hh ^ R[1]!) >>> 0,
      xl = (hl ^ R[0]!) >>> 0;
    mul(rotlHi(xh, xl, 23), rotlLo(xh, xl, 23), P2H, P2L);
    lo = R[0]! + P3L;
    hh = (R[1]! + P3H + (lo > 0xffffffff ? 1 : 0)) >>> 0;
    hl = lo >>> 0;
    i += 4;
  }
  for (; i < end; i++) {
    mul(0, read8(i), P5H, P5L);
    const xh = (hh ^ R[1]!) >>> 0,
      xl = (hl ^ R[0]!) >>> 0;
    mul(rotlHi(xh, xl, 11), rotlLo(xh, xl, 11), P1H, P1L);
    hh = R[1]!;
    hl = R[0]!;
  }
  // avalanche: h ^= h >>> 33; h *= P2; h ^= h >>> 29; h *= P3; h ^= h >>> 32
  mul(hh, (hl ^ (hh >>> 1)) >>> 0, P2H, P2L);
  mul((R[1]! ^ (R[1]! >>> 29)) >>> 0, (R[0]! ^ ((R[1]! << 3) | (R[0]! >>> 29))) >>> 0, P3H, P3L);
  R[0] = R[0]! ^ R[1]!;
}

/** Stripe loop over `count32` words starting at word `w` of `words` (each 32-byte stripe = 8 words). */
function stripes(words: Uint32Array, w: number, stripesN: number, seedH: number, seedL: number): void {
  // v1 = seed + P1 + P2; v2 = seed + P2; v3 = seed; v4 = seed - P1
  let lo = seedL + P1L;
  let v1h = (seedH + P1H + (lo > 0xffffffff ? 1 : 0)) >>> 0;
  let v1l = lo >>> 0;
  lo = v1l + P2L;
  v1h = (v1h + P2H + (lo > 0xffffffff ? 1 : 0)) >>> 0;
  v1l = lo >>> 0;
  lo = seedL + P2L;
  let v2h = (seedH + P2H + (lo > 0xffffffff ? 1 : 0)) >>> 0;
  let v2l = lo >>> 0;
  let v3h = seedH,
    v3l = seedL;
  // seed - P1 = seed + (2^64 - P1)
  lo = seedL + ((~P1L + 1) >>> 0);
  let v4h = (seedH + (~P1H >>> 0) + (lo > 0xffffffff ? 1 : 0)) >>> 0;
  let v4l = lo >>> 0;
  for (let s = 0; s < stripesN; s++, w += 8) {
    round(v1h, v1l, words[w + 1]!, words[w]!);
    v1h = R[1]!;
    v1l = R[0]!;
    round(v2h, v2l, words[w + 3]!, words[w + 2]!);
    v2h = R[1]!;
    v2l = R[0]!;
    round(v3h, v3l, words[w + 5]!, words[w + 4]!);
    v3h = R[1]!;
    v3l = R[0]!;
    round(v4h, v4l, words[w + 7]!, words[w + 6]!);
    v4h = R[1]!;
    v4l = R[0]!;
  }
  // h = rotl(v1,1) + rotl(v2,7) + rotl(v3,12) + rotl(v4,18)
  let hl = rotlLo(v1h, v1l, 1),
    hh = rotlHi(v1h, v1l, 1);
  lo = hl + rotlLo(v2h, v2l, 7);
  hh = (hh + rotlHi(v2h, v2l, 7) + (lo > 0xffffffff ? 1 : 0)) >>> 0;
  hl = lo >>> 0;
  lo = hl + rotlLo(v3h, v3l, 12);
  hh = (hh + rotlHi(v3h, v3l, 12) + (lo > 0xffffffff ? 1 : 0)) >>> 0;
  hl = lo >>> 0;
  lo = hl + rotlLo(v4h, v4l, 18);
  hh = (hh + rotlHi(v4h, v4l, 18) + (lo > 0xffffffff ? 1 : 0)) >>> 0;
  hl = lo >>> 0;
  merge(hh, hl, v1h, v1l);
  merge(R[1]!, R[0]!, v2h, v2l);
  merge(R[1]!, R[0]!, v3h, v3l);
  merge(R[1]!, R[0]!, v4h, v4l);
}

let curWords: Uint32Array = new Uint32Array(0);
let curBase = 0;
const readWord = (i: number): number => curWords[curBase + (i >>> 2)]!;
const readWordByte = (i: number): number => (curWords[curBase + (i >>> 2)]! >>> ((i & 3) * 8)) & 0xff;

/**
 * XXH64 of `count` uint32 words starting at `start`, read as little-endian bytes (what python's
 * `xxhash.xxh64(array('I', words).tobytes(), seed)` hashes). Writes lo at out[at], hi at out[at+1].
 */
export function xxh64WordsJs(
  words: Uint32Array,
  start: number,
  count: number,
  seedLo: number,
  seedHi: number,
  out: Uint32Array,
  at: number,
): void {
  const len = count * 4;
  let hh: number, hl: number;
  const nStripes = len >= 32 ? len >>> 5 : 0;
  if (nStripes > 0) {
    stripes(words, start, nStripes, seedHi >>> 0, seedLo >>> 0);
    hh = R[1]!;
    hl = R[0]!;
  } else {
    const lo = (seedLo >>> 0) + P5L;
    hh = ((seedHi >>> 0) + P5H + (lo > 0xffffffff ? 1 : 0)) >>> 0;
    hl = lo >>> 0;
  }
  curWords = words;
  curBase = start;
  finish(hh, hl, len, nStripes * 32, len, readWord, readWordByte);
  out[at] = R[0]!;
  out[at + 1] = R[1]!;
}
