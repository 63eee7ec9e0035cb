/**
 * The compressed index's scoring stages on the CPU (PLAID): query-centroid scores, candidate
 * documents from inverted lists, centroid-interaction scores, and MaxSim over residual codes.
 * They take typed arrays only (no store, no text), so a GPU implementation can stand in for
 * {@link CompressedKernels} (the WGSL twins are checked against the same reference,
 * ./compressed-ref.ts). Results equal the reference up to float32 rounding (tests: within 1e-5).
 *
 * A document is a slot: its tokens are `counts[slot]` consecutive entries of `codes` (and rows of
 * `residuals`) from `starts[slot]`.
 *
 * How the residual stage is fast: a decoded token is `u = (c + w) / |c + w|`, with `c` its
 * centroid and `w` the bucket weights, so `<q, u> = (<q, c> + <q, w>) / |c + w|`. `<q, c>` is the
 * query-centroid score already computed, and `<q, w>` is a sum over the token's residual bytes of
 * a per-query-row table indexed by (byte position, byte value): 32 lookups per query row for a
 * 2-bit 128-dimensional token instead of 128 multiply-adds. The norm `|c + w|` depends on the
 * token only and is computed once per scored token.
 */
import { halfFloats } from '../store/precision.ts';
import { centroidCount, residualBytes, type ResidualCodec } from '../store/residual.ts';
import type { CodeView, InvertedLists } from '../store/codes.ts';
import { decodeList } from '../store/lists.ts';
import type { TokenMatrix } from '../types.ts';

export type { CodeView, InvertedLists };

/** The three stages a CPU or GPU implementation provides. */
export interface CompressedKernels {
  /** `S[i * C + c] = <q_i, centroid_c>`. */
  centroidScores(query: TokenMatrix, codec: ResidualCodec): Float32Array;
  /** For each `docs[n]`, the centroid-interaction score into `out[n]`. */
  centroidInteraction(scores: Float32Array, queryTokens: number, centroids: number, view: CodeView, docs: Uint32Array, out: Float32Array): void;
  /** For each `docs[n]`, MaxSim against its decoded tokens into `out[n]`; `scores` from {@link centroidScores}. */
  residualMaxSim(query: TokenMatrix, codec: ResidualCodec, scores: Float32Array, view: CodeView, docs: Uint32Array, out: Float32Array): void;
}

/** Query-centroid scores, query row outer, four centroids per step. */
export function centroidScores(query: TokenMatrix, codec: ResidualCodec): Float32Array {
  const { dim, centroids: hs } = codec;
  const half = halfFloats();
  const count = centroidCount(codec);
  const q = query.data;
  const out = new Float32Array(query.tokens * count);
  for (let i = 0; i < query.tokens; i++) {
    const qo = i * dim;
    const oo = i * count;
    let c = 0;
    for (; c + 3 < count; c += 4) {
      let s0 = 0;
      let s1 = 0;
      let s2 = 0;
      let s3 = 0;
      const a = c * dim;
      const b = a + dim;
      const e = b + dim;
      const f = e + dim;
      for (let d = 0; d < dim; d++) {
        const x = q[qo + d]!;
        s0 += x * half[hs[a + d]!]!;
        s1 += x * half[hs[b + d]!]!;
        s2 += x * half[hs[e + d]!]!;
        s3 += x * half[hs[f + d]!]!;
      }
      out[oo + c] = s0;
      out[oo + c + 1] = s1;
      out[oo + c + 2] = s2;
      out[oo + c + 3] = s3;
    }
    for (; c < count; c++) {
      let s = 0;
      for (let d = 0; d < dim; d++) s += q[qo + d]! * half[hs[c * dim + d]!]!;
      out[oo + c] = s;
    }
  }
  return out;
}

/** `S` transposed to centroid-major (`T[c * Q + i]`), so a token's scores for every query row are contiguous. */
function transpose(scores: Float32Array, queryTokens: number, centroids: number): Float32Array {
  const t = new Float32Array(scores.length);
  for (let i = 0; i < queryTokens; i++) {
    const o = i * centroids;
    for (let c = 0; c < centroids; c++) t[c * queryTokens + i] = scores[o + c]!;
  }
  return t;
}

/**
 * Centroid interaction over the listed slots (the reference's sum of per-row maxima). The maxima
 * are added in float32 in query-row order, as the WGSL twin and the SIMD kernel
 * (./interaction-simd.ts) add them, so all three give the same bits from the same scores.
 */
export function centroidInteraction(scores: Float32Array, queryTokens: number, centroids: number, view: CodeView, docs: Uint32Array, out: Float32Array): void {
  const t = transpose(scores, queryTokens, centroids);
  const best = new Float32Array(queryTokens);
  const { codes, starts, counts } = view;
  for (let n = 0; n < docs.length; n++) {
    const slot = docs[n]!;
    const count = counts[slot]!;
    if (count === 0) {
      out[n] = 0;
      continue;
    }
    const start = starts[slot]!;
    best.fill(-Infinity);
    for (let j = start; j < start + count; j++) {
      const o = codes[j]! * queryTokens;
      for (let i = 0; i < queryTokens; i++) {
        const s = t[o + i]!;
        if (s > best[i]!) best[i] = s;
      }
    }
    let total = 0;
    for (let i = 0; i < queryTokens; i++) total = Math.fround(total + best[i]!);
    out[n] = total;
  }
}

/**
 * Per query row, per residual byte position, per byte value: the dot product of the query's
 * dimensions in that byte with the bucket weights the byte encodes.
 */
function weightTables(query: TokenMatrix, codec: ResidualCodec): Float32Array {
  const { dim, nbits, weights } = codec;
  const bytes = residualBytes(dim, nbits);
  const per = 8 / nbits;
  const mask = (1 << nbits) - 1;
  const table = new Float32Array(query.tokens * bytes * 256);
  for (let i = 0; i < query.tokens; i++) {
    for (let p = 0; p < bytes; p++) {
      const o = (i * bytes + p) * 256;
      const qo = i * dim + p * per;
      for (let v = 0; v < 256; v++) {
        let s = 0;
        for (let t = 0; t < per; t++) s += query.data[qo + t]! * weights[(v >>> (t * nbits)) & mask]!;
        table[o + v] = s;
      }
    }
  }
  return table;
}

/** MaxSim of the query against the decoded tokens of each listed slot (see the module comment). */
export function residualMaxSim(query: TokenMatrix, codec: ResidualCodec, scores: Float32Array, view: CodeView, docs: Uint32Array, out: Float32Array): void {
  const { dim, nbits, centroids: cs, weights } = codec;
  const half = halfFloats();
  const count = centroidCount(codec);
  const bytes = residualBytes(dim, nbits);
  const mask = (1 << nbits) - 1;
  const nq = query.tokens;
  const table = weightTables(query, codec);
  const { codes, residuals, starts, counts } = view;
  let longest = 0;
  for (let n = 0; n < docs.length; n++) longest = Math.max(longest, counts[docs[n]!]!);
  // Per token of the document at hand: 1 / |c + w| and its table offsets (p * 256 + byte).
  const inv = new Float64Array(longest);
  const at = new Int32Array(longest * bytes);
  for (let n = 0; n < docs.length; n++) {
    const slot = docs[n]!;
    const tokens = counts[slot]!;
    if (tokens === 0) {
      out[n] = 0;
      continue;
    }
    const start = starts[slot]!;
    for (let t = 0; t < tokens; t++) {
      const j = start + t;
      const ro = j * bytes;
      const co = codes[j]! * dim;
      // |c + w|, exactly as decodeToken computes it (float32 components).
      let norm = 0;
      for (let d = 0; d < dim; d++) {
        const bit = d * nbits;
        const u = Math.fround(half[cs[co + d]!]! + weights[(residuals[ro + (bit >>> 3)]! >>> (bit & 7)) & mask]!);
        norm += u * u;
      }
      inv[t] = norm > 0 ? 1 / Math.sqrt(norm) : 0;
      for (let p = 0; p < bytes; p++) at[t * bytes + p] = p * 256 + residuals[ro + p]!;
    }
    // One query row at a time over all of the document's tokens, so that row's table
    // (bytes x 256 floats: 32 KiB at 2 bits and 128 dimensions) stays in cache. The sums are
    // formed in the same order as token-major loops would, so the scores are the same.
    let total = 0;
    for (let i = 0; i < nq; i++) {
      const to = i * bytes * 256;
      const so = i * count;
      let best = -Infinity;
      for (let t = 0; t < tokens; t++) {
        let s = scores[so + codes[start + t]!]!;
        const ao = t * bytes;
        for (let p = 0; p < bytes; p++) s += table[to + at[ao + p]!]!;
        s *= inv[t]!;
        if (s > best) best = Math.fround(s);
      }
      total += best;
    }
    out[n] = total;
  }
}

/** The CPU implementation of the stages. */
export const cpuCompressedKernels: CompressedKernels = { centroidScores, centroidInteraction, residualMaxSim };

/** For each query row, its `nprobe` highest-scoring centroids (row-major, `Q * nprobe` ids; ties to the lower id). */
export function probeCentroids(scores: Float32Array, queryTokens: number, centroids: number, nprobe: number): Uint32Array {
  const p = Math.min(nprobe, centroids);
  const out = new Uint32Array(queryTokens * p);
  const top = new Float32Array(p);
  const ids = new Uint32Array(p);
  for (let i = 0; i < queryTokens; i++) {
    top.fill(-Infinity);
    const o = i * centroids;
    for (let c = 0; c < centroids; c++) {
      const s = scores[o + c]!;
      if (s <= top[p - 1]!) continue;
      let k = p - 1;
      while (k > 0 && top[k - 1]! < s) {
        top[k] = top[k - 1]!;
        ids[k] = ids[k - 1]!;
        k--;
      }
      top[k] = s;
      ids[k] = c;
    }
    out.set(ids, i * p);
  }
  return out;
}

/** Calls `visit(slot)` for each slot of centroid `c`'s list. */
export function forEachListed(lists: InvertedLists, c: number, visit: (slot: number) => void): void {
  const out = new Uint32Array(lists.longest);
  const n = decodeList(lists.bytes, lists.offsets[c]!, lists.offsets[c + 1]!, out);
  for (let i = 0; i < n; i++) visit(out[i]!);
}

/**
 * Candidate slots: the union of the probed centroids' lists, restricted to live slots that
 * `allowed` accepts (a filter's excluded documents are never scored), in ascending slot order.
 */
export function candidateSlots(lists: InvertedLists, probes: Uint32Array, slots: number, live: (slot: number) => boolean, allowed?: (slot: number) => boolean): Uint32Array {
  const seen = new Uint8Array(slots);
  const probed = new Uint8Array(lists.offsets.length - 1);
  const { bytes, offsets } = lists;
  const entries = new Uint32Array(lists.longest);
  // Every listed slot marked first (this runs over every posting of the probed lists), then
  // each distinct slot checked once, in slot order.
  let marked = 0;
  for (const c of probes) {
    if (probed[c]) continue;
    probed[c] = 1;
    const count = decodeList(bytes, offsets[c]!, offsets[c + 1]!, entries);
    for (let i = 0; i < count; i++) {
      const slot = entries[i]!;
      if (slot < slots && seen[slot] === 0) {
        seen[slot] = 1;
        marked++;
      }
    }
  }
  let n = 0;
  for (let s = 0, left = marked; s < slots && left > 0; s++) {
    if (seen[s] === 0) continue;
    left--;
    if (live(s) && (!allowed || allowed(s))) {
      seen[s] = 2;
      n++;
    }
  }
  const out = new Uint32Array(n);
  let k = 0;
  for (let s = 0; s < slots && k < n; s++) if (seen[s] === 2) out[k++] = s;
  return out;
}

/** Indexes into `scores` of its `n` largest values, best first (ties to the lower index). */
export function topIndexes(scores: Float32Array, n: number): Uint32Array {
  const len = scores.length;
  const m = Math.max(0, Math.min(n, len));
  if (m === 0) return new Uint32Array(0);
  // Few of many (the stages' case): the m best kept in a heap whose root is the worst of them,
  // so most values cost one comparison; then those m sorted as below. Both orders are the same
  // total order (higher score, then lower index), so the result is the full sort's, bit for bit.
  if (m * 4 <= len) {
    const heap = new Uint32Array(m);
    // a ranks worse than b: lower score, or the same score and a higher index.
    const worse = (a: number, b: number) => scores[a]! < scores[b]! || (scores[a] === scores[b] && a > b);
    const down = (from: number) => {
      let i = from;
      const x = heap[i]!;
      for (;;) {
        const l = 2 * i + 1;
        if (l >= m) break;
        const r = l + 1;
        const c = r < m && worse(heap[r]!, heap[l]!) ? r : l;
        if (!worse(heap[c]!, x)) break;
        heap[i] = heap[c]!;
        i = c;
      }
      heap[i] = x;
    };
    let nan = false;
    for (let i = 0; i < m; i++) {
      heap[i] = i;
      if (Number.isNaN(scores[i]!)) nan = true;
    }
    for (let i = (m >> 1) - 1; i >= 0; i--) down(i);
    for (let i = m; i < len && !nan; i++) {
      const v = scores[i]!;
      // Not better than the worst kept: a later index never wins a tie.
      if (v > scores[heap[0]!]!) {
        heap[0] = i;
        down(0);
      } else if (Number.isNaN(v)) {
        nan = true;
      }
    }
    // NaN has no place in that order: the full sort below decides, as it always did.
    if (!nan) return heap.sort((a, b) => scores[b]! - scores[a]! || a - b);
  }
  const order = Array.from({ length: len }, (_, i) => i);
  order.sort((a, b) => scores[b]! - scores[a]! || a - b);
  return Uint32Array.from(order.slice(0, m));
}
