/**
 * Concurrent writes through the public API in Node (in-thread engine, generated test model), in
 * memory and in IndexedDB (fake-indexeddb), also from two searches on one index: adds of the
 * same ids with other texts, an add racing clear(), an add that replaces a document racing its
 * delete(). Each write succeeds, in some order, and the index ends as that order leaves it.
 */
import 'fake-indexeddb/auto';
import { resolve } from 'node:path';
import { afterEach, beforeAll, describe, expect, it } from 'vitest';
import { createSearch, deleteIndex, listIndexes, type ColbertSearch, type Progress } from '../../src/index.ts';
import { readPortable } from '../../src/store/portable.ts';
import { makeTestModels } from '../fixtures/make-models.ts';
import { HAVE_SHARED, REPO_ROOT, SHARED_MISSING, TOKENIZER_DIR } from '../support/shared.ts';

const TJS = resolve(REPO_ROOT, '.cache/test-models/tjs');
const opened: ColbertSearch[] = [];

const docs = (n: number, text: string) => Array.from({ length: n }, (_, i) => ({ id: `d${i}`, text: `${text} number ${i}.`, metadata: { text } }));

async function open(options: Parameters<typeof createSearch>[0] = {}): Promise<ColbertSearch> {
  const s = await createSearch({ model: TJS, worker: false, device: 'wasm', dtype: 'fp32', ...options });
  opened.push(s);
  return s;
}

/** id -> text of every stored document, read through exportIndex(). */
async function texts(s: ColbertSearch): Promise<Map<string, string | undefined>> {
  return new Map(readPortable(await s.exportIndex()).documents.map((d) => [d.id, d.text]));
}

const STORAGES = [
  ['memory', { storage: 'memory' }],
  ['indexeddb', { name: 'race' }],
] as const;

describe.skipIf(!HAVE_SHARED)(`concurrent writes ${HAVE_SHARED ? '' : SHARED_MISSING}`, () => {
  beforeAll(async () => {
    await makeTestModels(resolve(REPO_ROOT, '.cache/test-models'), TOKENIZER_DIR);
  });
  afterEach(async () => {
    await Promise.all(opened.splice(0).map((s) => s.close()));
    for (const { name } of await listIndexes()) await deleteIndex(name);
  });

  for (const [storage, options] of STORAGES) {
    it(`${storage}: two adds of the same 150 ids with other texts both succeed, and one batch wins whole`, async () => {
      const s = await open(options);
      const [a, b] = await Promise.all([s.add(docs(150, 'Supersonic wings')), s.add(docs(150, 'Cylindrical shells'))]);
      expect(a).toMatchObject({ added: 150 });
      expect(b).toMatchObject({ added: 150 });
      const stored = await texts(s);
      expect(stored.size).toBe(150);
      const winner = stored.get('d0')!.startsWith('Supersonic') ? 'Supersonic wings' : 'Cylindrical shells';
      expect([...stored.values()]).toEqual(docs(150, winner).map((d) => d.text));
      const hits = await s.search(winner, { k: 150 });
      expect(hits.every((h) => (h.metadata as { text: string }).text === winner)).toBe(true);
    });

    it(`${storage}: an add racing clear() succeeds, ordered after it`, async () => {
      const s = await open(options);
      await s.add(docs(10, 'Old'));
      let cleared: Promise<void> | undefined;
      const result = await s.add(docs(300, 'Laminar boundary layers'), {
        onProgress: (p: Progress) => {
          // Once some chunks are staged, and before the commit.
          if (p.status === 'encode' && p.done >= 64 && p.done < p.total) cleared ??= s.clear();
        },
      });
      await cleared;
      expect(cleared).toBeDefined();
      expect(result).toMatchObject({ added: 300 });
      expect((await s.stats()).documents).toBe(300);
      expect((await texts(s)).get('d299')).toBe('Laminar boundary layers number 299.');
    });

    it(`${storage}: an add that replaces x racing delete(['x']) succeeds, in either order`, async () => {
      const s = await open(options);
      await s.add([{ id: 'x', text: 'Heat transfer at Mach 7.', metadata: { v: 1 } }, { id: 'y', text: 'Another document.' }]);
      // Same text, new metadata: the add keeps x's rows, which the delete removes meanwhile.
      const [deleted, result] = await Promise.all([s.delete(['x']), s.add([{ id: 'x', text: 'Heat transfer at Mach 7.', metadata: { v: 2 } }])]);
      expect(deleted).toBe(1);
      expect(result).toMatchObject({ added: 1 });
      const x = (await s.search('heat transfer', { k: 5 })).find((h) => h.id === 'x');
      // Delete then add: x with the new metadata; add then delete: no x. Never a failure, never v: 1.
      if (x) expect(x.metadata).toEqual({ v: 2 });
      expect((await s.stats()).documents).toBe(x ? 2 : 1);
      // And with a new text, the delete landing while the add encodes.
      await s.add([{ id: 'x', text: 'Heat transfer at Mach 7.' }]);
      let again: Promise<number> | undefined;
      await s.add([{ id: 'x', text: 'Buckling of shells.' }], {
        onProgress: (p) => {
          if (p.status === 'encode') again ??= s.delete(['x']);
        },
      });
      expect(await again).toBe(1);
      const after = await texts(s);
      if (after.has('x')) expect(after.get('x')).toBe('Buckling of shells.');
    });
  }

  it('two searches on one IndexedDB index adding the same ids with other texts both succeed', async () => {
    const [a, b] = await Promise.all([open({ name: 'two' }), open({ name: 'two' })]);
    const [ra, rb] = await Promise.all([a.add(docs(150, 'Supersonic wings')), b.add(docs(150, 'Cylindrical shells'))]);
    expect(ra.added + rb.added).toBe(300);
    const [ta, tb] = [await texts(a), await texts(b)];
    expect(ta).toEqual(tb);
    const winner = ta.get('d0')!.startsWith('Supersonic') ? 'Supersonic wings' : 'Cylindrical shells';
    expect([...ta.values()]).toEqual(docs(150, winner).map((d) => d.text));
    // A third search reads the same, whole index from disk.
    expect(await texts(await open({ name: 'two' }))).toEqual(ta);
  });
});
