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

/** Standard normal draws from a uniform source (Box-Muller: each pair of uniforms gives a cosine, then a sine draw). */
export function normals(next: () => number): () => number {
  let spare: number | null = null;
  return () => {
    if (spare !== null) {
      const s = spare;
      spare = null;
      return s;
    }
    const u = Math.max(next(), 1e-12);
    const v = next();
    const r = Math.sqrt(-2 * Math.log(u));
    spare = r * Math.sin(2 * Math.PI * v);
    return r * Math.cos(2 * Math.PI * v);
  };
}

/** `n` standard normal draws ({@link normals} over mulberry32), deterministic by seed. */
export function gaussians(n: number, seed: number): Float64Array {
  const draw = normals(mulberry32(seed));
  return Float64Array.from({ length: n }, draw);
}
