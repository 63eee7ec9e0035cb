/**
 * The compressed index's WASM SIMD stages (src/score/interaction-simd.ts, src/score/residual-simd.ts)
 * against the plain-JS reference (src/score/compressed-ref.ts) and the plain-JS stages they stand
 * in for: centroid interaction bit for bit equal to the JS stage (both add row maxima in float32
 * in row order, as the WGSL twin does) for query lengths on both kernel widths and padding, over
 * more documents than one kernel call takes, and empty slots scoring 0.
 */
import { describe, expect, it } from 'vitest';
import { centroidInteraction, centroidScores as centroidScoresFor } from '../../src/score/compressed.ts';
import { centroidInteractionRef } from '../../src/score/compressed-ref.ts';
import { centroidInteractionSimd, interactionSimdAvailable } from '../../src/score/interaction-simd.ts';
import { residualMaxSim } from '../../src/score/compressed.ts';
import { residualMaxSimRef } from '../../src/score/compressed-ref.ts';
import { residualMaxSimSimd, residualSimdAvailable } from '../../src/score/residual-simd.ts';
import { encodedClusters } from '../support/encoded-clusters.ts';
import { mulberry32 } from '../support/rng.ts';

/** Random scores and documents: `docs` slots of 0..maxTokens tokens over `centroids` codes. */
function randomView(seed: number, docs: number, maxTokens: number, centroids: number) {
  const next = mulberry32(seed);
  const counts = Uint32Array.from({ length: docs }, () => Math.floor(next() * (maxTokens + 1)));
  const starts = new Uint32Array(docs);
  let total = 0;
  counts.forEach((c, i) => {
    starts[i] = total;
    total += c;
  });
  const codes = Uint16Array.from({ length: total }, () => Math.floor(next() * centroids));
  return { codes, residuals: new Uint8Array(0), starts, counts };
}

describe('SIMD centroid interaction', () => {
  it('runs here', () => expect(interactionSimdAvailable()).toBe(true));

  for (const queryTokens of [1, 7, 16, 17, 32, 33, 40]) {
    it(`equals the JS stage bit for bit and the reference within 1e-5, ${queryTokens} query tokens`, () => {
      const centroids = 300;
      const next = mulberry32(queryTokens);
      const scores = Float32Array.from({ length: queryTokens * centroids }, () => next() * 2 - 1);
      const view = randomView(queryTokens + 100, 500, 40, centroids);
      view.counts[5] = 0;
      // A subset of the slots, out of order, one of them twice.
      const docs = Uint32Array.from([5, 499, 3, 3, ...Array.from({ length: 200 }, (_, i) => (i * 7) % 500)]);
      const simd = new Float32Array(docs.length);
      const js = new Float32Array(docs.length);
      centroidInteractionSimd(scores, queryTokens, centroids, view, docs, simd);
      centroidInteraction(scores, queryTokens, centroids, view, docs, js);
      expect(Array.from(simd)).toEqual(Array.from(js));
      docs.forEach((slot, n) => expect(Math.abs(simd[n]! - centroidInteractionRef(scores, queryTokens, centroids, view.codes, view.starts[slot]!, view.counts[slot]!))).toBeLessThan(1e-5));
      expect(simd[0]).toBe(0);
      expect(simd.filter((x) => x !== 0).length).toBeGreaterThan(docs.length / 2);
    });
  }

  it('takes more documents than one kernel call, and scores reused memory afresh', () => {
    const centroids = 64;
    const next = mulberry32(9);
    const scores = Float32Array.from({ length: 12 * centroids }, () => next() * 2 - 1);
    const view = randomView(10, 9000, 3, centroids);
    const docs = Uint32Array.from({ length: 9000 }, (_, i) => i);
    const simd = new Float32Array(docs.length);
    const js = new Float32Array(docs.length);
    centroidInteractionSimd(scores, 12, centroids, view, docs, simd);
    centroidInteraction(scores, 12, centroids, view, docs, js);
    expect(Array.from(simd)).toEqual(Array.from(js));
    // A shorter query over the same memory: no stale rows from the longer one.
    const small = new Float32Array(docs.length);
    const smallJs = new Float32Array(docs.length);
    centroidInteractionSimd(scores.subarray(0, 3 * centroids), 3, centroids, view, docs, small);
    centroidInteraction(scores.subarray(0, 3 * centroids), 3, centroids, view, docs, smallJs);
    expect(Array.from(small)).toEqual(Array.from(smallJs));
  });
});

const DIM = 128;

describe('SIMD residual MaxSim', () => {
  for (const nbits of [1, 2, 4] as const) {
    it(`equals the reference within 1e-5, ${nbits} bits, over more tokens than one kernel call`, async () => {
      // 200 documents of about 45 tokens: more than one chunk of decoded tokens (about 3,700 at dim 128).
      const { data, codec, view } = await encodedClusters(nbits, 200, 2, 20 + nbits);
      const docs = Uint32Array.from([3, ...Array.from({ length: 199 }, (_, i) => 199 - i), 150]);
      expect(docs.reduce((n, d) => n + view.counts[d]!, 0)).toBeGreaterThan(8192);
      for (const q of data.queries) {
        const simd = new Float32Array(docs.length);
        const js = new Float32Array(docs.length);
        residualMaxSimSimd(q, codec, new Float32Array(0), view, docs, simd);
        residualMaxSim(q, codec, centroidScoresFor(q, codec), view, docs, js);
        expect(simd[0]).toBe(0);
        docs.forEach((slot, n) => {
          const ref = residualMaxSimRef(q, codec, view.codes, view.residuals, view.starts[slot]!, view.counts[slot]!);
          expect(Math.abs(simd[n]! - ref), `slot ${slot}`).toBeLessThan(1e-5);
          expect(Math.abs(js[n]! - ref)).toBeLessThan(1e-4);
        });
      }
    });
  }

  it('scores a document longer than one chunk and a query too long for the scratch (plain JS for those), within 1e-5', async () => {
    const { data, codec, view } = await encodedClusters(2, 120, 1, 41);
    // Slot 0 made to span every token of the collection (over 5,000, more than a chunk holds).
    const total = view.codes.length;
    expect(total).toBeGreaterThan(4096);
    const long = { ...view, starts: Uint32Array.from([0, ...view.starts.subarray(1)]), counts: Uint32Array.from([total, ...view.counts.subarray(1)]) };
    expect(residualSimdAvailable(codec)).toBe(true);
    // The dataset's query with the long document, and one of 4,000 tokens (its rows repeated) that leaves no room for a chunk.
    const q = data.queries[0]!;
    const reps = Math.ceil(4000 / q.tokens);
    const big = { ...q, tokens: q.tokens * reps, ids: new Int32Array(q.tokens * reps).fill(-1), data: new Float32Array(q.tokens * reps * DIM) };
    for (let r = 0; r < reps; r++) big.data.set(q.data, r * q.tokens * DIM);
    for (const [query, docs] of [[q, Uint32Array.from([7, 0, 3, 50, 0, 119])], [big, Uint32Array.from([7, 3, 50, 119])]] as const) {
      const simd = new Float32Array(docs.length);
      residualMaxSimSimd(query, codec, centroidScoresFor(query, codec), long, docs, simd);
      docs.forEach((slot, n) => {
        const ref = residualMaxSimRef(query, codec, long.codes, long.residuals, long.starts[slot]!, long.counts[slot]!);
        expect(Math.abs(simd[n]! - ref) / Math.max(1, Math.abs(ref)), `slot ${slot}, ${query.tokens} query tokens`).toBeLessThan(1e-5);
      });
      expect(simd[docs.indexOf(3)]).toBe(0);
    }
  });
});
