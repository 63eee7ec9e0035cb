/**
 * The residual codec of the compressed index (ColBERTv2 / PLAID style): a token vector is stored as
 * the id of its nearest centroid plus `nbits` bits per dimension that pick one of `2^nbits` learned
 * bucket values for the residual `v - centroid`.
 *
 * Layout, which every store, scorer (CPU and WGSL) and the portable file agree on:
 * - `centroids`: `Float32Array` of `count * dim`, row-major, each row L2-normalised.
 * - `cutoffs`: `2^nbits - 1` ascending thresholds; a residual value `x` falls in bucket
 *   `b = number of cutoffs <= x` (so bucket 0 holds values below the first cutoff).
 * - `weights`: `2^nbits` values; bucket `b` decodes to `weights[b]`.
 * - per token: a centroid code (an unsigned integer below `count`) and `residualBytes(dim, nbits)`
 *   bytes. The bucket of dimension `d` is bits `[d * nbits, (d + 1) * nbits)` of those bytes, bit 0
 *   being the least significant bit of byte 0 (little-endian bit order; with nbits 1, 2, 4 a
 *   bucket never straddles two bytes).
 * - decoding: `u[d] = centroids[code * dim + d] + weights[bucket(d)]`, then `u` is L2-normalised
 *   (a zero `u` stays zero). Scorers score decoded vectors; none has its own rounding.
 */

/** Bits per dimension of a residual. */
export type ResidualBits = 1 | 2 | 4;

/** Every supported residual width. */
export const RESIDUAL_BITS: readonly ResidualBits[] = Object.freeze([1, 2, 4]);

/** What decodes residual codes: centroids and the learned buckets. */
export interface ResidualCodec {
  dim: number;
  nbits: ResidualBits;
  /** `count * dim` floats, row-major, rows L2-normalised. */
  centroids: Float32Array;
  /** `2^nbits - 1` ascending bucket thresholds. */
  cutoffs: Float32Array;
  /** `2^nbits` bucket values. */
  weights: Float32Array;
}

/** Number of centroids of a codec. */
export function centroidCount(codec: ResidualCodec): number {
  return codec.centroids.length / codec.dim;
}

/** Bytes of one token's residual. `dim * nbits` must be a multiple of 8. */
export function residualBytes(dim: number, nbits: ResidualBits): number {
  if ((dim * nbits) % 8 !== 0) throw new RangeError(`dim ${dim} x ${nbits} bits is not a whole number of bytes`);
  return (dim * nbits) / 8;
}

/** The bucket of a residual value: the number of cutoffs at or below it. */
export function bucketOf(cutoffs: Float32Array, x: number): number {
  let b = 0;
  while (b < cutoffs.length && cutoffs[b]! <= x) b++;
  return b;
}

/**
 * Writes the residual of `vector` (from `vo`) against centroid `code` into `out` at `oo`
 * (`residualBytes` bytes, zeroed first).
 */
export function encodeResidual(codec: ResidualCodec, vector: Float32Array, vo: number, code: number, out: Uint8Array, oo: number): void {
  const { dim, nbits, centroids, cutoffs } = codec;
  const n = residualBytes(dim, nbits);
  out.fill(0, oo, oo + n);
  const c = code * dim;
  for (let d = 0; d < dim; d++) {
    const bucket = bucketOf(cutoffs, vector[vo + d]! - centroids[c + d]!);
    const bit = d * nbits;
    out[oo + (bit >>> 3)]! |= bucket << (bit & 7);
  }
}

/** Decodes one token (centroid `code`, residual bytes at `ro`) into `out` at `oo`, L2-normalised. */
export function decodeToken(codec: ResidualCodec, code: number, residuals: Uint8Array, ro: number, out: Float32Array, oo = 0): void {
  const { dim, nbits, centroids, weights } = codec;
  const mask = (1 << nbits) - 1;
  const c = code * dim;
  let norm = 0;
  for (let d = 0; d < dim; d++) {
    const bit = d * nbits;
    const bucket = (residuals[ro + (bit >>> 3)]! >>> (bit & 7)) & mask;
    const u = centroids[c + d]! + weights[bucket]!;
    out[oo + d] = u;
    norm += u * u;
  }
  if (norm > 0) {
    const inv = 1 / Math.sqrt(norm);
    for (let d = 0; d < dim; d++) out[oo + d]! *= inv;
  }
}

/** Per byte value, the `8 / nbits` bucket weights its dimensions decode to (cached per weights array). */
const byteWeights = new WeakMap<Float32Array, Float64Array>();
function weightsByByte(nbits: ResidualBits, weights: Float32Array): Float64Array {
  let table = byteWeights.get(weights);
  if (!table) {
    const per = 8 / nbits;
    const mask = (1 << nbits) - 1;
    table = new Float64Array(256 * per);
    for (let v = 0; v < 256; v++) for (let t = 0; t < per; t++) table[v * per + t] = weights[(v >>> (t * nbits)) & mask]!;
    byteWeights.set(weights, table);
  }
  return table;
}

/**
 * Decodes tokens `from .. from + n` (`codes[j]`, residual bytes of token j) into `out`, token `r`
 * at `oo + r * stride`, each exactly as {@link decodeToken} decodes it (a table of each byte
 * value's bucket weights saves the bit unpacking). The residual scorers decode their candidates
 * in batches through it.
 */
export function decodeTokens(codec: ResidualCodec, codes: ArrayLike<number>, residuals: Uint8Array, from: number, n: number, out: Float32Array, oo = 0, stride = codec.dim): void {
  const { dim, nbits, centroids } = codec;
  const bytes = residualBytes(dim, nbits);
  const per = 8 / nbits;
  const table = weightsByByte(nbits, codec.weights);
  for (let r = 0; r < n; r++) {
    const j = from + r;
    const c = codes[j]! * dim;
    const ro = j * bytes;
    const o = oo + r * stride;
    let norm = 0;
    for (let p = 0; p < bytes; p++) {
      const w = residuals[ro + p]! * per;
      const d = p * per;
      for (let t = 0; t < per; t++) {
        const u = centroids[c + d + t]! + table[w + t]!;
        out[o + d + t] = u;
        norm += u * u;
      }
    }
    if (norm > 0) {
      const inv = 1 / Math.sqrt(norm);
      for (let d = 0; d < dim; d++) out[o + d]! *= inv;
    }
  }
}
