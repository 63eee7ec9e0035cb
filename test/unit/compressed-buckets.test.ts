/**
 * The codec's residual buckets (src/score/train.ts trainBuckets, trainCodec): Lloyd-Max buckets
 * reach the Gaussian optimum where equal-probability buckets do not, and the buckets are learned
 * from tokens k-means did not fit, so they decode unseen tokens at their true residual scale.
 */
import { describe, expect, it } from 'vitest';
import { assignCodes, trainBuckets, trainCodec } from '../../src/score/train.ts';
import { centroidFloats, type ResidualBits } from '../../src/store/residual.ts';
import { clusteredCollection } from '../fixtures/clustered.ts';
import { gaussians } from '../support/rng.ts';

/** Squared error of `values` decoded through the buckets (the codec's rule), over their variance. */
function relativeMse(values: Float32Array, b: { cutoffs: Float32Array; weights: Float32Array }): number {
  let err = 0;
  let sum = 0;
  let sq = 0;
  for (const x of values) {
    let k = 0;
    while (k < b.cutoffs.length && b.cutoffs[k]! <= x) k++;
    err += (x - b.weights[k]!) ** 2;
    sum += x;
    sq += x * x;
  }
  return err / (sq - (sum * sum) / values.length);
}

describe('residual buckets', () => {
  const normal = Float32Array.from(gaussians(200_000, 17), (x) => 0.05 * x);

  it.each([
    [2, 0.1175, 0.1394],
    [4, 0.0095, 0.0222],
  ] as [ResidualBits, number, number][])('nbits %i: Lloyd-Max error %f of the variance on Gaussian values (quantile buckets %f)', (nbits, lloyd, quantile) => {
    const fitted = trainBuckets(normal, nbits);
    const quantiles = trainBuckets(normal, nbits, 0);
    expect(relativeMse(normal, quantiles)).toBeCloseTo(quantile, 2);
    expect(relativeMse(normal, fitted)).toBeLessThan(lloyd * 1.02);
    // Ascending cutoffs, each weight inside its bucket, symmetric about 0 like the values.
    for (let k = 1; k < fitted.cutoffs.length; k++) expect(fitted.cutoffs[k]!).toBeGreaterThan(fitted.cutoffs[k - 1]!);
    for (let k = 0; k < fitted.weights.length; k++) {
      if (k > 0) expect(fitted.weights[k]!).toBeGreaterThan(fitted.cutoffs[k - 1]!);
      if (k < fitted.cutoffs.length) expect(fitted.weights[k]!).toBeLessThan(fitted.cutoffs[k]!);
    }
    expect(fitted.weights[0]! + fitted.weights[fitted.weights.length - 1]!).toBeCloseTo(0, 2);
  });

  it('uniform values: Lloyd-Max keeps the equal-width buckets; constant values decode to themselves', () => {
    const uniform = Float32Array.from({ length: 4000 }, (_, i) => (i + 0.5) / 4000);
    const { cutoffs, weights } = trainBuckets(uniform, 2);
    expect(Array.from(cutoffs, (x) => Math.round(x * 1000) / 1000)).toEqual([0.25, 0.5, 0.75]);
    expect(Array.from(weights, (x) => Math.round(x * 1000) / 1000)).toEqual([0.125, 0.375, 0.625, 0.875]);
    const flat = trainBuckets(new Float32Array(100).fill(0.3), 2);
    for (const w of flat.weights) expect(w).toBeCloseTo(0.3, 6);
  });

  it("the codec's buckets fit tokens k-means never saw (held-out residuals, not the fitted rows')", async () => {
    // 8 sampled tokens per centroid, as the engine trains: the k-means rows sit closer to their centroids than other tokens.
    const data = clusteredCollection(60_000, { seed: 3 });
    const dim = data.options.dim;
    const all = new Float32Array(data.tokens * dim);
    let at = 0;
    for (const batch of data.batches()) {
      for (const d of batch) {
        all.set(d.embedding.data, at * dim);
        at += d.embedding.tokens;
      }
    }
    // A uniform sample of the collection (every 8th token) for training, the tokens between for testing.
    const pick = (first: number, step: number) => {
      const rows = Math.floor((data.tokens - first + step - 1) / step);
      const out = new Float32Array(rows * dim);
      for (let r = 0; r < rows; r++) out.set(all.subarray((first + r * step) * dim, (first + r * step + 1) * dim), r * dim);
      return { rows, out };
    };
    const train = pick(0, 8);
    const unseen = pick(4, 8);
    // 8 rows per centroid, as the engine samples them.
    const centroids = Math.floor(train.rows / 8);
    const { codec, tree } = await trainCodec(train.out, train.rows, dim, { nbits: 2, centroids });
    const rounded = centroidFloats(codec);
    const residuals = (h: { rows: number; out: Float32Array }) => {
      const codes = new Uint16Array(h.rows);
      assignCodes(h.out, 0, h.rows, dim, codec.centroids, tree, codes);
      const values = new Float32Array(h.rows * dim);
      for (let r = 0; r < h.rows; r++) for (let d = 0; d < dim; d++) values[r * dim + d] = h.out[r * dim + d]! - rounded[codes[r]! * dim + d]!;
      return values;
    };
    const values = residuals(unseen);
    const best = trainBuckets(values, 2);
    // Buckets learned from the rows k-means fitted would decode unseen tokens about 14% too close to their centroid.
    const fitted = trainBuckets(residuals(train), 2);
    expect(fitted.weights[3]! / best.weights[3]!).toBeLessThan(0.9);
    // The codec's, learned from held-out rows, are at the unseen tokens' scale.
    expect(codec.weights[3]! / best.weights[3]!).toBeGreaterThan(0.95);
    expect(codec.weights[0]! / best.weights[0]!).toBeGreaterThan(0.95);
    expect(relativeMse(values, codec)).toBeLessThan(relativeMse(values, best) * 1.03);
    expect(relativeMse(values, codec)).toBeLessThan(relativeMse(values, fitted));
  });
});
