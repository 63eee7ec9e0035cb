/**
 * The safetensors -> ONNX converter on a generated tiny PyLate ModernBERT checkpoint (4 layers:
 * global, local, local, global; window 8 so ordinary texts cross it), checked against the
 * independent float64 reference: through the library's loader (conversion on a safetensors-only
 * repo), on padded batches and on masked query-expansion rows; the quantized variants' deviation;
 * the error paths; and createSearch end to end over HTTP.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { expectCode } from '../support/errors.ts';
import { readFile, rm, writeFile, cp } from 'node:fs/promises';
import { resolve } from 'node:path';
import * as ort from 'onnxruntime-web';
import { createSearch } from '../../src/index.ts';
import { loadEncoder, type Encoder } from '../../src/model/encoder.ts';
import { convertCheckpoint } from '../../src/model/convert/convert.ts';
import { CONVERT_DTYPES } from '../../src/model/convert/quantize.ts';
import { parseSafetensors, tensorToFloat32 } from '../../src/model/safetensors.ts';
import type { Progress } from '../../src/types.ts';
import { makeCheckpoint, TINY } from '../fixtures/make-checkpoint.ts';
import { ReferenceModernBert, type RefDense } from '../fixtures/reference-modernbert.ts';
import { HAVE_SHARED, REPO_ROOT, SHARED_MISSING } from '../support/shared.ts';
import { startServer } from '../support/server.ts';

const ROOT = resolve(REPO_ROOT, '.cache/checkpoints');
const TINY_DIR = resolve(ROOT, 'tiny');
const DOCS = [
  'The swept wing delays the onset of compressibility drag at high subsonic speeds, as wind tunnel tests showed.',
  'Boundary layer transition on a flat plate.',
  'Heat transfer to a blunt body in hypersonic flow, measured in a shock tube over many runs and compared with theory.',
];


async function readCheckpoint(dir: string): Promise<{ config: Record<string, unknown>; weights: Uint8Array; head: RefDense[] }> {
  const config = JSON.parse(await readFile(resolve(dir, 'config.json'), 'utf8')) as Record<string, unknown>;
  const weights = new Uint8Array(await readFile(resolve(dir, 'model.safetensors')));
  const dense = parseSafetensors(new Uint8Array(await readFile(resolve(dir, '1_Dense/model.safetensors')))).get('linear.weight')!;
  const [out, inp] = dense.shape as [number, number];
  return { config, weights, head: [{ weight: tensorToFloat32(dense), inFeatures: inp, outFeatures: out, bias: null, activation: 'identity' }] };
}

const i64 = (values: ArrayLike<number>): BigInt64Array => BigInt64Array.from(Array.from(values, (v) => BigInt(v)));

/** Largest absolute difference between ONNX rows and reference rows. */
function maxDiff(data: Float32Array, dim: number, ref: Float64Array[]): number {
  let worst = 0;
  ref.forEach((row, r) => row.forEach((v, k) => (worst = Math.max(worst, Math.abs(data[r * dim + k]! - v)))));
  return worst;
}

describe.skipIf(!HAVE_SHARED)(`safetensors -> ONNX conversion ${HAVE_SHARED ? '' : SHARED_MISSING}`, () => {
  let parts: Awaited<ReturnType<typeof readCheckpoint>>;
  let reference: ReferenceModernBert;
  let encoder: Encoder;

  beforeAll(async () => {
    await rm(ROOT, { recursive: true, force: true });
    await makeCheckpoint(TINY_DIR, TINY);
    parts = await readCheckpoint(TINY_DIR);
    reference = new ReferenceModernBert(parts.config, parts.weights, parts.head);
  });
  afterAll(async () => {
    await encoder?.dispose();
  });

  it('the generated checkpoint has the published layout: tensor names without a model. prefix, no layer-0 attn_norm', async () => {
    const names = [...parseSafetensors(parts.weights).keys()];
    expect(names).toContain('embeddings.tok_embeddings.weight');
    expect(names).toContain('layers.1.attn_norm.weight');
    expect(names).not.toContain('layers.0.attn_norm.weight');
    expect(names).toContain('layers.3.mlp.Wi.weight');
    expect(names.every((n) => !n.startsWith('model.'))).toBe(true);
  });

  it('loads a safetensors-only repo by converting it (fp32) and matches the float64 reference to 1e-4 on a padded batch', async () => {
    const events: Progress[] = [];
    encoder = await loadEncoder({ model: TINY_DIR, device: 'wasm', dtype: 'fp32', expansion: 'eager', onProgress: (p) => events.push(p) });
    expect(encoder.info).toMatchObject({ dtype: 'fp32', device: 'wasm', file: 'model.safetensors', converted: { cached: false } });
    expect(encoder.dim).toBe(TINY.dim);
    expect(events.filter((e) => e.status === 'convert').map((e) => (e as { stage: string }).stage)).toEqual(['start', 'done']);

    // One call, three lengths: the shorter documents are padded inside the batch.
    const matrices = await encoder.encodeDocuments(DOCS);
    let worst = 0;
    DOCS.forEach((text, d) => {
      const enc = encoder.tokenizer.encodeDocument(text);
      expect(enc.inputIds.length).toBeGreaterThan(TINY.local_attention); // crosses the sliding window
      const full = reference.forward(enc.inputIds, enc.attentionMask);
      const kept = encoder.tokenizer.keptDocumentPositions(enc);
      expect(matrices[d]!.tokens).toBe(kept.length);
      worst = Math.max(worst, maxDiff(matrices[d]!.data, TINY.dim, kept.map((p) => full[p]!)));
    });
    expect(worst).toBeLessThan(1e-4);
  });

  it('matches the reference on masked [MASK] expansion rows (eager mode) that see real keys', async () => {
    const q = await encoder.encodeQueries(['swept wing compressibility drag at subsonic speed']);
    const enc = encoder.tokenizer.encodeQuery('swept wing compressibility drag at subsonic speed');
    expect(q[0]!.tokens).toBe(39);
    const full = reference.forward(enc.inputIds, enc.attentionMask);
    const half = Math.floor(TINY.local_attention / 2);
    // Rows with no unmasked key inside the window are undefined in every implementation; skip those.
    const rows = Array.from(enc.inputIds, (_, i) => i).filter((i) => enc.attentionMask.some((m, j) => m === 1 && Math.abs(i - j) <= half));
    expect(rows.some((i) => enc.attentionMask[i] === 0)).toBe(true);
    const sub = new Float32Array(rows.length * TINY.dim);
    rows.forEach((r, n) => sub.set(q[0]!.data.subarray(r * TINY.dim, (r + 1) * TINY.dim), n * TINY.dim));
    expect(maxDiff(sub, TINY.dim, rows.map((r) => full[r]!))).toBeLessThan(1e-4);
  });

  it('the check has teeth: swapped GeGLU halves, a missing window or swapped rotary thetas disagree with the reference', async () => {
    // Swap the halves of one layer's Wi: the converted graph must then disagree with the reference.
    const tensors = parseSafetensors(parts.weights);
    const wi = tensors.get('layers.2.mlp.Wi.weight')!;
    const half = wi.data.byteLength / 2;
    const swapped = new Uint8Array(parts.weights);
    const offset = wi.data.byteOffset - parts.weights.byteOffset;
    swapped.set(wi.data.subarray(half), offset);
    swapped.set(wi.data.subarray(0, half), offset + half);
    const session = await ort.InferenceSession.create(convertCheckpoint({ ...parts, weights: swapped }, 'fp32'), { executionProviders: ['wasm'] });
    const enc = encoder.tokenizer.encodeDocument(DOCS[0]!);
    const n = enc.inputIds.length;
    const out = await session.run({
      input_ids: new ort.Tensor('int64', i64(enc.inputIds), [1, n]),
      attention_mask: new ort.Tensor('int64', i64(enc.attentionMask), [1, n]),
    });
    const ref = reference.forward(enc.inputIds, enc.attentionMask);
    expect(maxDiff(out['output']!.data as Float32Array, TINY.dim, ref)).toBeGreaterThan(1e-2);
    await session.release();
    // A graph whose sliding layers attend globally, or whose thetas are swapped, must disagree too.
    for (const change of [{ local_attention: 4096 }, { global_rope_theta: 10000, local_rope_theta: 160000 }]) {
      const other = await ort.InferenceSession.create(convertCheckpoint({ ...parts, config: { ...parts.config, ...change } }, 'fp32'), { executionProviders: ['wasm'] });
      const data = (await other.run({ input_ids: new ort.Tensor('int64', i64(enc.inputIds), [1, n]), attention_mask: new ort.Tensor('int64', i64(enc.attentionMask), [1, n]) }))['output']!.data as Float32Array;
      expect(maxDiff(data, TINY.dim, ref)).toBeGreaterThan(1e-3);
      await other.release();
    }
  });

  it('quantized variants stay close to fp32 and shrink the model', async () => {
    const enc = encoder.tokenizer.encodeDocument(DOCS[2]!);
    const n = enc.inputIds.length;
    const feeds = {
      input_ids: new ort.Tensor('int64', i64(enc.inputIds), [1, n]),
      attention_mask: new ort.Tensor('int64', i64(enc.attentionMask), [1, n]),
    };
    const ref = reference.forward(enc.inputIds, enc.attentionMask);
    const sizes: Record<string, number> = {};
    const minCos: Record<string, number> = {};
    for (const dtype of CONVERT_DTYPES) {
      const bytes = convertCheckpoint(parts, dtype);
      sizes[dtype] = bytes.byteLength;
      const session = await ort.InferenceSession.create(bytes, { executionProviders: ['wasm'], graphOptimizationLevel: 'all' });
      const data = (await session.run(feeds))['output']!.data as Float32Array;
      minCos[dtype] = Math.min(...ref.map((row, r) => row.reduce((a, v, k) => a + v * data[r * TINY.dim + k]!, 0)));
      await session.release();
    }
    expect(minCos['fp32']).toBeGreaterThan(0.99999);
    expect(minCos['fp16']).toBeGreaterThan(0.9999);
    expect(minCos['q8']).toBeGreaterThan(0.99);
    expect(minCos['q4']).toBeGreaterThan(0.9);
    expect(sizes['fp16']!).toBeLessThan(sizes['fp32']! * 0.55);
    expect(sizes['q8']!).toBeLessThan(sizes['fp32']! * 0.3);
    expect(sizes['q4']!).toBeLessThan(sizes['q8']!);
  });

  it('defaults to q8 on WASM when no dtype is asked for', async () => {
    const e = await loadEncoder({ model: TINY_DIR, device: 'wasm' });
    expect(e.info).toMatchObject({ dtype: 'q8', converted: { cached: false } });
    await e.dispose();
  });

  it('keeps MODEL_NO_ONNX for convert: false and for unsupported architectures; names a missing tensor', async () => {
    const err = await expectCode(loadEncoder({ model: TINY_DIR, device: 'wasm', convert: false }), 'MODEL_NO_ONNX');
    expect(err.details).toMatchObject({ found: expect.arrayContaining(['model.safetensors']) });

    const other = resolve(ROOT, 'llama');
    await cp(TINY_DIR, other, { recursive: true });
    await writeFile(resolve(other, 'config.json'), JSON.stringify({ ...parts.config, model_type: 'llama' }));
    await expectCode(loadEncoder({ model: other, device: 'wasm' }), 'MODEL_NO_ONNX');

    const broken = resolve(ROOT, 'broken');
    await cp(TINY_DIR, broken, { recursive: true });
    const tensors = Object.fromEntries([...parseSafetensors(parts.weights)].filter(([name]) => name !== 'layers.1.mlp_norm.weight'));
    const { writeSafetensors } = await import('../../src/model/safetensors.ts');
    await writeFile(resolve(broken, 'model.safetensors'), writeSafetensors(tensors));
    const missing = await expectCode(loadEncoder({ model: broken, device: 'wasm' }), 'MODEL_CONFIG_INVALID');
    expect(missing.message).toMatch(/layers\.1\.mlp_norm\.weight/);
  });

  it('createSearch converts a safetensors-only repo served over HTTP, encodes and ranks', async () => {
    const server = await startServer({ root: REPO_ROOT, mounts: { '/ckpt/': TINY_DIR } });
    try {
      const events: Progress[] = [];
      const search = await createSearch({ model: `${server.url}/ckpt/`, worker: false, device: 'wasm', onProgress: (p) => events.push(p) });
      expect(search.info).toMatchObject({ file: 'model.safetensors', dtype: 'q8' });
      expect(events.some((e) => e.status === 'download' && e.file === 'model.safetensors')).toBe(true);
      await search.add(DOCS.map((text, i) => ({ id: `d${i}`, text })));
      const hits = await search.search(DOCS[2]!);
      expect(hits[0]!.id).toBe('d2');
      expect((await search.search(DOCS[0]!))[0]!.id).toBe('d0');
      await search.close();
    } finally {
      await server.close();
    }
  });
});
