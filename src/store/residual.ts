/**
 * The residual codec of the compressed index (ColBERTv2 / PLAID style): a token vector is stored as
 * the id of its nearest centroid plus `nbits` bits per dimension that pick one of `2^nbits` learned
 * bucket values for the residual `v - centroid`.
 *
 * Layout, which every store, scorer (CPU and WGSL) and the portable file agree on:
 * - `centroids`: `Uint16Array` of `count * dim` IEEE half floats (../store/precision.ts `toHalf`),
 *   row-major: each row an L2-normalised k-means centroid rounded to fp16 (2 bytes a dimension; the
 *   rounded row is the centroid: residuals are taken against it, and every scorer reads the same
 *   halves, decoded exactly). Codecs stored or exported as fp32 before are rounded on load.
 * - `cutoffs`: `2^nbits - 1` ascending thresholds; a residual value `x` falls in bucket
 *   `b = number of cutoffs <= x` (so bucket 0 holds values below the first cutoff).
 * - `weights`: `2^nbits` values; bucket `b` decodes to `weights[b]`.
 * - per token: a centroid code (an unsigned integer below `count`) and `residualBytes(dim, nbits)`
 *   bytes. The bucket of dimension `d` is bits `[d * nbits, (d + 1) * nbits)` of those bytes, bit 0
 *   being the least significant bit of byte 0 (little-endian bit order; with nbits 1, 2, 4 a
 *   bucket never straddles two bytes).
 * - decoding: `u[d] = half(centroids[code * dim + d]) + weights[bucket(d)]` in float32, then `u` is
 *   L2-normalised (a zero `u` stays zero). Scorers score decoded vectors; none has its own rounding.
 */
import { fromHalf, halfFloats, toHalf } from './precision.ts';

/** Bits per dimension of a residual. */
export type ResidualBits = 1 | 2 | 4;

/** Every supported residual width. */
export const RESIDUAL_BITS: readonly ResidualBits[] = Object.freeze([1, 2, 4]);

/** What decodes residual codes: centroids and the learned buckets. */
export interface ResidualCodec {
  dim: number;
  nbits: ResidualBits;
  /**
   * `count * dim` IEEE half-float bits, row-major (rows L2-normalised before rounding). The CPU
   * kernel may move them into its WASM memory and leave a view of that memory here, so that one
   * copy is resident (../score/centroid-simd.ts); never mutate them.
   */
  centroids: Uint16Array;
  /** `2^nbits - 1` ascending bucket thresholds. */
  cutoffs: Float32Array;
  /** `2^nbits` bucket values. */
  weights: Float32Array;
}

/** Number of centroids of a codec. */
export function centroidCount(codec: ResidualCodec): number {
  return codec.centroids.length / codec.dim;
}

/** Centroid rows rounded to IEEE half floats, the codec's storage. */
export function halfCentroids(centroids: Float32Array): Uint16Array {
  const out = new Uint16Array(centroids.length);
  for (let i = 0; i < centroids.length; i++) out[i] = toHalf(centroids[i]!);
  return out;
}

/** The codec's centroids decoded to floats (a new `count * dim` array; exact). */
export function centroidFloats(codec: Pick<ResidualCodec, 'centroids'>): Float32Array {
  const h = codec.centroids;
  const out = new Float32Array(h.length);
  for (let i = 0; i < h.length; i++) out[i] = fromHalf(h[i]!);
  return out;
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
  const half = halfFloats();
  const n = residualBytes(dim, nbits);
  out.fill(0, oo, oo + n);
  const c = code * dim;
  for (let d = 0; d < dim; d++) {
    const bucket = bucketOf(cutoffs, vector[vo + d]! - half[centroids[c + d]!]!);
    const bit = d * nbits;
    out[oo + (bit >>> 3)]! |= bucket << (bit & 7);
  }
}

/** Decodes one token (centroid `code`, residual bytes at `ro`) into `out` at `oo`, L2-normalised. */
export function decodeToken(codec: ResidualCodec, code: number, residuals: Uint8Array, ro: number, out: Float32Array, oo = 0): void {
  const { dim, nbits, centroids, weights } = codec;
  const half = halfFloats();
  const mask = (1 << nbits) - 1;
  const c = code * dim;
  let norm = 0;
  for (let d = 0; d < dim; d++) {
    const bit = d * nbits;
    const bucket = (residuals[ro + (bit >>> 3)]! >>> (bit & 7)) & mask;
    const u = Math.fround(half[centroids[c + d]!]! + weights[bucket]!);
    out[oo + d] = u;
    norm += u * u;
  }
  if (norm > 0) {
    const inv = 1 / Math.sqrt(norm);
    for (let d = 0; d < dim; d++) out[oo + d]! *= inv;
  }
}

/**
 * The decoding of residual bytes as a table, for decoders that work a byte at a time (the WASM
 * SIMD residual stage, ../score/residual-simd.ts): entry `v * (8 / nbits) + t` is the bucket
 * weight that dimension `t` of a byte of value `v` decodes to (bit order as above). A decoded
 * token is then `centroid + the table's entries for its bytes`, L2-normalised, as in {@link decodeToken}.
 */
export function residualByteWeights(codec: ResidualCodec): Float32Array {
  const { nbits, weights } = codec;
  const per = 8 / nbits;
  const mask = (1 << nbits) - 1;
  const table = new Float32Array(256 * per);
  for (let v = 0; v < 256; v++) for (let t = 0; t < per; t++) table[v * per + t] = weights[(v >>> (t * nbits)) & mask]!;
  return table;
}
