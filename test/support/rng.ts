/** The tests' deterministic PRNG (no Node imports, so browser test bundles can use it too). */

/** Deterministic uniform PRNG in [0, 1) (mulberry32); shared by fixtures and tests. */
export function mulberry32(seed: number): () => number {
  return () => {
    seed = (seed + 0x6d2b79f5) | 0;
    let t = seed;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}
