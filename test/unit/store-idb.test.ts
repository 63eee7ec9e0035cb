/**
 * The IndexedDB store in Node under fake-indexeddb: persistence across reopen, the model check,
 * replace/delete/compaction on disk, staging and resume, an injected quota failure that changes
 * nothing, two connections seeing each other's writes, export/import, list and delete.
 */
import 'fake-indexeddb/auto';
import { afterEach, describe, expect, it } from 'vitest';
import { codeOf } from '../support/errors.ts';
import { ColbertError } from '../../src/errors.ts';
import { DB_PREFIX, deleteIndex, IdbStore, listIndexes } from '../../src/store/idb.ts';
import type { ModelFingerprint } from '../../src/store/manifest.ts';
import { MemoryStore } from '../../src/store/memory.ts';
import { readPortable, writePortable } from '../../src/store/portable.ts';
import type { VectorPrecision } from '../../src/store/precision.ts';
import type { VectorStore } from '../../src/store/types.ts';
import type { TokenMatrix } from '../../src/types.ts';
import { mulberry32 } from '../fixtures/make-models.ts';
import { FINGERPRINT } from '../support/store.ts';

const DIM = FINGERPRINT.dim;
const open: IdbStore[] = [];

function matrix(tokens: number, seed: number): TokenMatrix {
  const rand = mulberry32(seed);
  return { data: Float32Array.from({ length: tokens * DIM }, () => rand() * 2 - 1), tokens, dim: DIM, ids: Int32Array.from({ length: tokens }, (_, i) => seed + i) };
}

async function openStore(name: string, fingerprint: ModelFingerprint = FINGERPRINT, precision?: VectorPrecision): Promise<IdbStore> {
  const store = await IdbStore.open({ name, fingerprint, ...(precision ? { precision } : {}) });
  open.push(store);
  return store;
}

/** Every live document's decoded rows (rounded to 6 digits), by id. */
async function contents(store: VectorStore): Promise<Record<string, number[]>> {
  const out: Record<string, number[]> = {};
  for await (const shard of store.shards()) {
    shard.docIds.forEach((id, slot) => {
      if (id !== null) out[id] = [...shard.vectors.subarray(shard.offsets[slot]! * DIM, shard.offsets[slot + 1]! * DIM)];
    });
  }
  return out;
}


afterEach(async () => {
  await Promise.all(open.splice(0).map((s) => s.close()));
  for (const { name } of await listIndexes()) await deleteIndex(name);
});

describe('IdbStore', () => {
  it('persists documents, metadata and texts across close and reopen', async () => {
    const a = await openStore('docs', FINGERPRINT, 'fp16');
    await a.commit([
      { id: 'x', hash: 'hx', matrix: matrix(3, 1), metadata: { t: 'X' }, text: 'text x' },
      { id: 'y', hash: 'hy', matrix: matrix(2, 2) },
    ]);
    const before = await contents(a);
    await a.close();
    const b = await openStore('docs');
    expect(b.precision).toBe('fp16');
    expect(await contents(b)).toEqual(before);
    expect(await b.metadata(['x', 'y'])).toEqual([{ t: 'X' }, undefined]);
    expect(await b.lookup(['x', 'y', 'z'], ['hx', 'other', 'hz'])).toEqual(['live', 'none', 'none']);
    expect((await b.snapshot()).documents.find((d) => d.id === 'x')?.text).toBe('text x');
    expect(await b.stats()).toMatchObject({ documents: 2, tokens: 5, vectorBytes: 5 * DIM * 2 });
  });

  it('refuses an index stored by a newer version (a newer IndexedDB schema) with INDEX_FORMAT_UNSUPPORTED, changing nothing', async () => {
    const raw = await new Promise<IDBDatabase>((resolve, reject) => {
      const req = indexedDB.open(`${DB_PREFIX}future`, 99);
      req.onupgradeneeded = () => req.result.createObjectStore('manifest');
      req.onsuccess = () => resolve(req.result);
      req.onerror = () => reject(req.error);
    });
    raw.close();
    expect(await codeOf(openStore('future'))).toBe('INDEX_FORMAT_UNSUPPORTED');
    const again = await new Promise<IDBDatabase>((resolve, reject) => {
      const req = indexedDB.open(`${DB_PREFIX}future`);
      req.onsuccess = () => resolve(req.result);
      req.onerror = () => reject(req.error);
    });
    expect(again.version).toBe(99);
    again.close();
  });

  it('refuses to open with another model (naming both) or another explicit precision', async () => {
    await (await openStore('m')).commit([{ id: 'x', hash: 'h', matrix: matrix(1, 1) }]);
    const other = { ...FINGERPRINT, model: 'someone/else', content: 'ffff0000ffff0000' };
    const err = await IdbStore.open({ name: 'm', fingerprint: other }).catch((e: ColbertError) => e);
    expect(err).toMatchObject({ code: 'INDEX_MODEL_MISMATCH' });
    expect((err as ColbertError).message).toMatch(/test\/model.*someone\/else/s);
    expect(await codeOf(IdbStore.open({ name: 'm', fingerprint: FINGERPRINT, precision: 'int8' }))).toBe('INVALID_ARGUMENT');
  });

  it('replaces by id and deletes for good, compacting on disk without renumbering', async () => {
    const a = await openStore('del');
    await a.commit(Array.from({ length: 10 }, (_, i) => ({ id: `d${i}`, hash: `h${i}`, matrix: matrix(5, i) })));
    await a.commit([{ id: 'd0', hash: 'new', matrix: matrix(2, 99) }]);
    expect(await a.delete(['d1', 'd2', 'd3', 'd4', 'd5', 'd6', 'd7', 'nope'])).toEqual(['d1', 'd2', 'd3', 'd4', 'd5', 'd6', 'd7']);
    const expected = await contents(a);
    expect(Object.keys(expected).sort()).toEqual(['d0', 'd8', 'd9']);
    expect(expected['d0']).toEqual([...matrix(2, 99).data]);
    await a.close();
    const b = await openStore('del');
    expect(await contents(b)).toEqual(expected);
    const [shard] = [...(await (async () => { const l = []; for await (const s of b.shards()) l.push(s); return l; })())];
    expect(shard!.docIds).toEqual(['d8', 'd9', 'd0']); // compacted: tombstones gone
    expect((await b.stats()).tokens).toBe(12);
  });

  it('stages encodings invisibly and commits them later, also from another connection', async () => {
    const a = await openStore('stage');
    await a.stage([{ id: 's1', hash: 'h1', matrix: matrix(4, 1) }]);
    expect(await contents(a)).toEqual({});
    await a.close();
    const b = await openStore('stage');
    expect(await b.lookup(['s1', 's1'], ['h1', 'changed'])).toEqual(['staged', 'none']);
    await b.commit([{ id: 's1', hash: 'h1', text: 'one' }]);
    expect(Object.keys(await contents(b))).toEqual(['s1']);
    expect(await b.lookup(['s1'], ['h1'])).toEqual(['live']);
    // Same hash, new metadata: rows are kept, metadata changes.
    await b.commit([{ id: 's1', hash: 'h1', metadata: { v: 2 } }]);
    expect(await b.metadata(['s1'])).toEqual([{ v: 2 }]);
    expect((await contents(b))['s1']).toEqual([...matrix(4, 1).data]);
  });

  it('rolls a batch back whole on a quota failure, with a coded error', async () => {
    const a = await openStore('quota');
    await a.commit([{ id: 'keep', hash: 'k', matrix: matrix(3, 1) }]);
    const before = await contents(a);
    const proto = IDBObjectStore.prototype;
    const put = proto.put;
    let calls = 0;
    proto.put = function (this: IDBObjectStore, ...args: Parameters<typeof put>) {
      // Let a few writes of the batch through, then fail as a full disk does.
      if (++calls > 3) throw new DOMException('The quota has been exceeded.', 'QuotaExceededError');
      return put.apply(this, args);
    };
    try {
      const err = await a.commit(Array.from({ length: 5 }, (_, i) => ({ id: `n${i}`, hash: `h${i}`, matrix: matrix(2, i + 10) }))).catch((e: unknown) => e);
      expect(err).toMatchObject({ code: 'QUOTA_EXCEEDED' });
    } finally {
      proto.put = put;
    }
    expect(await contents(a)).toEqual(before);
    await a.close();
    const b = await openStore('quota');
    expect(await contents(b)).toEqual(before);
    await b.commit([{ id: 'after', hash: 'a', matrix: matrix(1, 5) }]);
    expect(Object.keys(await contents(b)).sort()).toEqual(['after', 'keep']);
  });

  it("sees another connection's writes without reopening", async () => {
    const a = await openStore('two');
    const b = await openStore('two');
    await a.commit([{ id: 'x', hash: 'h', matrix: matrix(2, 1) }]);
    expect(Object.keys(await contents(b))).toEqual(['x']);
    await b.commit([{ id: 'y', hash: 'h', matrix: matrix(2, 2) }]);
    await a.delete(['x']);
    expect(Object.keys(await contents(b))).toEqual(['y']);
    expect(Object.keys(await contents(a))).toEqual(['y']);
    await Promise.all([a.commit([{ id: 'p', hash: 'h', matrix: matrix(1, 3) }]), b.commit([{ id: 'q', hash: 'h', matrix: matrix(1, 4) }])]);
    expect(Object.keys(await contents(a)).sort()).toEqual(['p', 'q', 'y']);
  });

  it('exports to a portable file that a memory store and another index import identically', async () => {
    const a = await openStore('exp', FINGERPRINT, 'int8');
    await a.commit([{ id: 'x', hash: 'hx', matrix: matrix(3, 1), metadata: { n: 1 }, text: 'x' }, { id: 'y', hash: 'hy', matrix: matrix(2, 2) }]);
    await a.delete(['y']);
    const file = writePortable(await a.snapshot());
    const mem = new MemoryStore({ precision: 'int8', fingerprint: FINGERPRINT });
    await mem.restore(readPortable(file));
    expect(await contents(mem)).toEqual(await contents(a));
    const b = await openStore('imp', FINGERPRINT, 'int8');
    await b.commit([{ id: 'old', hash: 'o', matrix: matrix(1, 9) }]);
    await b.restore(readPortable(file));
    expect(await contents(b)).toEqual(await contents(a));
    expect(await b.metadata(['x'])).toEqual([{ n: 1 }]);
  });

  it('lists and deletes named indexes; clear() empties one', async () => {
    const a = await openStore('one');
    await openStore('two');
    await a.commit([{ id: 'x', hash: 'h', matrix: matrix(2, 1) }]);
    const list = await listIndexes();
    expect(list.map((i) => i.name)).toEqual(['one', 'two']);
    expect(list[0]).toMatchObject({ model: 'test/model', documents: 1, tokens: 2, precision: 'fp32' });
    await a.clear();
    expect(await a.stats()).toMatchObject({ documents: 0, tokens: 0 });
    await deleteIndex('one');
    expect(await codeOf(a.stats())).toBe('STORAGE_FAILED');
    expect((await listIndexes()).map((i) => i.name)).toEqual(['two']);
  });
});
