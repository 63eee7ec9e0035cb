/**
 * The whole library in Node (in-thread engine, onnxruntime-node's native CPU backend) on generated test
 * models in both export layouts: loading, the recipe's output, ranking, and every coded error.
 */
import { readFileSync } from 'node:fs';
import { env as transformersEnv } from '@huggingface/transformers';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { expectCode } from '../support/errors.ts';
import { resolve } from 'node:path';
import { createSearch, type ColbertSearch } from '../../src/index.ts';
import { maxSim } from '../../src/score/cpu.ts';
import { makeTestModels, referenceVectors } from '../fixtures/make-models.ts';
import { HAVE_SHARED, REPO_ROOT, SHARED_MISSING, TOKENIZER_DIR } from '../support/shared.ts';
import { startServer } from '../support/server.ts';

const MODELS = resolve(REPO_ROOT, '.cache/test-models');
const TJS = resolve(MODELS, 'tjs');
const EXPORT = resolve(MODELS, 'colbert-export');
const SAFETENSORS_ONLY = resolve(MODELS, 'safetensors-only');
/** The installed @huggingface/transformers, which must be what runs the graph. */
const TRANSFORMERS_VERSION = (JSON.parse(readFileSync(resolve(REPO_ROOT, 'node_modules/@huggingface/transformers/package.json'), 'utf8')) as { version: string }).version;
const SKIP = new Set([2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16, 27, 28, 29, 30, 31, 32, 33, 60, 61, 62, 63, 64, 65, 92, 93, 94, 95]);


function rowNorms(m: { data: Float32Array; tokens: number; dim: number }): number[] {
  return Array.from({ length: m.tokens }, (_, i) => Math.hypot(...m.data.subarray(i * m.dim, (i + 1) * m.dim)));
}

describe.skipIf(!HAVE_SHARED)(`engine on generated models ${HAVE_SHARED ? '' : SHARED_MISSING}`, () => {
  let search: ColbertSearch;

  beforeAll(async () => {
    await makeTestModels(MODELS, TOKENIZER_DIR);
    search = await createSearch({ model: TJS, worker: false, device: 'auto' });
  });
  afterAll(async () => {
    await search?.close();
  });

  it('loads the transformers.js layout on WASM with the q8 file by default, and reports it', () => {
    expect(search.device).toBe('wasm');
    expect(search.dtype).toBe('q8');
    expect(search.dim).toBe(128);
    expect(search.info).toMatchObject({ layout: 'transformers.js', file: 'onnx/model_quantized.onnx', queryLength: 39, documentLength: 519 });
    // Node runs the graph natively: 'wasm' is the library's CPU device, onnxruntime-node's 'cpu' EP.
    expect(search.info.runtime).toBe('onnxruntime-node');
    // ... started and run by @huggingface/transformers, the version the package depends on.
    expect(search.info.transformers).toBe(TRANSFORMERS_VERSION);
    expect(search.info.prompts).toEqual({ query: 'search_query: ', document: 'search_document: ' });
    expect(search.fallbackReason).toMatch(/WebGPU/);
  });

  it('encodes a query with its prompt and marker; expansion positions are not kept by default', async () => {
    const q = await search.encodeQuery('What is ColBERT?');
    expect([...q.ids]).toEqual([50281, 50368, 8716, 64, 7267, 27, 1737, 310, 2065, 35, 6366, 32, 50282]);
    expect(q.tokens).toBe(13);
    for (const n of rowNorms(q)) expect(n).toBeCloseTo(1, 5);
  });

  it("keeps all query_length rows with expansion: 'eager'", async () => {
    const eager = await createSearch({ model: TJS, worker: false, device: 'wasm', dtype: 'fp32', expansion: 'eager' });
    try {
      const q = await eager.encodeQuery('What is ColBERT?');
      expect(q.tokens).toBe(39);
      expect([...q.ids.slice(13)]).toEqual(new Array(26).fill(50284));
      for (const n of rowNorms(q)) expect(n).toBeCloseTo(1, 5);
    } finally {
      await eager.close();
    }
  });

  it('drops skiplist punctuation from documents and truncates them to document_length', async () => {
    const [short, long] = await search.encodeDocuments(['Lift, drag; and (moment).', 'word '.repeat(2000)]);
    expect(short!.ids[0]).toBe(50281);
    expect(short!.ids[1]).toBe(50369);
    expect([...short!.ids].some((id) => SKIP.has(id))).toBe(false);
    expect(long!.tokens).toBeLessThanOrEqual(519);
    expect(long!.ids[long!.tokens - 1]).toBe(50282);
  });

  it('gives the same vectors from both layouts (same weights, head inside or outside the graph)', async () => {
    const exported = await createSearch({ model: EXPORT, worker: false, dtype: 'fp32', prompts: { query: 'search_query: ', document: 'search_document: ' } });
    const tjs = await createSearch({ model: TJS, worker: false, dtype: 'fp32' });
    try {
      expect(exported.info.layout).toBe('colbert-export');
      expect(exported.info.file).toBe('model.onnx');
      const [a] = await tjs.encodeDocuments(['Boundary layer transition on a flat plate.']);
      const [b] = await exported.encodeDocuments(['Boundary layer transition on a flat plate.']);
      expect([...b!.ids]).toEqual([...a!.ids]);
      let maxDiff = 0;
      a!.data.forEach((v, i) => (maxDiff = Math.max(maxDiff, Math.abs(v - b!.data[i]!))));
      expect(maxDiff).toBeLessThan(1e-4);
    } finally {
      await Promise.all([exported.close(), tjs.close()]);
    }
  });

  it('matches an independent float64 reference of the test model (Dense head and norm applied outside the graph)', async () => {
    const s = await createSearch({ model: TJS, worker: false, dtype: 'fp32', prompts: { query: '', document: '' } });
    try {
      const [m] = await s.encodeDocuments(['Boundary layer transition on a flat plate']);
      // No punctuation anywhere, so every input position was kept and the reference sees the same sequence.
      const ref = referenceVectors([...m!.ids], new Array(m!.tokens).fill(1));
      let maxDiff = 0;
      ref.forEach((v, i) => (maxDiff = Math.max(maxDiff, Math.abs(v - m!.data[i]!))));
      expect(maxDiff).toBeLessThan(1e-5);
    } finally {
      await s.close();
    }
  });

  it('loads the colbert-export int8 file by default on WASM', async () => {
    const exported = await createSearch({ model: EXPORT, worker: false });
    try {
      expect(exported.info).toMatchObject({ layout: 'colbert-export', dtype: 'q8', file: 'model_int8.onnx', dim: 128 });
    } finally {
      await exported.close();
    }
  });

  it('adds, searches (best first, with metadata), replaces and deletes', async () => {
    await search.add([
      { id: 'wing', text: 'Pressure distribution over a swept wing at supersonic speed.', metadata: { title: 'Wing' } },
      { id: 'heat', text: 'Heat transfer in a hypersonic laminar boundary layer.', metadata: { title: 'Heat' } },
      { id: 'shell', text: 'Buckling of thin cylindrical shells under axial compression.' },
    ]);
    const hits = await search.search('buckling of cylindrical shells', { k: 2 });
    expect(hits.map((h) => h.id)).toEqual(['shell', hits[1]!.id]);
    expect(hits).toHaveLength(2);
    expect(hits[0]!.score).toBeGreaterThan(hits[1]!.score);
    const heat = await search.search('hypersonic heat transfer');
    expect(heat[0]).toMatchObject({ id: 'heat', metadata: { title: 'Heat' } });
    expect(heat).toHaveLength(3);
    // The score is MaxSim of the two matrices.
    const q = await search.encodeQuery('hypersonic heat transfer');
    const [d] = await search.encodeDocuments(['Heat transfer in a hypersonic laminar boundary layer.']);
    expect(heat[0]!.score).toBeCloseTo(maxSim(q, d!), 4);

    await search.add([{ id: 'heat', text: 'Buckling of cylindrical shells, replaced.' }]);
    expect((await search.stats()).documents).toBe(3);
    expect(await search.delete(['shell', 'heat'])).toBe(2);
    expect((await search.search('buckling of cylindrical shells')).map((h) => h.id)).toEqual(['wing']);
  });

  it('reports encoding progress', async () => {
    const events: string[] = [];
    await search.add([{ id: 'p1', text: 'one' }, { id: 'p2', text: 'two' }], { onProgress: (p) => events.push(p.status) });
    expect(events).toContain('encode');
    expect(events.at(-1)).toBe('store');
    await search.delete(['p1', 'p2']);
  });

  it('adds precomputed embeddings and searches with a precomputed query', async () => {
    const [m] = await search.encodeDocuments(['Flutter of a cantilever plate in supersonic flow.']);
    await search.addEmbeddings([{ id: 'pre', embedding: { data: m!.data, tokens: m!.tokens, dim: 128, ids: m!.ids }, metadata: { from: 'pylate' } }]);
    const q = await search.encodeQuery('flutter of plates');
    const hits = await search.searchEmbedding(q, { k: 1 });
    expect(hits[0]).toMatchObject({ id: 'pre', metadata: { from: 'pylate' } });
    await search.delete(['pre']);
  });

  it('rejects bad input with a code and changes nothing', async () => {
    const before = await search.stats();
    await expectCode(search.add([{ id: 'e', text: '   ' }]), 'EMPTY_TEXT');
    await expectCode(search.add([{ id: 'e', text: 42 as unknown as string }]), 'NOT_A_STRING');
    await expectCode(search.add([{ id: '', text: 'x' }]), 'MISSING_ID');
    await expectCode(search.add([{ id: 'x', text: 'a' }, { id: 'x', text: 'b' }]), 'DUPLICATE_ID');
    await expectCode(search.add([{ id: 'ok', text: 'fine' }, { id: 'bad', text: '' }]), 'EMPTY_TEXT');
    await expectCode(search.search('q', { k: 0 }), 'INVALID_K');
    await expectCode(search.search('q', { k: 2.5 }), 'INVALID_K');
    await expectCode(search.search(''), 'EMPTY_TEXT');
    await expectCode(search.addEmbeddings([{ id: 'm', embedding: { data: new Float32Array(64), tokens: 1, dim: 64, ids: new Int32Array(1) } }]), 'DIMENSION_MISMATCH');
    await expectCode(search.addEmbeddings([{ id: 'm', embedding: { data: new Float32Array(100), tokens: 1, dim: 128, ids: new Int32Array(1) } }]), 'INVALID_MATRIX');
    await expectCode(search.delete(['wing', 'missing']), 'UNKNOWN_ID');
    expect(await search.stats()).toEqual(before);
    expect((await search.search('swept wing')).map((h) => h.id)).toContain('wing');
  });

  it('fails every call after close() with CLOSED', async () => {
    const s = await createSearch({ model: TJS, worker: false });
    await s.close();
    await expectCode(s.search('x'), 'CLOSED');
    await expectCode(s.add([{ id: 'a', text: 'b' }]), 'CLOSED');
  });

  it('explains a repository with only safetensors when conversion is off: MODEL_NO_ONNX naming what was found', async () => {
    const err = await expectCode(createSearch({ model: SAFETENSORS_ONLY, worker: false, convert: false }), 'MODEL_NO_ONNX');
    expect(err.message).toMatch(/model\.safetensors/);
    expect(err.details).toMatchObject({ found: expect.arrayContaining(['model.safetensors']) });
  });

  it('fails clearly for a missing model, a bad device and a bad dtype', async () => {
    await expectCode(createSearch({ model: resolve(MODELS, 'nope'), worker: false }), 'MODEL_NOT_FOUND');
    await expectCode(createSearch({ model: TJS, worker: false, device: 'cuda' as never }), 'INVALID_DEVICE');
    await expectCode(createSearch({ model: TJS, worker: false, device: 'webgpu' }), 'DEVICE_UNAVAILABLE');
    await expectCode(createSearch({ model: TJS, worker: false, dtype: 'q4' }), 'MODEL_NOT_FOUND');
    await expectCode(createSearch({ model: TJS, worker: false, dtype: 'f32' as never }), 'INVALID_ARGUMENT');
    await expectCode(createSearch({ model: TJS, worker: true }), 'UNSUPPORTED_ENVIRONMENT');
  });

  it('loads by Hub repo id and revision from a Hub-like server', async () => {
    const server = await startServer({ root: REPO_ROOT, mounts: { '/hub/': resolve(MODELS, 'hub') } });
    try {
      const s = await createSearch({ model: 'colbert-web-test/tiny-modernbert', hubUrl: `${server.url}/hub`, revision: 'v1.0', worker: false, dtype: 'fp32' });
      expect(s.info).toMatchObject({ model: 'colbert-web-test/tiny-modernbert', revision: 'v1.0', file: 'onnx/model.onnx' });
      expect(server.requests.some((r) => r.includes('/resolve/v1.0/onnx/model.onnx'))).toBe(true);
      await s.close();
    } finally {
      await server.close();
    }
  });

  it("resolves Hub ids where transformers.js's env.remoteHost / remotePathTemplate point, with no hubUrl", async () => {
    const server = await startServer({ root: REPO_ROOT, mounts: { '/hub/': resolve(MODELS, 'hub') } });
    const saved = { host: transformersEnv.remoteHost, template: transformersEnv.remotePathTemplate };
    try {
      transformersEnv.remoteHost = `${server.url}/hub/`;
      transformersEnv.remotePathTemplate = '{model}/resolve/{revision}';
      const s = await createSearch({ model: 'colbert-web-test/tiny-modernbert', revision: 'v1.0', worker: false, dtype: 'fp32' });
      expect(s.info).toMatchObject({ model: 'colbert-web-test/tiny-modernbert', revision: 'v1.0', file: 'onnx/model.onnx' });
      expect(server.requests.some((r) => r.includes('/hub/colbert-web-test/tiny-modernbert/resolve/v1.0/onnx/model.onnx'))).toBe(true);
      await s.close();
    } finally {
      transformersEnv.remoteHost = saved.host;
      transformersEnv.remotePathTemplate = saved.template;
      await server.close();
    }
  });

  it("downloads nothing when transformers.js's env.allowRemoteModels is false: an uncached model is MODEL_NOT_FOUND", async () => {
    const server = await startServer({ root: REPO_ROOT, mounts: { '/hub/': resolve(MODELS, 'hub') } });
    try {
      transformersEnv.allowRemoteModels = false;
      const err = await expectCode(createSearch({ model: 'colbert-web-test/tiny-modernbert', hubUrl: `${server.url}/hub`, worker: false }), 'MODEL_NOT_FOUND');
      expect(err.message).toMatch(/allowRemoteModels is false/);
      expect(server.requests).toEqual([]);
    } finally {
      transformersEnv.allowRemoteModels = true;
      await server.close();
    }
  });
});
