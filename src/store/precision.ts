/**
 * How token vectors are stored: the precision codecs every store and scorer agree on.
 *
 * - `fp32`: exact; 4 bytes per dimension.
 * - `fp16`: IEEE 754 half floats (round to nearest even) held as `Uint16Array` bits; 2 bytes per dimension.
 * - `int8`: symmetric per-token quantization: `value = q * scale` with `q` in [-127, 127] and
 *   `scale = max |value| / 127` of that token's row; 1 byte per dimension plus a 4-byte scale per token.
 *
 * Rule: a stored row decodes to the same floats everywhere (CPU, GPU, after export/import); scorers
 * decode with {@link decodeRow} semantics, never their own rounding.
 */

/** Storage precision of token vectors. */
export type VectorPrecision = 'fp32' | 'fp16' | 'int8';

/** Every precision, for validation and benchmarks. */
export const VECTOR_PRECISIONS: readonly VectorPrecision[] = Object.freeze(['fp32', 'fp16', 'int8']);

/** The packed array type of each precision. */
export type PackedVectors = Float32Array | Uint16Array | Int8Array;

/** Rows of vectors at one precision: `vectors` has `rows * dim` elements; `scales` one per row for int8. */
export interface PackedRows {
  precision: VectorPrecision;
  vectors: PackedVectors;
  /** Per-row scale, int8 only. */
  scales?: Float32Array;
}

/** Bytes one token costs at a precision (vectors plus scale). */
export function bytesPerToken(precision: VectorPrecision, dim: number): number {
  if (precision === 'fp32') return dim * 4;
  if (precision === 'fp16') return dim * 2;
  return dim + 4;
}

/**
 * A new, zeroed packed array for `rows` rows. With `shared`, the vectors and scales live in a
 * SharedArrayBuffer that scoring sub-workers read without a copy (only where the realm is
 * cross-origin isolated; such buffers can never be written to IndexedDB as they are).
 */
export function allocatePacked(precision: VectorPrecision, rows: number, dim: number, shared = false): PackedRows {
  const buffer = (bytes: number): ArrayBuffer | SharedArrayBuffer => (shared ? new SharedArrayBuffer(bytes) : new ArrayBuffer(bytes));
  const vectors = packedArray(precision, buffer(rows * bytesPerElement(precision) * dim));
  return precision === 'int8' ? { precision, vectors, scales: new Float32Array(buffer(rows * 4)) } : { precision, vectors };
}

/** Bytes of one stored vector element. */
function bytesPerElement(precision: VectorPrecision): number {
  return precision === 'fp32' ? 4 : precision === 'fp16' ? 2 : 1;
}

/** The packed vectors held in `buffer` (plain or shared), as the precision's array type. */
export function packedArray(precision: VectorPrecision, buffer: ArrayBufferLike): PackedVectors {
  if (precision === 'fp32') return new Float32Array(buffer);
  if (precision === 'fp16') return new Uint16Array(buffer);
  return new Int8Array(buffer);
}

/** Whether a typed array's memory is a SharedArrayBuffer (false where the realm has none). */
export function isShared(array: ArrayBufferView): boolean {
  return typeof SharedArrayBuffer === 'function' && array.buffer instanceof SharedArrayBuffer;
}

const f32 = new Float32Array(1);
const u32 = new Uint32Array(f32.buffer);

/** Float32 -> IEEE half bits, round to nearest even; overflow gives ±Infinity, NaN stays NaN. */
export function toHalf(value: number): number {
  f32[0] = value;
  const x = u32[0]!;
  const sign = (x >>> 16) & 0x8000;
  const exp = (x >>> 23) & 0xff;
  let mant = x & 0x7fffff;
  if (exp === 0xff) return sign | 0x7c00 | (mant ? 0x200 : 0);
  let e = exp - 127 + 15;
  if (e >= 0x1f) return sign | 0x7c00;
  if (e <= 0) {
    if (e < -10) return sign;
    mant |= 0x800000;
    const shift = 14 - e;
    const half = mant >>> shift;
    const rest = mant & ((1 << shift) - 1);
    const mid = 1 << (shift - 1);
    return sign | (half + (rest > mid || (rest === mid && (half & 1)) ? 1 : 0));
  }
  const half = (e << 10) | (mant >>> 13);
  const rest = mant & 0x1fff;
  // A carry out of the mantissa correctly bumps the exponent (and may give Infinity).
  return sign | (half + (rest > 0x1000 || (rest === 0x1000 && (half & 1)) ? 1 : 0));
}

/** IEEE half bits -> number (exact). */
export function fromHalf(bits: number): number {
  const sign = bits & 0x8000 ? -1 : 1;
  const exp = (bits >>> 10) & 0x1f;
  const mant = bits & 0x3ff;
  if (exp === 0) return sign * mant * 2 ** -24;
  if (exp === 0x1f) return mant ? NaN : sign * Infinity;
  return sign * (1 + mant / 1024) * 2 ** (exp - 15);
}

let halfTable: Float32Array | undefined;
/** Every half-float bit pattern decoded by {@link fromHalf} (256 KiB, built once per realm): `halfFloats()[bits]`. */
export function halfFloats(): Float32Array {
  if (!halfTable) {
    halfTable = new Float32Array(65536);
    for (let h = 0; h < 65536; h++) halfTable[h] = fromHalf(h);
  }
  return halfTable;
}

/**
 * Encodes `rows` float rows from `src` into `dst` starting at row `at`.
 * int8: each row gets its own scale; an all-zero row gets scale 0.
 */
export function encodeRows(src: Float32Array, rows: number, dim: number, dst: PackedRows, at: number): void {
  const base = at * dim;
  const n = rows * dim;
  if (dst.precision === 'fp32') {
    (dst.vectors as Float32Array).set(src.subarray(0, n), base);
  } else if (dst.precision === 'fp16') {
    const out = dst.vectors as Uint16Array;
    for (let i = 0; i < n; i++) out[base + i] = toHalf(src[i]!);
  } else {
    const out = dst.vectors as Int8Array;
    const scales = dst.scales!;
    for (let r = 0; r < rows; r++) {
      const o = r * dim;
      let max = 0;
      for (let k = 0; k < dim; k++) {
        const a = Math.abs(src[o + k]!);
        if (a > max) max = a;
      }
      const scale = max / 127;
      scales[at + r] = scale;
      const inv = scale > 0 ? 1 / scale : 0;
      for (let k = 0; k < dim; k++) out[base + o + k] = Math.round(src[o + k]! * inv);
    }
  }
}

/** Decodes row `row` of `packed` into `out` (length `dim`). */
export function decodeRow(packed: PackedRows, row: number, dim: number, out: Float32Array): Float32Array {
  const base = row * dim;
  if (packed.precision === 'fp32') {
    out.set((packed.vectors as Float32Array).subarray(base, base + dim));
  } else if (packed.precision === 'fp16') {
    const v = packed.vectors as Uint16Array;
    for (let k = 0; k < dim; k++) out[k] = fromHalf(v[base + k]!);
  } else {
    const v = packed.vectors as Int8Array;
    const scale = packed.scales![row]!;
    for (let k = 0; k < dim; k++) out[k] = v[base + k]! * scale;
  }
  return out;
}

/** Decodes `rows` rows starting at `from` into a new Float32Array. */
export function decodeRows(packed: PackedRows, from: number, rows: number, dim: number): Float32Array {
  const out = new Float32Array(rows * dim);
  const row = new Float32Array(dim);
  for (let r = 0; r < rows; r++) out.set(decodeRow(packed, from + r, dim, row), r * dim);
  return out;
}
