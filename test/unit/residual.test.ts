/**
 * The residual codec's definition (src/store/residual.ts) and the plain-JS reference scorers
 * (src/score/compressed-ref.ts) that the WASM and WGSL kernels are checked against.
 */
import { describe, expect, it } from 'vitest';
import { bucketOf, centroidFloats, decodeToken, encodeResidual, halfCentroids, residualBytes, type ResidualBits, type ResidualCodec } from '../../src/store/residual.ts';
import { centroidInteractionRef, centroidScoresRef, residualMaxSimRef } from '../../src/score/compressed-ref.ts';
import { fromHalf, toHalf } from '../../src/store/precision.ts';
import { mulberry32 } from '../support/rng.ts';

function unit(next: () => number, dim: number): Float32Array {
  const v = new Float32Array(dim);
  let n = 0;
  for (let d = 0; d < dim; d++) {
    v[d] = next() - 0.5;
    n += v[d]! * v[d]!;
  }
  for (let d = 0; d < dim; d++) v[d]! /= Math.sqrt(n);
  return v;
}

function codec(nbits: ResidualBits, dim: number, count: number, seed: number): ResidualCodec {
  const next = mulberry32(seed);
  const centroids = new Float32Array(count * dim);
  for (let c = 0; c < count; c++) centroids.set(unit(next, dim), c * dim);
  const buckets = 1 << nbits;
  const cutoffs = new Float32Array(buckets - 1).map((_, i) => -0.1 + (0.2 * (i + 1)) / buckets);
  const weights = new Float32Array(buckets).map((_, i) => -0.1 + (0.2 * (i + 0.5)) / buckets);
  return { dim, nbits, centroids: halfCentroids(centroids), cutoffs, weights };
}

describe('residual codec', () => {
  it('counts bytes per token and refuses widths that are not whole bytes', () => {
    expect(residualBytes(128, 2)).toBe(32);
    expect(residualBytes(128, 1)).toBe(16);
    expect(residualBytes(6, 4)).toBe(3);
    expect(() => residualBytes(6, 1)).toThrow(RangeError);
  });

  it('puts a value in the bucket of the cutoffs at or below it', () => {
    const cutoffs = new Float32Array([-1, 0, 1]);
    expect([-2, -1, -0.5, 0, 0.5, 1, 2].map((x) => bucketOf(cutoffs, x))).toEqual([0, 1, 1, 2, 2, 3, 3]);
  });

  for (const nbits of [1, 2, 4] as const) {
    it(`packs buckets little-endian and decodes to the normalised centroid plus bucket weights (${nbits} bits)`, () => {
      const dim = 16;
      const c = codec(nbits, dim, 3, 7 + nbits);
      const v = unit(mulberry32(99), dim);
      const out = new Uint8Array(residualBytes(dim, nbits) + 2).fill(0xff);
      encodeResidual(c, v, 0, 2, out, 1);
      expect(out[0]).toBe(0xff);
      expect(out[out.length - 1]).toBe(0xff);
      const expected = new Float32Array(dim);
      let norm = 0;
      for (let d = 0; d < dim; d++) {
        const bucket = bucketOf(c.cutoffs, v[d]! - fromHalf(c.centroids[2 * dim + d]!));
        const bit = d * nbits;
        expect((out[1 + (bit >> 3)]! >> (bit & 7)) & ((1 << nbits) - 1)).toBe(bucket);
        expected[d] = fromHalf(c.centroids[2 * dim + d]!) + c.weights[bucket]!;
        norm += expected[d]! * expected[d]!;
      }
      const decoded = new Float32Array(dim);
      decodeToken(c, 2, out, 1, decoded);
      for (let d = 0; d < dim; d++) expect(decoded[d]).toBeCloseTo(expected[d]! / Math.sqrt(norm), 6);
    });
  }

  it('holds centroids as IEEE halves and decodes them exactly', () => {
    const floats = new Float32Array([0.1, -0.25, 1, 0, -0, 3e-6, 0.70710678, -0.999]);
    const halves = halfCentroids(floats);
    expect(halves).toBeInstanceOf(Uint16Array);
    expect(Array.from(halves)).toEqual(Array.from(floats, (x) => toHalf(x)));
    expect(Array.from(centroidFloats({ centroids: halves }))).toEqual(Array.from(halves, (h) => Math.fround(fromHalf(h))));
    // A token decodes against the rounded centroid, not the float it was rounded from.
    const c: ResidualCodec = { dim: 8, nbits: 1, centroids: halves, cutoffs: new Float32Array([0]), weights: new Float32Array([0, 0]) };
    const decoded = new Float32Array(8);
    decodeToken(c, 0, new Uint8Array(1), 0, decoded);
    const rounded = centroidFloats(c);
    const norm = Math.sqrt(rounded.reduce((n, x) => n + x * x, 0));
    for (let d = 0; d < 8; d++) expect(decoded[d]).toBeCloseTo(rounded[d]! / norm, 7);
    expect(rounded[0]).not.toBe(Math.fround(0.1));
  });

  it('reference scorers: centroid interaction is MaxSim over centroids, residual MaxSim over decoded tokens', () => {
    const dim = 8;
    const c = codec(2, dim, 4, 3);
    const next = mulberry32(5);
    const q = new Float32Array(2 * dim);
    q.set(unit(next, dim), 0);
    q.set(unit(next, dim), dim);
    const query = { data: q, tokens: 2, dim, ids: new Int32Array(2) };
    const s = centroidScoresRef(query, c);
    const codes = new Uint16Array([0, 3, 1]);
    expect(centroidInteractionRef(s, 2, 4, codes, 0, 3)).toBeCloseTo(Math.max(s[0]!, s[3]!, s[1]!) + Math.max(s[4]!, s[7]!, s[5]!), 6);
    expect(centroidInteractionRef(s, 2, 4, codes, 1, 0)).toBe(0);
    const residuals = new Uint8Array(3 * residualBytes(dim, 2));
    // All-zero residual bytes: every dimension takes bucket 0.
    const decoded = new Float32Array(dim);
    decodeToken(c, 3, residuals, 0, decoded);
    let best = -Infinity;
    for (let j = 1; j < 2; j++) {
      let dot = 0;
      for (let d = 0; d < dim; d++) dot += q[d]! * decoded[d]!;
      best = Math.max(best, dot);
    }
    const single = residualMaxSimRef({ ...query, tokens: 1, data: q.subarray(0, dim) }, c, codes, residuals, 1, 1);
    expect(single).toBeCloseTo(best, 6);
  });
});
