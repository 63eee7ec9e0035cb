/**
 * The quantized weight formats run by onnxruntime (WASM) compute exactly what their stored codes
 * mean: a one-layer graph per format against x · dequantize(W)^T computed here, so a wrong nibble
 * order, block layout or scale axis cannot hide behind a model-level tolerance.
 */
import { describe, expect, it } from 'vitest';
import * as ort from 'onnxruntime-web';
import { DataType, GraphBuilder, encodeModel } from '../../src/model/convert/onnx-writer.ts';
import { quantizeQ4, quantizeRowsInt8, weightFormat, Q4_BLOCK, type ConvertDtype } from '../../src/model/convert/quantize.ts';
import { mulberry32 } from '../fixtures/make-models.ts';

const N = 24; // output features
const K = 80; // input features: not a multiple of the 32-block, so the padded tail is exercised
const M = 5;

function random(n: number, seed: number): Float32Array {
  const next = mulberry32(seed);
  return Float32Array.from({ length: n }, () => next() * 2 - 1);
}

async function runLinear(dtype: ConvertDtype, w: Float32Array, x: Float32Array): Promise<Float32Array> {
  const g = new GraphBuilder('one_linear');
  const input = g.input('x', DataType.FLOAT, [M, K]);
  const format = weightFormat(dtype);
  g.node('Identity', [format.linear(g, input, 'lin', { rows: N, cols: K, values: () => w })], undefined, 'y');
  g.output('y', DataType.FLOAT, [M, N]);
  const session = await ort.InferenceSession.create(encodeModel(g, format.opsets), { executionProviders: ['wasm'] });
  const out = (await session.run({ x: new ort.Tensor('float32', x, [M, K]) }))['y']!.data as Float32Array;
  await session.release();
  return out;
}

function matmulT(x: Float32Array, w: Float64Array | Float32Array): Float64Array {
  const y = new Float64Array(M * N);
  for (let m = 0; m < M; m++) for (let n = 0; n < N; n++) for (let k = 0; k < K; k++) y[m * N + n]! += x[m * K + k]! * w[n * K + k]!;
  return y;
}

const maxAbs = (a: ArrayLike<number>, b: ArrayLike<number>): number => Array.from(a).reduce((m, v, i) => Math.max(m, Math.abs(v - b[i]!)), 0);

describe('quantized weight formats', () => {
  const w = random(N * K, 1);
  const x = random(M * K, 2);

  it('q4: MatMulNBits equals x times the dequantized 4-bit blocks', async () => {
    const { blobs, scales, blocks } = quantizeQ4(w, N, K);
    expect(blocks).toBe(Math.ceil(K / Q4_BLOCK));
    const deq = new Float64Array(N * K);
    for (let n = 0; n < N; n++) {
      for (let k = 0; k < K; k++) {
        const b = Math.floor(k / Q4_BLOCK);
        const j = k % Q4_BLOCK;
        const byte = blobs[(n * blocks + b) * (Q4_BLOCK / 2) + (j >> 1)]!;
        const code = j & 1 ? byte >> 4 : byte & 15;
        deq[n * K + k] = (code - 8) * scales[n * blocks + b]!;
      }
    }
    expect(maxAbs(deq, w)).toBeLessThan(Math.max(...scales) / 2 + 1e-6);
    expect(maxAbs(await runLinear('q4', w, x), matmulT(x, deq))).toBeLessThan(1e-4);
  });

  it('q8: int8 weights per output channel with dynamically quantized activations stay within the activation step', async () => {
    const { q, scale } = quantizeRowsInt8(w, N, K);
    const deq = Float64Array.from(q, (v, i) => v * scale[Math.floor(i / K)]!);
    const y = await runLinear('q8', w, x);
    // Activations are quantized to uint8 over [min, max] of x: one step is (max - min) / 255.
    const step = (Math.max(...x, 0) - Math.min(...x, 0)) / 255;
    const bound = (K * step * Math.max(...Array.from(deq, Math.abs))) / 2;
    expect(maxAbs(y, matmulT(x, deq))).toBeLessThan(bound);
    expect(maxAbs(y, matmulT(x, w))).toBeLessThan(0.1);
  });

  it('fp32 and fp16 equal the float (and half-rounded) product', async () => {
    expect(maxAbs(await runLinear('fp32', w, x), matmulT(x, w))).toBeLessThan(1e-5);
    expect(maxAbs(await runLinear('fp16', w, x), matmulT(x, w))).toBeLessThan(5e-3);
  });
});
