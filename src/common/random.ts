// Seeded pseudo-random numbers for anything that must replay exactly from a seed (simulated token
// streams, fault injection, demo workloads): tests and benchmarks pass the seed, never Math.random.

/** mulberry32: a tiny PRNG with a 32-bit state; returns floats in [0, 1) that depend only on the seed. */
export function mulberry32(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}
