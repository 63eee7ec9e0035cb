/**
 * How a converted graph stores its weights. One {@link WeightFormat} per dtype emits the nodes of
 * every linear layer and of the token embedding, so the graph builder stays precision-agnostic:
 * - fp32: float weights, transposed to [in, out] for MatMul as the model bytes are assembled.
 * - fp16: half-precision weights with a Cast to float after them (half the download; onnxruntime
 *   folds the Cast into a float initializer when the session starts, so compute stays fp32).
 * - q8: int8 weights, one scale per output channel, activations quantized per call
 *   (DynamicQuantizeLinear + MatMulInteger, which onnxruntime fuses into one int8 GEMM on WASM);
 *   the embedding table is int8 with one scale per row.
 * - q4: 4-bit blocks of 32 along the input axis with one float scale each (MatMulNBits, zero point
 *   8, symmetric); the embedding is int8 as in q8.
 */
import { toHalf } from '../../store/precision.ts';
import { DataType, bytesOf, type GraphBuilder, type LazyBytes } from './onnx-writer.ts';

/** The dtypes the converter writes. */
export type ConvertDtype = 'fp32' | 'fp16' | 'q8' | 'q4';
/** Every converter dtype, in the order the CLI writes them. */
export const CONVERT_DTYPES: readonly ConvertDtype[] = Object.freeze(['fp32', 'fp16', 'q8', 'q4']);

/** A weight matrix in PyTorch layout, row-major [out, in], produced on demand. */
export interface MatrixSource {
  rows: number;
  cols: number;
  /** The values; may be a view into the checkpoint (callers must not modify it). */
  values(): Float32Array;
}

/** Emits weight-bearing nodes for one dtype. */
export interface WeightFormat {
  readonly dtype: ConvertDtype;
  /** Operator sets the emitted nodes need. */
  readonly opsets: Record<string, number>;
  /** `x [.., in] -> x W^T (+ b) [.., out]`. */
  linear(g: GraphBuilder, x: string, name: string, weight: MatrixSource, bias?: Float32Array): string;
  /** Rows of `table` [rows, cols] gathered by `ids`, as float. */
  embedding(g: GraphBuilder, ids: string, name: string, table: MatrixSource): string;
}

/** The transpose of a [rows, cols] matrix, as float32 bytes. */
function transposed(w: MatrixSource): LazyBytes {
  return {
    byteLength: w.rows * w.cols * 4,
    fill(dst) {
      const src = w.values();
      const out = new Float32Array(w.rows * w.cols);
      for (let r = 0; r < w.rows; r++) for (let c = 0; c < w.cols; c++) out[c * w.rows + r] = src[r * w.cols + c]!;
      dst.set(bytesOf(out));
    },
  };
}

function halfBytes(values: Float32Array, transpose: { rows: number; cols: number } | null): Uint8Array {
  const out = new Uint16Array(values.length);
  if (!transpose) for (let i = 0; i < values.length; i++) out[i] = toHalf(values[i]!);
  else {
    const { rows, cols } = transpose;
    for (let r = 0; r < rows; r++) for (let c = 0; c < cols; c++) out[c * rows + r] = toHalf(values[r * cols + c]!);
  }
  return bytesOf(out);
}

function addBias(g: GraphBuilder, y: string, name: string, bias?: Float32Array): string {
  if (!bias) return y;
  return g.node('Add', [y, g.initializer(`${name}.bias`, DataType.FLOAT, [bias.length], bytesOf(bias))]);
}

/** Symmetric int8 quantization of each row (scale = max |w| / 127). */
export function quantizeRowsInt8(values: Float32Array, rows: number, cols: number): { q: Int8Array; scale: Float32Array } {
  const q = new Int8Array(rows * cols);
  const scale = new Float32Array(rows);
  for (let r = 0; r < rows; r++) {
    let max = 0;
    for (let c = 0; c < cols; c++) max = Math.max(max, Math.abs(values[r * cols + c]!));
    const s = max / 127 || 1;
    scale[r] = s;
    for (let c = 0; c < cols; c++) q[r * cols + c] = Math.round(values[r * cols + c]! / s);
  }
  return { q, scale };
}

function int8Embedding(g: GraphBuilder, ids: string, name: string, table: MatrixSource): string {
  const { q, scale } = quantizeRowsInt8(table.values(), table.rows, table.cols);
  g.initializer(`${name}_quantized`, DataType.INT8, [table.rows, table.cols], bytesOf(q));
  g.initializer(`${name}_scale`, DataType.FLOAT, [table.rows, 1], bytesOf(scale));
  const rows = g.node('Cast', [g.node('Gather', [`${name}_quantized`, ids], { axis: { i: 0 } })], { to: { i: DataType.FLOAT } });
  return g.node('Mul', [rows, g.node('Gather', [`${name}_scale`, ids], { axis: { i: 0 } })]);
}

const fp32: WeightFormat = {
  dtype: 'fp32',
  opsets: { '': 17 },
  linear(g, x, name, w, bias) {
    const wt = g.initializer(`${name}.weight_t`, DataType.FLOAT, [w.cols, w.rows], transposed(w));
    return addBias(g, g.node('MatMul', [x, wt]), name, bias);
  },
  embedding(g, ids, name, table) {
    const data: LazyBytes = { byteLength: table.rows * table.cols * 4, fill: (dst) => dst.set(bytesOf(table.values())) };
    return g.node('Gather', [g.initializer(name, DataType.FLOAT, [table.rows, table.cols], data), ids], { axis: { i: 0 } });
  },
};

const fp16: WeightFormat = {
  dtype: 'fp16',
  opsets: { '': 17 },
  linear(g, x, name, w, bias) {
    const data: LazyBytes = { byteLength: w.rows * w.cols * 2, fill: (dst) => dst.set(halfBytes(w.values(), w)) };
    const wt = g.node('Cast', [g.initializer(`${name}.weight_t_fp16`, DataType.FLOAT16, [w.cols, w.rows], data)], { to: { i: DataType.FLOAT } });
    return addBias(g, g.node('MatMul', [x, wt]), name, bias);
  },
  embedding(g, ids, name, table) {
    const data: LazyBytes = { byteLength: table.rows * table.cols * 2, fill: (dst) => dst.set(halfBytes(table.values(), null)) };
    const rows = g.node('Gather', [g.initializer(`${name}_fp16`, DataType.FLOAT16, [table.rows, table.cols], data), ids], { axis: { i: 0 } });
    return g.node('Cast', [rows], { to: { i: DataType.FLOAT } });
  },
};

const q8: WeightFormat = {
  dtype: 'q8',
  opsets: { '': 17 },
  linear(g, x, name, w, bias) {
    // Per output channel: rows of W are columns of W^T.
    const { q, scale } = quantizeRowsInt8(w.values(), w.rows, w.cols);
    const qt = new Int8Array(w.rows * w.cols);
    for (let r = 0; r < w.rows; r++) for (let c = 0; c < w.cols; c++) qt[c * w.rows + r] = q[r * w.cols + c]!;
    const wq = g.initializer(`${name}.weight_t_quantized`, DataType.INT8, [w.cols, w.rows], bytesOf(qt));
    const ws = g.initializer(`${name}.weight_scale`, DataType.FLOAT, [w.rows], bytesOf(scale));
    const [xq, xs, xzp] = g.nodeN('DynamicQuantizeLinear', [x], 3) as [string, string, string];
    const acc = g.node('MatMulInteger', [xq, wq, xzp]);
    const y = g.node('Mul', [g.node('Cast', [acc], { to: { i: DataType.FLOAT } }), g.node('Mul', [xs, ws])]);
    return addBias(g, y, name, bias);
  },
  embedding: int8Embedding,
};

/** Block size of the 4-bit format (elements along the input axis sharing one scale). */
export const Q4_BLOCK = 32;

/** Packs W [N, K] into MatMulNBits blobs: [N, ceil(K/32), 16] bytes, low nibble first, zero point 8. */
export function quantizeQ4(values: Float32Array, rows: number, cols: number): { blobs: Uint8Array; scales: Float32Array; blocks: number } {
  const blocks = Math.ceil(cols / Q4_BLOCK);
  const blobs = new Uint8Array(rows * blocks * (Q4_BLOCK / 2));
  const scales = new Float32Array(rows * blocks);
  for (let r = 0; r < rows; r++) {
    for (let b = 0; b < blocks; b++) {
      const start = b * Q4_BLOCK;
      const end = Math.min(cols, start + Q4_BLOCK);
      let max = 0;
      for (let c = start; c < end; c++) max = Math.max(max, Math.abs(values[r * cols + c]!));
      const s = max / 7 || 1;
      scales[r * blocks + b] = s;
      const blob = (r * blocks + b) * (Q4_BLOCK / 2);
      for (let j = 0; j < Q4_BLOCK; j++) {
        const c = start + j;
        const v = c < end ? Math.max(-8, Math.min(7, Math.round(values[r * cols + c]! / s))) + 8 : 8;
        blobs[blob + (j >> 1)]! |= j & 1 ? v << 4 : v;
      }
    }
  }
  return { blobs, scales, blocks };
}

const q4: WeightFormat = {
  dtype: 'q4',
  opsets: { '': 17, 'com.microsoft': 1 },
  linear(g, x, name, w, bias) {
    const { blobs, scales, blocks } = quantizeQ4(w.values(), w.rows, w.cols);
    const b = g.initializer(`${name}.weight_q4`, DataType.UINT8, [w.rows, blocks, Q4_BLOCK / 2], blobs);
    const s = g.initializer(`${name}.weight_q4_scales`, DataType.FLOAT, [w.rows * blocks], bytesOf(scales));
    const [y] = g.nodeN('MatMulNBits', [x, b, s], 1, { K: { i: w.cols }, N: { i: w.rows }, bits: { i: 4 }, block_size: { i: Q4_BLOCK } }, 'com.microsoft');
    return addBias(g, y!, name, bias);
  },
  embedding: int8Embedding,
};

/** The weight format of a dtype. */
export function weightFormat(dtype: ConvertDtype): WeightFormat {
  return { fp32, fp16, q8, q4 }[dtype];
}
