/**
 * Plain-JavaScript reference of the compressed index's scoring stages, written from the codec's
 * definition (../store/residual.ts). The WASM and WGSL kernels are tested against these; they are
 * slow on purpose (no tricks), and search never calls them.
 *
 * A candidate document is a run of `count` consecutive tokens from token `start` in the index's
 * `codes` / `residuals` arrays.
 */
import { fromHalf } from '../store/precision.ts';
import { centroidCount, decodeToken, residualBytes, type ResidualCodec } from '../store/residual.ts';
import type { TokenMatrix } from '../types.ts';

/** Query-centroid scores: `S[i * C + c] = <q_i, centroid_c>`, for every query row i and centroid c (centroids decoded from halves). */
export function centroidScoresRef(query: TokenMatrix, codec: ResidualCodec): Float32Array {
  const { dim, centroids } = codec;
  const count = centroidCount(codec);
  const out = new Float32Array(query.tokens * count);
  for (let i = 0; i < query.tokens; i++) {
    for (let c = 0; c < count; c++) {
      let s = 0;
      for (let d = 0; d < dim; d++) s += query.data[i * dim + d]! * fromHalf(centroids[c * dim + d]!);
      out[i * count + c] = s;
    }
  }
  return out;
}

/**
 * Centroid interaction (PLAID's cheap score): each document token stands for its centroid, so the
 * score is the sum over query rows of the best `S[i, code_j]` over the document's tokens j.
 * A document with no tokens scores 0.
 */
export function centroidInteractionRef(scores: Float32Array, queryTokens: number, centroids: number, codes: ArrayLike<number>, start: number, count: number): number {
  if (count === 0) return 0;
  let total = 0;
  for (let i = 0; i < queryTokens; i++) {
    let best = -Infinity;
    for (let j = start; j < start + count; j++) best = Math.max(best, scores[i * centroids + codes[j]!]!);
    total += best;
  }
  return total;
}

/** MaxSim of the query against a document's decoded tokens (the residual stage). */
export function residualMaxSimRef(query: TokenMatrix, codec: ResidualCodec, codes: ArrayLike<number>, residuals: Uint8Array, start: number, count: number): number {
  if (count === 0) return 0;
  const { dim, nbits } = codec;
  const bytes = residualBytes(dim, nbits);
  const doc = new Float32Array(count * dim);
  for (let j = 0; j < count; j++) decodeToken(codec, codes[start + j]!, residuals, (start + j) * bytes, doc, j * dim);
  let total = 0;
  for (let i = 0; i < query.tokens; i++) {
    let best = -Infinity;
    for (let j = 0; j < count; j++) {
      let s = 0;
      for (let d = 0; d < dim; d++) s += query.data[i * dim + d]! * doc[j * dim + d]!;
      best = Math.max(best, s);
    }
    total += best;
  }
  return total;
}
