/**
 * delete() and clear() at an exhausted quota, in Node under fake-indexeddb: every put fails as
 * on a full disk (as the browser suite injects it), yet both succeed, because they fall back to
 * writes that store nothing. Other connections and a reopen see the result, and once there is
 * space again the next write leaves the index exactly as a normal delete would have.
 */
import 'fake-indexeddb/auto';
import { openDB } from 'idb';
import { afterEach, describe, expect, it } from 'vitest';
import { codeOf } from '../support/errors.ts';
import { DB_PREFIX, deleteIndex, IdbStore, listIndexes } from '../../src/store/idb.ts';
import type { TokenMatrix } from '../../src/types.ts';
import { mulberry32 } from '../fixtures/make-models.ts';
import { FINGERPRINT } from '../support/store.ts';

const DIM = FINGERPRINT.dim;
const open: IdbStore[] = [];

function matrix(tokens: number, seed: number): TokenMatrix {
  const rand = mulberry32(seed);
  return { data: Float32Array.from({ length: tokens * DIM }, () => rand() * 2 - 1), tokens, dim: DIM, ids: Int32Array.from({ length: tokens }, (_, i) => seed + i) };
}

async function openStore(name: string): Promise<IdbStore> {
  const store = await IdbStore.open({ name, fingerprint: FINGERPRINT });
  open.push(store);
  return store;
}

/** Live document ids and their first value, by id. */
async function contents(store: IdbStore): Promise<Record<string, number>> {
  const out: Record<string, number> = {};
  for await (const shard of store.shards()) {
    shard.docIds.forEach((id, slot) => {
      if (id !== null) out[id] = shard.vectors[shard.offsets[slot]! * DIM]!;
    });
  }
  return out;
}

/** What is on disk, read around the store: segment metas (their doc ids) and doc records. */
async function onDisk(name: string): Promise<{ segments: (string | null)[][]; docs: string[]; clean: boolean }> {
  const db = await openDB(DB_PREFIX + name);
  try {
    const segments = ((await db.getAll('segments')) as { docIds: (string | null)[] }[]).map((m) => m.docIds);
    const docs = (await db.getAllKeys('docs')) as string[];
    const manifest = (await db.get('manifest', 'manifest')) as { generation: number };
    const clean = ((await db.get('manifest', 'clean')) as { generation: number } | undefined)?.generation === manifest.generation;
    return { segments, docs, clean };
  } finally {
    db.close();
  }
}

/** Runs `fn` with every IndexedDB put and add failing as on a full disk. */
async function atFullQuota<T>(fn: () => Promise<T>): Promise<T> {
  const proto = IDBObjectStore.prototype;
  const { put, add } = proto;
  const full = () => {
    throw new DOMException('The quota has been exceeded.', 'QuotaExceededError');
  };
  proto.put = full;
  proto.add = full;
  try {
    return await fn();
  } finally {
    proto.put = put;
    proto.add = add;
  }
}

afterEach(async () => {
  await Promise.all(open.splice(0).map((s) => s.close()));
  for (const { name } of await listIndexes()) await deleteIndex(name);
});

describe('a full quota', () => {
  it('still lets delete() free space; others see it; the next write with space cleans up', async () => {
    const a = await openStore('full');
    const b = await openStore('full');
    await a.commit(['x', 'y', 'z', 'w'].map((id, i) => ({ id, hash: `h${id}`, matrix: matrix(3, i + 1), text: `text ${id}` })));
    const before = await contents(a);
    await atFullQuota(async () => {
      // Writes that need space still fail with the coded error, and change nothing.
      expect(await codeOf(a.commit([{ id: 'v', hash: 'hv', matrix: matrix(2, 9) }]))).toBe('QUOTA_EXCEEDED');
      expect(await a.delete(['x'])).toEqual(['x']);
      expect(await a.delete(['y', 'nope'])).toEqual(['y']);
    });
    const expected = { z: before['z']!, w: before['w']! };
    expect(await contents(a)).toEqual(expected);
    expect(await contents(b)).toEqual(expected);
    expect(await b.has(['x', 'y', 'z'])).toEqual([false, false, true]);
    expect(await a.stats()).toMatchObject({ documents: 2, tokens: 6 });
    expect((await a.snapshot()).documents.map((d) => d.id)).toEqual(['z', 'w']);
    // On disk: the doc records are gone, the shared segment still names x and y until a write with space.
    expect(await onDisk('full')).toEqual({ segments: [['x', 'y', 'z', 'w']], docs: ['w', 'z'], clean: false });
    const reopened = await openStore('full');
    expect(await contents(reopened)).toEqual(expected);
    // Opening with space made it clean again: the segment names only live documents now.
    expect(await onDisk('full')).toEqual({ segments: [[null, null, 'z', 'w']], docs: ['w', 'z'], clean: true });
    // Re-adding a deleted id stores it once.
    await a.commit([{ id: 'x', hash: 'hx2', matrix: matrix(2, 50) }]);
    expect(await contents(b)).toEqual({ ...expected, x: matrix(2, 50).data[0]! });
    expect(await a.stats()).toMatchObject({ documents: 3, tokens: 8 });
  });

  it('drops whole segments whose documents are all deleted, vectors and all', async () => {
    const a = await openStore('whole');
    await a.commit([{ id: 'p', hash: 'hp', matrix: matrix(3, 1) }, { id: 'q', hash: 'hq', matrix: matrix(3, 2) }]);
    await atFullQuota(async () => expect(await a.delete(['p', 'q'])).toEqual(['p', 'q']));
    expect(await onDisk('whole')).toEqual({ segments: [], docs: [], clean: false });
    expect(await a.stats()).toMatchObject({ documents: 0, tokens: 0, vectorBytes: 0 });
    await a.commit([{ id: 'r', hash: 'hr', matrix: matrix(1, 3) }]);
    expect(Object.keys(await contents(await openStore('whole')))).toEqual(['r']);
    expect((await onDisk('whole')).clean).toBe(true);
  });

  it('still lets clear() empty the index; others and a reopen see it empty, and it takes new documents after', async () => {
    const a = await openStore('cleared');
    const b = await openStore('cleared');
    await a.commit(Array.from({ length: 20 }, (_, i) => ({ id: `d${i}`, hash: `h${i}`, matrix: matrix(4, i + 1), text: 'some text' })));
    await a.stage([{ id: 'staged', hash: 'hs', matrix: matrix(4, 99) }]);
    expect((await contents(b)).d0).toBeDefined();
    await atFullQuota(() => a.clear());
    expect(await contents(a)).toEqual({});
    expect(await contents(b)).toEqual({});
    expect(await b.stats()).toMatchObject({ documents: 0, tokens: 0 });
    expect(await b.lookup(['staged'], ['hs'])).toEqual(['none']);
    expect(await onDisk('cleared')).toEqual({ segments: [], docs: [], clean: false });
    expect((await listIndexes()).map((i) => i.name)).toContain('cleared');
    await b.commit([{ id: 'new', hash: 'hn', matrix: matrix(2, 7) }]);
    expect(Object.keys(await contents(a))).toEqual(['new']);
    expect(Object.keys(await contents(await openStore('cleared')))).toEqual(['new']);
    expect((await onDisk('cleared')).clean).toBe(true);
  });
});
