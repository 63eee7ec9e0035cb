/**
 * The compressed index through the public API in Node (in-thread engine, generated test model,
 * fake-indexeddb): the option shape and its errors, search against `exhaustive: true`, stats,
 * deletes, fp16 as the new default precision (old fp32 indexes keep theirs), reopening a
 * persistent compressed index and export/import.
 */
import 'fake-indexeddb/auto';
import { resolve } from 'node:path';
import { afterEach, beforeAll, describe, expect, it } from 'vitest';
import { createSearch, deleteIndex, listIndexes, type ColbertSearch } from '../../src/index.ts';
import { makeTestModels } from '../fixtures/make-models.ts';
import { clusteredData } from '../support/clusters.ts';
import { codeOf } from '../support/errors.ts';
import { HAVE_SHARED, REPO_ROOT, SHARED_MISSING, TOKENIZER_DIR } from '../support/shared.ts';
import { FORMAT_VERSION } from '../../src/store/manifest.ts';

const TJS = resolve(REPO_ROOT, '.cache/test-models/tjs');
const opened: ColbertSearch[] = [];

async function open(options: Parameters<typeof createSearch>[0] = {}): Promise<ColbertSearch> {
  const s = await createSearch({ model: TJS, worker: false, device: 'wasm', dtype: 'fp32', ...options });
  opened.push(s);
  return s;
}

const data = clusteredData({ docs: 240, queries: 12, seed: 21 });

describe.skipIf(!HAVE_SHARED)(`compressed index through the engine ${HAVE_SHARED ? '' : SHARED_MISSING}`, () => {
  beforeAll(async () => {
    await makeTestModels(resolve(REPO_ROOT, '.cache/test-models'), TOKENIZER_DIR);
  });
  afterEach(async () => {
    await Promise.all(opened.splice(0).map((s) => s.close()));
    for (const { name } of await listIndexes()) await deleteIndex(name);
  });

  it('refuses a bad compression option or search knob with INVALID_ARGUMENT', async () => {
    expect(await codeOf(open({ compression: { nbits: 3 as never } }))).toBe('INVALID_ARGUMENT');
    expect(await codeOf(open({ compression: { poolFactor: 5 as never } }))).toBe('INVALID_ARGUMENT');
    expect(await codeOf(open({ compression: { rerank: 1 as never } }))).toBe('INVALID_ARGUMENT');
    const s = await open({ compression: {} });
    expect(await codeOf(s.searchEmbedding(data.queries[0]!, { exhaustive: 'yes' as never }))).toBe('INVALID_ARGUMENT');
    expect(await codeOf(s.searchEmbedding(data.queries[0]!, { nprobe: 0 }))).toBe('INVALID_ARGUMENT');
    expect(await codeOf(s.searchEmbedding(data.queries[0]!, { candidates: 1.5 }))).toBe('INVALID_ARGUMENT');
    expect(await codeOf(s.searchEmbedding(data.queries[0]!, { rerankDepth: -1 }))).toBe('INVALID_ARGUMENT');
  });

  it('new indexes store fp16; an fp32 index keeps fp32 when reopened', async () => {
    expect((await (await open()).stats()).precision).toBe('fp16');
    const old = await open({ name: 'old', precision: 'fp32' });
    await old.addEmbeddings(data.docs.slice(0, 2));
    await old.close();
    const again = await open({ name: 'old' });
    expect((await again.stats()).precision).toBe('fp32');
    expect((await again.stats()).documents).toBe(2);
  });

  it('searches through the codes with exhaustive scores for the top 10; deletes and stats follow', async () => {
    const s = await open({ compression: { nbits: 2 } });
    expect((await s.stats()).compression).toMatchObject({ state: 'exhaustive', centroids: 0 });
    for (let i = 0; i < data.docs.length; i += 80) await s.addEmbeddings(data.docs.slice(i, i + 80));
    const stats = await s.stats();
    expect(stats.compression).toMatchObject({ state: 'ready', nbits: 2, rerank: true });
    expect(stats.compression!.codeBytes).toBeGreaterThan(0);
    expect(stats.vectorBytes).toBe(stats.tokens * 256 + stats.compression!.codeBytes);
    let overlap = 0;
    for (const q of data.queries) {
      const want = await s.searchEmbedding(q, { k: 10, exhaustive: true });
      const got = await s.searchEmbedding(q, { k: 10 });
      const truth = new Map(want.map((h) => [h.id, h.score]));
      overlap += got.filter((h) => truth.has(h.id)).length / 10 / data.queries.length;
      for (const h of got) if (truth.has(h.id)) expect(Math.abs(h.score - truth.get(h.id)!)).toBeLessThan(1e-5);
    }
    expect(overlap).toBeGreaterThanOrEqual(0.99);
    const q = data.queries[0]!;
    // The rerank depth reaches the compressed index: only that many documents are rescored exactly.
    const trace = () => (s as unknown as { engine: { compressedDiagnostics(): { lastQuery: { survivors: string[]; rescored: number } } } }).engine.compressedDiagnostics().lastQuery;
    await s.searchEmbedding(q, { k: 10, nprobe: 64, rerankDepth: 12 });
    expect(trace().survivors.length).toBeGreaterThan(12);
    expect(trace().rescored).toBe(12);
    const top = await s.searchEmbedding(q, { k: 3 });
    await s.delete([top[0]!.id]);
    expect((await s.searchEmbedding(q, { k: 10 })).map((h) => h.id)).not.toContain(top[0]!.id);
    expect((await s.searchEmbedding(q, { k: 10, exhaustive: true })).map((h) => h.id)).not.toContain(top[0]!.id);
  });

  it('a persistent compressed index reads its codes when reopened, and export/import carries them', async () => {
    const s = await open({ name: 'cmp', compression: { nbits: 1 } });
    await s.addEmbeddings(data.docs);
    expect((await s.stats()).compression).toMatchObject({ state: 'ready', trainings: 1 });
    const q = data.queries[1]!;
    const before = await s.searchEmbedding(q, { k: 5 });
    const file = await s.exportIndex();
    expect(new DataView(file.buffer, file.byteOffset).getUint32(8, true)).toBe(FORMAT_VERSION);
    const trainedTokens = (await s.stats()).compression!.trainedTokens;
    await s.close();
    const again = await open({ name: 'cmp', compression: { nbits: 1 } });
    expect((await again.stats()).compression).toMatchObject({ state: 'ready', nbits: 1, trainings: 0, trainedTokens });
    expect(await again.searchEmbedding(q, { k: 5 })).toEqual(before);
    // Into memory and into IndexedDB: the file's codes are used, nothing is trained.
    const mem = await open({ compression: { nbits: 1 } });
    await mem.importIndex(file);
    expect((await mem.stats()).compression).toMatchObject({ state: 'ready', trainings: 0, trainedTokens });
    expect(await mem.searchEmbedding(q, { k: 5 })).toEqual(before);
    const idb = await open({ name: 'imported', compression: { nbits: 1 } });
    await idb.importIndex(file);
    expect((await idb.stats()).compression).toMatchObject({ state: 'ready', trainings: 0, trainedTokens });
    await idb.close();
    const reopened = await open({ name: 'imported', compression: { nbits: 1 } });
    expect((await reopened.stats()).compression).toMatchObject({ state: 'ready', trainings: 0, trainedTokens });
    expect(await reopened.searchEmbedding(q, { k: 5 })).toEqual(before);
    // A memory export carries its codes too.
    const memFile = await mem.exportIndex();
    const mem2 = await open({ compression: { nbits: 1 } });
    await mem2.importIndex(memFile);
    expect((await mem2.stats()).compression).toMatchObject({ state: 'ready', trainings: 0 });
  });

  it('a file whose codes do not fit the options, or that has none, trains on import', async () => {
    const s = await open({ compression: { nbits: 2 } });
    await s.addEmbeddings(data.docs);
    const file = await s.exportIndex();
    const other = await open({ compression: { nbits: 4 } });
    await other.importIndex(file);
    expect((await other.stats()).compression).toMatchObject({ state: 'ready', nbits: 4, trainings: 1 });
    const pooled = await open({ compression: { nbits: 2, poolFactor: 2 } });
    await pooled.importIndex(file);
    expect((await pooled.stats()).compression).toMatchObject({ state: 'ready', trainings: 1 });
    // Without compression the file has no codes and stays format 1.
    const plain = await open();
    await plain.addEmbeddings(data.docs);
    const old = await plain.exportIndex();
    expect(new DataView(old.buffer, old.byteOffset).getUint32(8, true)).toBe(1);
    const target = await open({ compression: { nbits: 2 } });
    await target.importIndex(old);
    expect((await target.stats()).compression).toMatchObject({ state: 'ready', trainings: 1 });
  });

  it('rerank: false answers from the codes alone, and a deleted document leaves them', async () => {
    const s = await open({ compression: { rerank: false } });
    await s.addEmbeddings(data.docs);
    const q = data.queries[2]!;
    const top = await s.searchEmbedding(q, { k: 10 });
    const exact = await s.searchEmbedding(q, { k: 10, exhaustive: true });
    // Scores come from decoded residuals: close to, but not, the exact ones.
    expect(top[0]!.score).not.toBe(exact.find((h) => h.id === top[0]!.id)?.score);
    await s.delete([top[0]!.id]);
    expect((await s.searchEmbedding(q, { k: 10 })).map((h) => h.id)).not.toContain(top[0]!.id);
  });

  it('pools document tokens when poolFactor > 1 (never queries)', async () => {
    const s = await open({ compression: { poolFactor: 2 } });
    const doc = data.docs[0]!;
    await s.addEmbeddings([doc]);
    const stats = await s.stats();
    expect(stats.tokens).toBe(Math.floor((doc.embedding.tokens - 1) / 2) + 1);
  });
});
