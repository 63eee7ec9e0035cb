/**
 * `colbert-web convert`: from a local folder and from a Hub repo id (served by the local Hub-like
 * test server), into the transformers.js layout that the library then loads directly (no
 * conversion at load time), giving the same vectors as the on-the-fly conversion.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { existsSync } from 'node:fs';
import { cp, mkdir, rm } from 'node:fs/promises';
import { resolve } from 'node:path';
import { main } from '../../src/cli/main.ts';
import { loadEncoder } from '../../src/model/encoder.ts';
import { makeCheckpoint, TINY } from '../fixtures/make-checkpoint.ts';
import { HAVE_SHARED, REPO_ROOT, SHARED_MISSING } from '../support/shared.ts';
import { startServer } from '../support/server.ts';

const ROOT = resolve(REPO_ROOT, '.cache/cli-test');
const CKPT = resolve(ROOT, 'checkpoint');
const TEXTS = ['Laminar boundary layers on swept wings at supersonic speeds, with transition measured in flight.'];

describe.skipIf(!HAVE_SHARED)(`colbert-web convert ${HAVE_SHARED ? '' : SHARED_MISSING}`, () => {
  beforeAll(async () => {
    await rm(ROOT, { recursive: true, force: true });
    await makeCheckpoint(CKPT, TINY, 3);
  });
  afterAll(async () => {
    await rm(ROOT, { recursive: true, force: true });
  });

  it('writes the transformers.js layout from a folder, and the library loads it without converting', async () => {
    const out = resolve(ROOT, 'out-local');
    expect(await main(['convert', CKPT, '--out', out, '--dtype', 'fp32,fp16,q8,q4'])).toBe(0);
    for (const f of ['onnx/model.onnx', 'onnx/model_fp16.onnx', 'onnx/model_quantized.onnx', 'onnx/model_q4.onnx', 'config.json', 'tokenizer.json', 'config_sentence_transformers.json', '1_Dense/model.safetensors']) {
      expect(existsSync(resolve(out, f)), f).toBe(true);
    }
    expect(existsSync(resolve(out, 'model.safetensors'))).toBe(false);

    const fromExport = await loadEncoder({ model: out, device: 'wasm', dtype: 'fp32' });
    expect(fromExport.info).toMatchObject({ file: 'onnx/model.onnx', layout: 'transformers.js', dim: TINY.dim });
    expect(fromExport.info.converted).toBeUndefined();
    const onTheFly = await loadEncoder({ model: CKPT, device: 'wasm', dtype: 'fp32' });
    const [a] = await fromExport.encodeDocuments(TEXTS);
    const [b] = await onTheFly.encodeDocuments(TEXTS);
    expect(a!.tokens).toBe(b!.tokens);
    let worst = 0;
    a!.data.forEach((v, i) => (worst = Math.max(worst, Math.abs(v - b!.data[i]!))));
    expect(worst).toBeLessThan(1e-6);
    await fromExport.dispose();
    await onTheFly.dispose();

    const q8 = await loadEncoder({ model: out, device: 'wasm' });
    expect(q8.info).toMatchObject({ file: 'onnx/model_quantized.onnx', dtype: 'q8' });
    await q8.dispose();
  });

  it('converts a Hub repo id with a revision through the Hub-like server', async () => {
    const hub = resolve(ROOT, 'hub');
    await mkdir(resolve(hub, 'test-org'), { recursive: true });
    await cp(CKPT, resolve(hub, 'test-org/tiny-colbert'), { recursive: true });
    const server = await startServer({ root: REPO_ROOT, mounts: { '/hub/': hub } });
    try {
      const out = resolve(ROOT, 'out-hub');
      expect(await main(['convert', 'test-org/tiny-colbert', '--out', out, '--dtype', 'q8', '--revision', 'v2', '--hub-url', `${server.url}/hub`])).toBe(0);
      expect(existsSync(resolve(out, 'onnx/model_quantized.onnx'))).toBe(true);
      expect(server.requests.some((r) => r.includes('/test-org/tiny-colbert/resolve/v2/model.safetensors'))).toBe(true);
    } finally {
      await server.close();
    }
  });

  it('fails with a usage error for bad arguments and a clear error for a missing model', async () => {
    expect(await main(['convert', CKPT])).toBe(2);
    expect(await main(['convert', CKPT, '--out', resolve(ROOT, 'x'), '--dtype', 'int3'])).toBe(2);
    expect(await main(['explode'])).toBe(2);
    expect(await main(['convert', resolve(ROOT, 'nope'), '--out', resolve(ROOT, 'y')])).toBe(1);
  });
});
