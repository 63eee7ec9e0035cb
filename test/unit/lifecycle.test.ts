/**
 * The public API's lifecycle and its hostile inputs in Node (in-thread engine, generated test
 * model): close() during add() settles the add with CLOSED, every method after close() rejects
 * (none throws), metadata that cannot be stored or exported is INVALID_METADATA at add (stats()
 * and exportIndex() keep working), and a 0-token query embedding is INVALID_MATRIX rather than
 * the previous query's scores.
 */
import 'fake-indexeddb/auto';
import { resolve } from 'node:path';
import { afterEach, beforeAll, describe, expect, it } from 'vitest';
import { expectCode } from '../support/errors.ts';
import { createSearch, deleteIndex, listIndexes, type ColbertSearch } from '../../src/index.ts';
import { makeTestModels } from '../fixtures/make-models.ts';
import { HAVE_SHARED, REPO_ROOT, SHARED_MISSING, TOKENIZER_DIR } from '../support/shared.ts';

const TJS = resolve(REPO_ROOT, '.cache/test-models/tjs');
const opened: ColbertSearch[] = [];
const docs = (n: number) => Array.from({ length: n }, (_, i) => ({ id: `d${i}`, text: `Document ${i} on hypersonic heat transfer, case ${i}.` }));

async function open(options: Parameters<typeof createSearch>[0] = {}): Promise<ColbertSearch> {
  const s = await createSearch({ model: TJS, worker: false, device: 'wasm', dtype: 'fp32', ...options });
  opened.push(s);
  return s;
}

/** Calls every async method of a search; each must return a promise (never throw) that rejects with CLOSED. */
function everyCall(s: ColbertSearch): [string, () => Promise<unknown>][] {
  const m = { data: new Float32Array(128), tokens: 1, dim: 128, ids: new Int32Array(1) };
  return [
    ['add', () => s.add([{ id: 'a', text: 'b' }])],
    ['addEmbeddings', () => s.addEmbeddings([{ id: 'a', embedding: m }])],
    ['delete', () => s.delete(['a'])],
    ['search', () => s.search('x')],
    ['searchEmbedding', () => s.searchEmbedding(m)],
    ['encodeQuery', () => s.encodeQuery('x')],
    ['encodeDocuments', () => s.encodeDocuments(['x'])],
    ['stats', () => s.stats()],
    ['countTokens', () => s.countTokens(['x'])],
    ['explain', () => s.explain('x', { text: 'y' })],
    ['clear', () => s.clear()],
    ['exportIndex', () => s.exportIndex()],
    ['importIndex', () => s.importIndex(new Uint8Array(8))],
  ];
}

describe.skipIf(!HAVE_SHARED)(`lifecycle and hostile input ${HAVE_SHARED ? '' : SHARED_MISSING}`, () => {
  beforeAll(async () => {
    await makeTestModels(resolve(REPO_ROOT, '.cache/test-models'), TOKENIZER_DIR);
  });
  afterEach(async () => {
    await Promise.all(opened.splice(0).map((s) => s.close()));
    for (const { name } of await listIndexes()) await deleteIndex(name);
  });

  it('after close(), every method returns a promise that rejects with CLOSED; none throws', async () => {
    const s = await open();
    await s.close();
    for (const [name, call] of everyCall(s)) {
      let promise: Promise<unknown> | undefined;
      expect(() => (promise = call()), name).not.toThrow();
      expect(promise, name).toBeInstanceOf(Promise);
      await expectCode(promise!, 'CLOSED');
    }
    await expect(s.close()).resolves.toBeUndefined();
  });

  for (const storage of ['memory', 'indexeddb'] as const) {
    it(`${storage}: close() during add() settles the add with CLOSED, and nothing of it is committed`, async () => {
      const s = await open(storage === 'memory' ? {} : { name: 'closing' });
      let closing: Promise<void> | undefined;
      const add = s.add(docs(300), {
        onProgress: (p) => {
          if (p.status === 'encode' && p.done >= 64) closing ??= s.close();
        },
      });
      const settled = await Promise.race([add.then(() => 'resolved', (e: { code?: string }) => e.code), new Promise((r) => setTimeout(() => r('pending after 20 s'), 20_000))]);
      await closing;
      expect(closing).toBeDefined();
      expect(settled).toBe('CLOSED');
      if (storage === 'indexeddb') {
        const again = await open({ name: 'closing' });
        expect((await again.stats()).documents).toBe(0);
        // The chunks staged before the close are reused.
        expect((await again.add(docs(300))).skipped).toBeGreaterThanOrEqual(64);
      }
    });
  }

  for (const storage of ['memory', 'indexeddb'] as const) {
    it(`${storage}: BigInt, cyclic, function or Symbol metadata is INVALID_METADATA at add, and stats() and exportIndex() keep working`, async () => {
      const s = await open(storage === 'memory' ? {} : { name: 'meta' });
      await s.add([{ id: 'ok', text: 'A fine document.', metadata: { title: 'Fine', tags: ['a'] } }]);
      const cyclic: Record<string, unknown> = {};
      cyclic['me'] = cyclic;
      for (const metadata of [{ n: 10n }, cyclic, { f: () => 1 }, { s: Symbol('s') }]) {
        const err = await expectCode(s.add([{ id: 'bad', text: 'A bad document.', metadata }]), 'INVALID_METADATA');
        expect(err.message).toContain('"bad"');
        await expectCode(s.addEmbeddings([{ id: 'bad', embedding: { data: new Float32Array(128), tokens: 1, dim: 128, ids: new Int32Array(1) }, metadata }]), 'INVALID_METADATA');
      }
      expect((await s.stats()).documents).toBe(1);
      expect((await s.exportIndex()).length).toBeGreaterThan(0);
      expect((await s.search('fine document'))[0]).toMatchObject({ id: 'ok', metadata: { title: 'Fine', tags: ['a'] } });
    });
  }

  it('searchEmbedding of a 0-token query is INVALID_MATRIX, not the previous query\'s scores (CPU)', async () => {
    const s = await open({ scoring: 'cpu' });
    await s.add(docs(5));
    const q = await s.encodeQuery('hypersonic heat transfer');
    expect((await s.searchEmbedding(q, { k: 5 }))[0]!.score).toBeGreaterThan(0);
    const err = await expectCode(s.searchEmbedding({ data: new Float32Array(0), tokens: 0, dim: 128, ids: new Int32Array(0) }, { k: 5 }), 'INVALID_MATRIX');
    expect(err.message).toMatch(/0 tokens/);
  });
});
