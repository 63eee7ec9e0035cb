/**
 * Persistence through the public API in Node (in-thread engine, generated test model,
 * fake-indexeddb): reopening never re-encodes, an interrupted add resumes from its staged
 * encodings, another model is refused, export/import round-trips between storages, and
 * 'indexeddb' without IndexedDB is UNSUPPORTED_ENVIRONMENT.
 */
import 'fake-indexeddb/auto';
import { resolve } from 'node:path';
import { afterEach, beforeAll, describe, expect, it } from 'vitest';
import { codeOf } from '../support/errors.ts';
import { createSearch, deleteIndex, listIndexes, type ColbertSearch, type Progress } from '../../src/index.ts';
import { makeTestModels } from '../fixtures/make-models.ts';
import { HAVE_SHARED, REPO_ROOT, SHARED_MISSING, TOKENIZER_DIR } from '../support/shared.ts';

const MODELS = resolve(REPO_ROOT, '.cache/test-models');
const TJS = resolve(MODELS, 'tjs');
const EXPORT = resolve(MODELS, 'colbert-export');
const opened: ColbertSearch[] = [];

const DOCS = Array.from({ length: 40 }, (_, i) => ({
  id: `doc-${i}`,
  text: `Document ${i} about ${['wings', 'shells', 'boundary layers', 'heat transfer'][i % 4]} at Mach ${i}.`,
  metadata: { i },
}));

async function open(options: Parameters<typeof createSearch>[0] = {}): Promise<ColbertSearch> {
  const s = await createSearch({ model: TJS, worker: false, device: 'wasm', dtype: 'fp32', maxBatchTokens: 512, ...options });
  opened.push(s);
  return s;
}


describe.skipIf(!HAVE_SHARED)(`persistent index through the engine ${HAVE_SHARED ? '' : SHARED_MISSING}`, () => {
  beforeAll(async () => {
    await makeTestModels(MODELS, TOKENIZER_DIR);
  });
  afterEach(async () => {
    await Promise.all(opened.splice(0).map((s) => s.close()));
    for (const { name } of await listIndexes()) await deleteIndex(name);
  });

  it('reopens a named index without encoding anything, with the same ranking', async () => {
    const a = await open({ name: 'kb', precision: 'int8' });
    expect(await a.add(DOCS)).toMatchObject({ added: 40, skipped: 0 });
    const hits = await a.search('heat transfer at Mach 7', { k: 5 });
    await a.close();
    const b = await open({ name: 'kb' });
    expect(await b.search('heat transfer at Mach 7', { k: 5 })).toEqual(hits);
    const progress: Progress[] = [];
    expect(await b.add(DOCS, { onProgress: (p) => progress.push(p) })).toEqual({ added: 0, tokens: 0, skipped: 40 });
    expect(progress.filter((p) => p.status === 'encode')).toEqual([{ status: 'encode', done: 40, total: 40, tokens: 0, skipped: 40 }]);
    expect(await b.stats()).toMatchObject({ documents: 40, storage: 'indexeddb', name: 'kb', precision: 'int8' });
    expect((await b.stats()).bytesOnDisk).toBeGreaterThan((await b.stats()).tokens * (128 + 4));
  });

  it('resumes an interrupted add from its staged chunks, and the interrupted batch stayed invisible', async () => {
    const a = await open({ name: 'resume' });
    await a.add(DOCS.slice(0, 2));
    // The caller dies once the (only) chunk is encoded and staged, before the commit.
    const interrupted = a.add(DOCS.slice(2), {
      onProgress: (p) => {
        if (p.status === 'encode' && p.tokens > 0) throw new Error('tab closed');
      },
    });
    await expect(interrupted).rejects.toThrow('tab closed');
    expect((await a.stats()).documents).toBe(2);
    const progress: Progress[] = [];
    const result = await a.add(DOCS.slice(2), { onProgress: (p) => progress.push(p) });
    expect(result.skipped).toBe(38);
    expect(result.added).toBe(38);
    expect(result.tokens).toBe(0);
    expect(progress[0]).toMatchObject({ status: 'encode', done: 38, skipped: 38 });
    expect((await a.stats()).documents).toBe(40);
  });

  it('refuses to open an index with another model and names both', async () => {
    await (await open({ name: 'model-a' })).add(DOCS.slice(0, 1));
    const err = await open({ name: 'model-a', model: EXPORT }).catch((e: unknown) => e);
    expect(err).toMatchObject({ code: 'INDEX_MODEL_MISMATCH' });
    expect((err as Error).message).toContain(TJS);
    expect((err as Error).message).toContain(EXPORT);
  });

  it('exports from IndexedDB and imports into memory (and back) with identical hits; a damaged file changes nothing', async () => {
    const a = await open({ name: 'ship', precision: 'fp16' });
    await a.add(DOCS);
    await a.delete(['doc-3']);
    const file = await a.exportIndex();
    const query = 'boundary layers at Mach 12';
    const expected = await a.search(query, { k: 10 });
    const mem = await open({ storage: 'memory', precision: 'fp16' });
    expect(await mem.importIndex(file)).toMatchObject({ documents: 39 });
    expect(await mem.search(query, { k: 10 })).toEqual(expected);
    const back = await open({ name: 'ship-copy', precision: 'fp16' });
    await back.importIndex(new Blob([(await mem.exportIndex()) as Uint8Array<ArrayBuffer>]));
    expect(await back.search(query, { k: 10 })).toEqual(expected);
    const bad = file.slice();
    bad[bad.length - 10] = bad[bad.length - 10]! ^ 0xff;
    expect(await codeOf(back.importIndex(bad))).toBe('INDEX_CORRUPT');
    expect(await codeOf(back.importIndex(file.subarray(0, file.length >> 1)))).toBe('INDEX_CORRUPT');
    expect(await back.search(query, { k: 10 })).toEqual(expected);
    const other = await open({ model: EXPORT, storage: 'memory' });
    expect(await codeOf(other.importIndex(file))).toBe('INDEX_MODEL_MISMATCH');
  });

  it("is UNSUPPORTED_ENVIRONMENT for storage: 'indexeddb' without IndexedDB", async () => {
    const saved = Object.getOwnPropertyDescriptor(globalThis, 'indexedDB')!;
    Reflect.deleteProperty(globalThis, 'indexedDB');
    try {
      expect(await codeOf(createSearch({ model: TJS, worker: false, name: 'nope' }))).toBe('UNSUPPORTED_ENVIRONMENT');
      expect(await codeOf(listIndexes())).toBe('UNSUPPORTED_ENVIRONMENT');
    } finally {
      Object.defineProperty(globalThis, 'indexedDB', saved);
    }
  });
});
