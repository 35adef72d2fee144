// XXH64 in plain TypeScript with 32-bit arithmetic: 64-bit values travel as (hi, lo) uint32 halves,
// so hashing allocates nothing and needs neither BigInt nor WebAssembly. For router-side block
// hashing (the approximate prefix index), where a request hashes at most a few hundred short blocks.

// The five primes as (hi, lo).
const P1H = 0x9e3779b1;
const P1L = 0x85ebca87;
const P2H = 0xc2b2ae3d;
const P2L = 0x27d4eb4f;
const P3H = 0x165667b1;
const P3L = 0x9e3779f9;
const P4H = 0x85ebca77;
const P4L = 0xc2b2ae63;
const P5H = 0x27d4eb2f;
const P5L = 0x165667c5;
// 2^64 - P1, for the fourth lane's seed - P1.
const NEG_P1H = 0x61c8864e;
const NEG_P1L = 0x7a143579;

// Results of the 64-bit helpers below: one shared register pair instead of an object per operation,
// in a typed array because uint32 values above 2^31 in plain variables would be boxed on every write.
const R = new Uint32Array(2);

/** High 32 bits of the unsigned 64-bit product a * b, from 16-bit partial products (each below 2^32). */
function mulhi(a: number, b: number): number {
  const a0 = a & 0xffff;
  const a1 = a >>> 16;
  const b0 = b & 0xffff;
  const b1 = b >>> 16;
  const m1 = ((a0 * b0) >>> 16) + a1 * b0;
  const m2 = (m1 & 0xffff) + a0 * b1;
  return (a1 * b1 + (m1 >>> 16) + (m2 >>> 16)) >>> 0;
}

/** (ah:al) * (bh:bl) mod 2^64 into (R[0], R[1]). */
function mul(ah: number, al: number, bh: number, bl: number): void {
  // The typed array keeps the low 32 bits of each sum.
  R[0] = mulhi(al, bl) + Math.imul(ah, bl) + Math.imul(al, bh);
  R[1] = Math.imul(al, bl);
}

/** (ah:al) + (bh:bl) mod 2^64 into (R[0], R[1]). */
function add(ah: number, al: number, bh: number, bl: number): void {
  const lo = al + bl;
  R[1] = lo >>> 0;
  R[0] = (ah + bh + (lo > 0xffffffff ? 1 : 0)) >>> 0;
}

/** (h:l) rotated left by 0 < r < 32 into (R[0], R[1]). */
function rotl(h: number, l: number, r: number): void {
  R[0] = ((h << r) | (l >>> (32 - r))) >>> 0;
  R[1] = ((l << r) | (h >>> (32 - r))) >>> 0;
}

/** XXH64's round: acc = rotl(acc + input * P2, 31) * P1, into (R[0], R[1]). */
function round(acch: number, accl: number, inh: number, inl: number): void {
  mul(inh, inl, P2H, P2L);
  add(acch, accl, R[0]!, R[1]!);
  rotl(R[0]!, R[1]!, 31);
  mul(R[0]!, R[1]!, P1H, P1L);
}

/** XXH64's merge of a lane into the accumulator: (acc ^ round(0, lane)) * P1 + P4, into (R[0], R[1]). */
function merge(acch: number, accl: number, vh: number, vl: number): void {
  round(0, 0, vh, vl);
  mul((acch ^ R[0]!) >>> 0, (accl ^ R[1]!) >>> 0, P1H, P1L);
  add(R[0]!, R[1]!, P4H, P4L);
}

function read32(b: Uint8Array, i: number): number {
  return (b[i]! | (b[i + 1]! << 8) | (b[i + 2]! << 16) | (b[i + 3]! << 24)) >>> 0;
}

// The four accumulator lanes of the 32-byte stripe loop, (hi, lo) at 2k, 2k + 1.
const V = new Uint32Array(8);

/** The stripe loop's round on lane k with the little-endian word pair at data[p]: all in locals, no calls but mulhi. */
function roundLane(k: number, data: Uint8Array, p: number): void {
  const il = read32(data, p);
  const ih = read32(data, p + 4);
  // acc + input * P2
  const tl = Math.imul(il, P2L) >>> 0;
  const th = (mulhi(il, P2L) + Math.imul(ih, P2L) + Math.imul(il, P2H)) >>> 0;
  const sum = V[2 * k + 1]! + tl;
  const sl = sum >>> 0;
  const sh = (V[2 * k]! + th + (sum > 0xffffffff ? 1 : 0)) >>> 0;
  // rotl 31, then * P1
  const xh = ((sh << 31) | (sl >>> 1)) >>> 0;
  const xl = ((sl << 31) | (sh >>> 1)) >>> 0;
  V[2 * k] = mulhi(xl, P1L) + Math.imul(xh, P1L) + Math.imul(xl, P1H);
  V[2 * k + 1] = Math.imul(xl, P1L);
}

/**
 * XXH64 of `data[offset, offset + length)` with the 64-bit seed (seedHi:seedLo). Writes the hash's
 * high half to out[at] and its low half to out[at + 1].
 */
export function xxh64Into(
  data: Uint8Array,
  offset: number,
  length: number,
  seedHi: number,
  seedLo: number,
  out: Uint32Array,
  at: number,
): void {
  seedHi >>>= 0;
  seedLo >>>= 0;
  let p = offset;
  const end = offset + length;
  let hh: number;
  let hl: number;
  if (length >= 32) {
    add(seedHi, seedLo, P1H, P1L);
    add(R[0]!, R[1]!, P2H, P2L);
    V[0] = R[0]!;
    V[1] = R[1]!;
    add(seedHi, seedLo, P2H, P2L);
    V[2] = R[0]!;
    V[3] = R[1]!;
    V[4] = seedHi;
    V[5] = seedLo;
    add(seedHi, seedLo, NEG_P1H, NEG_P1L);
    V[6] = R[0]!;
    V[7] = R[1]!;
    const limit = end - 32;
    while (p <= limit) {
      roundLane(0, data, p);
      roundLane(1, data, p + 8);
      roundLane(2, data, p + 16);
      roundLane(3, data, p + 24);
      p += 32;
    }
    const v1h = V[0]!;
    const v1l = V[1]!;
    const v2h = V[2]!;
    const v2l = V[3]!;
    const v3h = V[4]!;
    const v3l = V[5]!;
    const v4h = V[6]!;
    const v4l = V[7]!;
    rotl(v1h, v1l, 1);
    hh = R[0]!;
    hl = R[1]!;
    rotl(v2h, v2l, 7);
    add(hh, hl, R[0]!, R[1]!);
    hh = R[0]!;
    hl = R[1]!;
    rotl(v3h, v3l, 12);
    add(hh, hl, R[0]!, R[1]!);
    hh = R[0]!;
    hl = R[1]!;
    rotl(v4h, v4l, 18);
    add(hh, hl, R[0]!, R[1]!);
    merge(R[0]!, R[1]!, v1h, v1l);
    merge(R[0]!, R[1]!, v2h, v2l);
    merge(R[0]!, R[1]!, v3h, v3l);
    merge(R[0]!, R[1]!, v4h, v4l);
    hh = R[0]!;
    hl = R[1]!;
  } else {
    add(seedHi, seedLo, P5H, P5L);
    hh = R[0]!;
    hl = R[1]!;
  }
  // h += length (lengths stay far below 2^53, so the high part is exact).
  add(hh, hl, Math.floor(length / 0x100000000) >>> 0, length >>> 0);
  hh = R[0]!;
  hl = R[1]!;

  while (p + 8 <= end) {
    round(0, 0, read32(data, p + 4), read32(data, p));
    rotl((hh ^ R[0]!) >>> 0, (hl ^ R[1]!) >>> 0, 27);
    mul(R[0]!, R[1]!, P1H, P1L);
    add(R[0]!, R[1]!, P4H, P4L);
    hh = R[0]!;
    hl = R[1]!;
    p += 8;
  }
  if (p + 4 <= end) {
    mul(0, read32(data, p), P1H, P1L);
    rotl((hh ^ R[0]!) >>> 0, (hl ^ R[1]!) >>> 0, 23);
    mul(R[0]!, R[1]!, P2H, P2L);
    add(R[0]!, R[1]!, P3H, P3L);
    hh = R[0]!;
    hl = R[1]!;
    p += 4;
  }
  while (p < end) {
    mul(0, data[p]!, P5H, P5L);
    rotl((hh ^ R[0]!) >>> 0, (hl ^ R[1]!) >>> 0, 11);
    mul(R[0]!, R[1]!, P1H, P1L);
    hh = R[0]!;
    hl = R[1]!;
    p++;
  }

  // Avalanche: h ^= h >> 33; h *= P2; h ^= h >> 29; h *= P3; h ^= h >> 32.
  hl = (hl ^ (hh >>> 1)) >>> 0;
  mul(hh, hl, P2H, P2L);
  hh = R[0]!;
  hl = R[1]!;
  hl = (hl ^ ((hl >>> 29) | (hh << 3))) >>> 0;
  hh = (hh ^ (hh >>> 29)) >>> 0;
  mul(hh, hl, P3H, P3L);
  hh = R[0]!;
  hl = R[1]!;
  hl = (hl ^ hh) >>> 0;
  out[at] = hh;
  out[at + 1] = hl;
}

const scratch = new Uint32Array(2);
const encoder = new TextEncoder();

/** XXH64 of a byte array or of a string's UTF-8 bytes, as 16 lower-case hex digits (for tests and logs). */
export function xxh64Hex(input: Uint8Array | string, seedHi = 0, seedLo = 0): string {
  const bytes = typeof input === 'string' ? encoder.encode(input) : input;
  xxh64Into(bytes, 0, bytes.length, seedHi, seedLo, scratch, 0);
  return scratch[0]!.toString(16).padStart(8, '0') + scratch[1]!.toString(16).padStart(8, '0');
}
