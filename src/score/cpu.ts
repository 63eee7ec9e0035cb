/**
 * MaxSim on the CPU: the oracle every other scorer is checked against, and the fallback.
 * score(q, d) = sum over query rows i of max over document rows j of <q_i, d_j>.
 * A document with no rows scores 0.
 */
import { decodeRow } from '../store/precision.ts';
import type { ShardView } from '../store/types.ts';
import type { TokenMatrix } from '../types.ts';

/**
 * The dot product of `dim` values of `a` from `ao` and of `b` from `bo`, summed in four lanes
 * (the order every CPU score here uses, so that explanations add up to ranked scores).
 */
export function dot(a: Float32Array, ao: number, b: Float32Array, bo: number, dim: number): number {
  let s0 = 0;
  let s1 = 0;
  let s2 = 0;
  let s3 = 0;
  let k = 0;
  for (; k + 3 < dim; k += 4) {
    s0 += a[ao + k]! * b[bo + k]!;
    s1 += a[ao + k + 1]! * b[bo + k + 1]!;
    s2 += a[ao + k + 2]! * b[bo + k + 2]!;
    s3 += a[ao + k + 3]! * b[bo + k + 3]!;
  }
  for (; k < dim; k++) s0 += a[ao + k]! * b[bo + k]!;
  return s0 + s1 + s2 + s3;
}

/**
 * Scores every document slot of a shard against a query. Deleted slots get -Infinity.
 * Stored rows of any precision are decoded exactly as ../store/precision.ts defines, one document
 * at a time into a scratch buffer. Loops are ordered document row outer, query row inner, so each
 * document row is read once and stays in cache while all query rows are compared with it.
 */
export function maxSimShard(query: TokenMatrix, shard: ShardView, out = new Float32Array(shard.docIds.length)): Float32Array {
  const { dim, offsets, docIds } = shard;
  const q = query.data;
  const nq = query.tokens;
  const best = new Float32Array(nq);
  const exact = shard.precision === 'fp32';
  let scratch = new Float32Array(0);
  const row = new Float32Array(dim);
  for (let doc = 0; doc < docIds.length; doc++) {
    if (docIds[doc] === null) {
      out[doc] = -Infinity;
      continue;
    }
    const from = offsets[doc]!;
    const to = offsets[doc + 1]!;
    if (to === from) {
      out[doc] = 0;
      continue;
    }
    let vectors: Float32Array;
    let first: number;
    if (exact) {
      vectors = shard.vectors as Float32Array;
      first = from;
    } else {
      if (scratch.length < (to - from) * dim) scratch = new Float32Array((to - from) * dim * 2);
      for (let r = from; r < to; r++) scratch.set(decodeRow(shard, r, dim, row), (r - from) * dim);
      vectors = scratch;
      first = 0;
    }
    best.fill(-Infinity);
    for (let r = first; r < first + (to - from); r++) {
      const d = r * dim;
      for (let i = 0; i < nq; i++) {
        const s = dot(q, i * dim, vectors, d, dim);
        if (s > best[i]!) best[i] = s;
      }
    }
    let total = 0;
    for (let i = 0; i < nq; i++) total += best[i]!;
    out[doc] = total;
  }
  return out;
}

/** MaxSim of one query against one document matrix (reference form, for tests and explanations). */
export function maxSim(query: TokenMatrix, doc: TokenMatrix): number {
  if (doc.tokens === 0) return 0;
  let total = 0;
  for (let i = 0; i < query.tokens; i++) {
    let best = -Infinity;
    for (let j = 0; j < doc.tokens; j++) {
      let s = 0;
      for (let k = 0; k < query.dim; k++) s += query.data[i * query.dim + k]! * doc.data[j * doc.dim + k]!;
      if (s > best) best = s;
    }
    total += best;
  }
  return total;
}

/** Per query row: the document row with the largest dot product, and that product. */
export interface MaxSimExplanation {
  /** `bestRow[i]`: the document row that query row `i` matches best (-1 when the document has no rows). */
  bestRow: Int32Array;
  /** `contribution[i]`: the dot product of query row `i` with its best row (0 when the document has no rows). */
  contribution: Float32Array;
  /** The MaxSim score: the sum of the contributions, as {@link maxSimShard} computes it. */
  total: number;
}

/**
 * MaxSim with its argmax kept: which document row each query row matched. Dot products use the
 * same four-lane summation as {@link maxSimShard}, so `total` equals the ranked score.
 */
export function explainMaxSim(query: TokenMatrix, doc: TokenMatrix): MaxSimExplanation {
  const nq = query.tokens;
  const dim = query.dim;
  const bestRow = new Int32Array(nq).fill(-1);
  const contribution = new Float32Array(nq);
  if (doc.tokens === 0) return { bestRow, contribution, total: 0 };
  const best = new Float32Array(nq).fill(-Infinity);
  const q = query.data;
  const v = doc.data;
  for (let row = 0; row < doc.tokens; row++) {
    const d = row * dim;
    for (let i = 0; i < nq; i++) {
      const s = dot(q, i * dim, v, d, dim);
      if (s > best[i]!) {
        best[i] = s;
        bestRow[i] = row;
      }
    }
  }
  contribution.set(best);
  let total = 0;
  for (let i = 0; i < nq; i++) total += best[i]!;
  return { bestRow, contribution, total };
}
