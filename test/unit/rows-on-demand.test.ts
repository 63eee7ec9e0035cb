/**
 * A named compressed index whose full-precision rows stay in IndexedDB (fake-indexeddb) once its
 * codes serve searches: only the codes and the tail segment's rows are held; the rerank reads its
 * documents' row chunks on demand, so its scores equal the exhaustive ones; `exhaustive: true`
 * streams every segment and stays exact; reopening does not load the rows; deletes, replacements
 * and compactions of documents whose rows are not held, a second connection, export/import, a
 * failed write and the schema 3 -> 4 migration (rows moved into chunks) all keep working. Every
 * ranking is compared with the same operations on a memory index (which holds its rows).
 */
import 'fake-indexeddb/auto';
import { resolve } from 'node:path';
import { openDB } from 'idb';
import { afterEach, beforeAll, describe, expect, it, vi } from 'vitest';
import { CompressedIndex, RETRAIN_GROWTH } from '../../src/compression.ts';
import { createSearch, deleteIndex, listIndexes, type ColbertSearch } from '../../src/index.ts';
import { DB_PREFIX, IdbStore } from '../../src/store/idb.ts';
import { segmentRows } from '../../src/store/shards.ts';
import type { TokenMatrix } from '../../src/types.ts';
import { makeTestModels } from '../fixtures/make-models.ts';
import { clusteredData } from '../support/clusters.ts';
import { writeSchema2Index } from '../support/legacy-index.ts';
import { HAVE_SHARED, REPO_ROOT, SHARED_MISSING, TOKENIZER_DIR } from '../support/shared.ts';
import { FINGERPRINT } from '../support/store.ts';

const TJS = resolve(REPO_ROOT, '.cache/test-models/tjs');
const opened: ColbertSearch[] = [];
const ROW_BYTES = 256; // fp16, 128 dimensions
/** One segment's rows at most stay resident (the tail, where appends go). */
const SEGMENT_BYTES = segmentRows('fp16', 128) * ROW_BYTES;

async function open(options: Parameters<typeof createSearch>[0] = {}): Promise<ColbertSearch> {
  const s = await createSearch({ model: TJS, worker: false, device: 'wasm', dtype: 'fp32', scoring: 'cpu', ...options });
  opened.push(s);
  return s;
}

async function close(s: ColbertSearch): Promise<void> {
  opened.splice(opened.indexOf(s), 1);
  await s.close();
}

// About 26k tokens: four fp16 segments of 8192 rows.
const data = clusteredData({ docs: 600, queries: 8, seed: 33 });
const COMPRESSED = { nbits: 2 } as const;

async function addAll(s: ColbertSearch, docs = data.docs): Promise<void> {
  for (let i = 0; i < docs.length; i += 150) await s.addEmbeddings(docs.slice(i, i + 150));
}

/** Resident row bytes: what vectorBytes holds beyond the codes. */
async function residentRows(s: ColbertSearch): Promise<number> {
  const stats = await s.stats();
  return stats.vectorBytes - (stats.compression?.codeBytes ?? 0);
}

/** Every query's exhaustive top 10 on both, equal ids and scores; and the compressed top 10's scores equal exhaustive ones. */
async function expectSameRankings(s: ColbertSearch, reference: ColbertSearch, queries: readonly TokenMatrix[] = data.queries): Promise<void> {
  for (const q of queries) {
    const want = await reference.searchEmbedding(q, { k: 10, exhaustive: true });
    const exhaustive = await s.searchEmbedding(q, { k: 10, exhaustive: true });
    expect(exhaustive.map((h) => h.id)).toEqual(want.map((h) => h.id));
    exhaustive.forEach((h, i) => expect(h.score).toBeCloseTo(want[i]!.score, 5));
    const truth = new Map(want.map((h) => [h.id, h.score]));
    const got = await s.searchEmbedding(q, { k: 10 });
    const shared = got.filter((h) => truth.has(h.id));
    expect(shared.length).toBeGreaterThanOrEqual(8);
    for (const h of shared) expect(h.score).toBeCloseTo(truth.get(h.id)!, 5);
  }
}

/** Waits until `s` has trained `trainings` codecs and serves searches from the last (a training in the background). */
async function trained(s: ColbertSearch, trainings: number): Promise<void> {
  await vi.waitFor(async () => expect((await s.stats()).compression).toMatchObject({ state: 'ready', trainings }), { timeout: 120_000, interval: 50 });
}

/** A document whose rows are in the first segment (never the tail once four are stored). */
const FIRST = data.docs[3]!;

describe.skipIf(!HAVE_SHARED)(`rows on demand ${HAVE_SHARED ? '' : SHARED_MISSING}`, () => {
  beforeAll(async () => {
    await makeTestModels(resolve(REPO_ROOT, '.cache/test-models'), TOKENIZER_DIR);
  });
  afterEach(async () => {
    await Promise.all(opened.splice(0).map((s) => s.close()));
    for (const { name } of await listIndexes()) await deleteIndex(name);
  });

  it('once trained, holds the codes and at most one segment of rows; rerank and exhaustive scores stay exact', async () => {
    const s = await open({ name: 'cold', compression: COMPRESSED });
    const reference = await open({ storage: 'memory' });
    await s.addEmbeddings(data.docs.slice(0, 40));
    await reference.addEmbeddings(data.docs.slice(0, 40));
    // Not trained yet (under 4096 tokens): every row is held, as without compression.
    const before = await s.stats();
    expect(before.compression!.state).toBe('exhaustive');
    expect(before.vectorBytes).toBe(before.tokens * ROW_BYTES);
    await addAll(s, data.docs.slice(40));
    await addAll(reference, data.docs.slice(40));
    const stats = await s.stats();
    expect(stats.compression!.state).toBe('ready');
    expect(stats.tokens).toBeGreaterThan(3 * SEGMENT_BYTES / ROW_BYTES);
    const rows = stats.vectorBytes - stats.compression!.codeBytes;
    expect(rows).toBeGreaterThan(0);
    expect(rows).toBeLessThanOrEqual(SEGMENT_BYTES);
    // On disk: every row, and the stored codes (a code and 32 residual bytes per token at nbits 2).
    expect(stats.bytesOnDisk!).toBeGreaterThan(stats.tokens * (ROW_BYTES + 4 + 2 + 32));
    // The memory index holds every row.
    const ref = await reference.stats();
    expect(ref.vectorBytes).toBe(ref.tokens * ROW_BYTES);
    await expectSameRankings(s, reference);
    // The rerank read rows from IndexedDB, and held none of them afterwards.
    expect(await residentRows(s)).toBe(rows);
  });

  it('reopens without loading the rows, with the same hits; without compression it holds them all again', async () => {
    const s = await open({ name: 'reopen', compression: COMPRESSED });
    await addAll(s);
    const hits = await Promise.all(data.queries.map((q) => s.searchEmbedding(q, { k: 10 })));
    await close(s);
    const again = await open({ name: 'reopen', compression: COMPRESSED });
    expect((await again.stats()).compression).toMatchObject({ state: 'ready', trainings: 0 });
    expect(await residentRows(again)).toBeLessThanOrEqual(SEGMENT_BYTES);
    for (const [i, q] of data.queries.entries()) expect(await again.searchEmbedding(q, { k: 10 })).toEqual(hits[i]);
    await close(again);
    const plain = await open({ name: 'reopen' });
    const stats = await plain.stats();
    expect(stats.vectorBytes).toBe(stats.tokens * ROW_BYTES);
  });

  it('replaces, deletes and compacts documents whose rows are not held; a second connection follows', async () => {
    const s = await open({ name: 'edit', compression: COMPRESSED });
    const reference = await open({ storage: 'memory' });
    await addAll(s);
    await addAll(reference);
    const other = await open({ name: 'edit', compression: COMPRESSED });
    // Replace a first-segment document by another document's vectors: it now ranks first for that one's query.
    const twin = { id: FIRST.id, embedding: data.docs[500]!.embedding };
    await s.addEmbeddings([twin]);
    await reference.addEmbeddings([twin]);
    const top = (await s.searchEmbedding(data.docs[500]!.embedding, { k: 2 })).map((h) => h.id).sort();
    expect(top).toEqual([FIRST.id, data.docs[500]!.id].sort());
    // Delete three quarters of the first 200 documents (the first segment's): compaction copies the rest's rows.
    const gone = data.docs.slice(0, 200).filter((_, i) => i % 4 !== 0).map((d) => d.id);
    await s.delete(gone);
    await reference.delete(gone);
    expect((await s.stats()).documents).toBe(600 - gone.length);
    await expectSameRankings(s, reference);
    for (const q of data.queries) for (const h of await s.searchEmbedding(q, { k: 50 })) expect(gone).not.toContain(h.id);
    // The other connection reads what this one wrote, without holding the rows either.
    await expectSameRankings(other, reference);
    expect(await residentRows(other)).toBeLessThanOrEqual(SEGMENT_BYTES);
    expect(await residentRows(s)).toBeLessThanOrEqual(SEGMENT_BYTES);
  });

  it('exports from an index whose rows are on demand and imports into another, with the same hits', async () => {
    const s = await open({ name: 'from', compression: COMPRESSED });
    await addAll(s);
    const file = await s.exportIndex();
    const into = await open({ name: 'into', compression: COMPRESSED });
    await into.importIndex(file);
    expect((await into.stats()).compression).toMatchObject({ state: 'ready', trainings: 0 });
    expect(await residentRows(into)).toBeLessThanOrEqual(SEGMENT_BYTES);
    const memory = await open({ storage: 'memory', compression: COMPRESSED });
    await memory.importIndex(file);
    await expectSameRankings(into, memory);
    await expectSameRankings(s, memory);
    // Imported over an index whose rows are on demand already: they stay so.
    await s.importIndex(file);
    expect((await s.stats()).compression).toMatchObject({ state: 'ready', trainings: 1 });
    expect(await residentRows(s)).toBeLessThanOrEqual(SEGMENT_BYTES);
    await expectSameRankings(s, memory);
  });

  it('a first training in the background (another connection without compression crossed the threshold) puts the rows on demand without another write', async () => {
    const s = await open({ name: 'background', compression: COMPRESSED });
    const reference = await open({ storage: 'memory' });
    const writer = await open({ name: 'background' });
    await addAll(writer);
    await addAll(reference);
    // The compressed search hears of the writes and trains from them in the background.
    await trained(s, 1);
    const stats = await s.stats();
    expect(stats.compression).toMatchObject({ state: 'ready', trainings: 1 });
    expect(stats.tokens).toBeGreaterThan(3 * SEGMENT_BYTES / ROW_BYTES);
    expect(stats.vectorBytes - stats.compression!.codeBytes).toBeLessThanOrEqual(SEGMENT_BYTES);
    await expectSameRankings(s, reference);
    // The writer, without compression, holds every row.
    const plain = await writer.stats();
    expect(plain.vectorBytes).toBe(plain.tokens * ROW_BYTES);
  });

  it('a re-training swap in the background keeps the rows on demand; after clear() every row is held until the next training', async () => {
    const s = await open({ name: 'retrain', compression: COMPRESSED });
    const reference = await open({ storage: 'memory' });
    // About 4.4k tokens: the first training, on that many.
    await s.addEmbeddings(data.docs.slice(0, 100));
    await reference.addEmbeddings(data.docs.slice(0, 100));
    const first = (await s.stats()).compression!;
    expect(first).toMatchObject({ state: 'ready', trainings: 1 });
    // The add that crosses 4x the trained tokens re-trains in the background and returns before it is done.
    await addAll(s, data.docs.slice(100));
    await addAll(reference, data.docs.slice(100));
    await trained(s, 2);
    const stats = await s.stats();
    expect(stats.tokens).toBeGreaterThanOrEqual(RETRAIN_GROWTH * first.trainedTokens);
    expect(stats.compression).toMatchObject({ state: 'ready', trainings: 2 });
    expect(stats.compression!.trainedTokens).toBeGreaterThan(first.trainedTokens);
    expect(stats.vectorBytes - stats.compression!.codeBytes).toBeLessThanOrEqual(SEGMENT_BYTES);
    await expectSameRankings(s, reference);
    await s.clear();
    expect((await s.stats()).compression!.state).toBe('exhaustive');
    await s.addEmbeddings(data.docs.slice(0, 40));
    const small = await s.stats();
    expect(small.vectorBytes).toBe(small.tokens * ROW_BYTES);
  });

  it('a write that fails in its transaction (full quota while compacting rows not held) changes nothing', async () => {
    const s = await open({ name: 'fail', compression: COMPRESSED });
    const reference = await open({ storage: 'memory' });
    await addAll(s);
    await addAll(reference);
    const proto = IDBObjectStore.prototype;
    const put = proto.put;
    proto.put = function (this: IDBObjectStore, ...args: Parameters<IDBObjectStore['put']>) {
      if (this.name === 'rows') throw new DOMException('The quota has been exceeded.', 'QuotaExceededError');
      return put.apply(this, args);
    };
    // Replacing three quarters of the first segment's documents compacts it (its rows are read in the write).
    const replaced = data.docs.slice(0, 200).filter((_, i) => i % 4 !== 0).map((d, i) => ({ id: d.id, embedding: data.docs[599 - i]!.embedding }));
    const gone = replaced.map((d) => d.id);
    try {
      await expect(s.addEmbeddings(replaced)).rejects.toMatchObject({ code: 'QUOTA_EXCEEDED' });
      await expectSameRankings(s, reference);
      // A delete at a full quota falls back to one that stores nothing: the rest still reads back.
      expect(await s.delete(gone)).toBe(gone.length);
    } finally {
      proto.put = put;
    }
    await reference.delete(gone);
    await expectSameRankings(s, reference);
    expect(await residentRows(s)).toBeLessThanOrEqual(SEGMENT_BYTES);
  });
});

describe('CompressedIndex.onReadyChange: the rows follow the readiness', () => {
  afterEach(async () => {
    for (const { name } of await listIndexes()) await deleteIndex(name);
  });

  it('is told the readiness at once and after every flip (training, reset, open from stored codes); a store following it holds its rows only while not ready', async () => {
    const { docs } = clusteredData({ docs: 400, queries: 1, seed: 5 });
    const store = await IdbStore.open({ name: 'ready', fingerprint: { ...FINGERPRINT, dim: 128 }, precision: 'fp16' });
    try {
      for (let i = 0; i < docs.length; i += 100) await store.put(docs.slice(i, i + 100).map((d) => ({ id: d.id, matrix: d.embedding })));
      const { tokens } = await store.stats();
      expect(tokens).toBeGreaterThan(SEGMENT_BYTES / ROW_BYTES);
      const index = new CompressedIndex({ nbits: 2, poolFactor: 1, rerank: true });
      const heard: boolean[] = [];
      await index.onReadyChange(async (ready) => {
        heard.push(ready);
        await store.setRowResidency(ready ? 'on-demand' : 'all');
      });
      expect(heard).toEqual([false]);
      expect((await store.stats()).vectorBytes).toBe(tokens * ROW_BYTES);
      // Opening trains (awaited): the rows go, but for the tail segment's.
      await index.open(store);
      expect(heard).toEqual([false, true]);
      expect((await store.stats()).vectorBytes).toBeLessThanOrEqual(SEGMENT_BYTES);
      // A reset (clear, import) brings every row back before it resolves.
      await index.reset();
      expect(heard).toEqual([false, true, false]);
      expect((await store.stats()).vectorBytes).toBe(tokens * ROW_BYTES);
      // Opening again reads the stored codes: ready again, and nothing re-trained.
      await index.open(store);
      expect(heard).toEqual([false, true, false, true]);
      expect(index.stats().trainings).toBe(1);
      expect((await store.stats()).vectorBytes).toBeLessThanOrEqual(SEGMENT_BYTES);
      // Reopening (an import with codes) tells only where it ends: never 'not ready' on the way, so the rows never all come back.
      await index.reopen(store);
      expect(heard).toEqual([false, true, false, true]);
      expect(index.ready).toBe(true);
      // A write that changes nothing about readiness tells nobody.
      await store.put([{ id: docs[0]!.id, matrix: docs[1]!.embedding }]);
      await index.update(store, [docs[0]!.id]);
      expect(heard).toEqual([false, true, false, true]);
      // Disposed (the engine closes): the listeners are dropped, the store keeps its rows as they are.
      index.dispose();
      await index.idle();
      expect(heard).toEqual([false, true, false, true]);
      expect((await store.stats()).vectorBytes).toBeLessThanOrEqual(SEGMENT_BYTES);
    } finally {
      await store.close();
    }
  });
});

describe('schema 4 migration: rows move into chunks', () => {
  afterEach(async () => {
    for (const { name } of await listIndexes()) await deleteIndex(name);
  });

  it('an index written by schema 2 opens with the same rows, read back from chunks on demand', async () => {
    const docs = clusteredData({ docs: 400, queries: 1, seed: 4 }).docs;
    const fingerprint = { ...FINGERPRINT, dim: 128 };
    await writeSchema2Index('legacy', fingerprint, docs);
    const store = await IdbStore.open({ name: 'legacy', fingerprint });
    const resident = await store.matrices(docs.map((d) => d.id));
    await store.setRowResidency('on-demand');
    expect((await store.stats()).vectorBytes).toBeLessThan((await store.stats()).tokens * ROW_BYTES);
    const onDemand = await store.matrices(docs.map((d) => d.id));
    docs.forEach((d, i) => {
      expect(onDemand[i]!.ids).toEqual(d.embedding.ids);
      expect(onDemand[i]!.data.every((v, j) => v === resident[i]!.data[j])).toBe(true);
      // fp16 of the original vectors.
      expect(onDemand[i]!.data.every((v, j) => Math.abs(v - d.embedding.data[j]!) < 1e-3)).toBe(true);
    });
    await store.close();
    const db = await openDB(DB_PREFIX + 'legacy');
    expect(db.version).toBe(4);
    expect(await db.count('vectors')).toBe(0);
    expect(await db.count('rows')).toBeGreaterThan(1);
    db.close();
  });
});

describe('rowsShard: the rerank rows as stored', () => {
  afterEach(async () => {
    for (const { name } of await listIndexes()) await deleteIndex(name);
  });

  it('gives the stored rows (int8 scales included) in the order asked, from memory and on demand alike', async () => {
    const docs = clusteredData({ docs: 500, queries: 1, seed: 8 }).docs;
    const store = await IdbStore.open({ name: 'rows-int8', fingerprint: { ...FINGERPRINT, dim: 128 }, precision: 'int8' });
    for (let i = 0; i < docs.length; i += 100) await store.put(docs.slice(i, i + 100).map((d) => ({ id: d.id, matrix: d.embedding })));
    const ids = [docs[400]!.id, 'unknown', docs[2]!.id, docs[250]!.id, docs[3]!.id];
    const held = await store.rowsShard(ids, 'a');
    await store.setRowResidency('on-demand');
    const read = await store.rowsShard(ids, 'b');
    for (const s of [held, read]) {
      expect(s.precision).toBe('int8');
      expect(s.docIds).toEqual([docs[400]!.id, docs[2]!.id, docs[250]!.id, docs[3]!.id]);
    }
    expect([...read.offsets]).toEqual([...held.offsets]);
    expect(read.vectors).toEqual(held.vectors);
    expect(read.scales).toEqual(held.scales);
    // The same rows the scan yields for those documents.
    const rows = new Map<string, number[]>();
    for await (const s of store.shards()) {
      s.docIds.forEach((id, slot) => {
        if (id !== null) rows.set(id, [...s.vectors.subarray(s.offsets[slot]! * 128, s.offsets[slot + 1]! * 128), ...s.scales!.subarray(s.offsets[slot]!, s.offsets[slot + 1]!)]);
      });
    }
    read.docIds.forEach((id, i) => {
      const from = read.offsets[i]!;
      const to = read.offsets[i + 1]!;
      expect([...read.vectors.subarray(from * 128, to * 128), ...read.scales!.subarray(from, to)]).toEqual(rows.get(id!));
    });
    await store.close();
  });
});

describe('prefetchRows: the rerank rows read ahead', () => {
  afterEach(async () => {
    for (const { name } of await listIndexes()) await deleteIndex(name);
  });

  // About 26k tokens: four fp16 segments, the first three not held with rows on demand.
  const docs = clusteredData({ docs: 600, queries: 1, seed: 21 }).docs;
  const fingerprint = { ...FINGERPRINT, dim: 128 };

  async function filled(name: string): Promise<IdbStore> {
    const store = await IdbStore.open({ name, fingerprint, precision: 'fp16' });
    for (let i = 0; i < docs.length; i += 150) await store.put(docs.slice(i, i + 150).map((d) => ({ id: d.id, matrix: d.embedding })));
    return store;
  }

  /** Each document's rows (fp16 bits) as a rows shard gives them, by id. */
  async function rowsOf(store: IdbStore, ids: readonly string[]): Promise<Map<string, number[]>> {
    const s = await store.rowsShard(ids, 'check');
    const out = new Map<string, number[]>();
    s.docIds.forEach((id, i) => out.set(id!, [...s.vectors.subarray(s.offsets[i]! * 128, s.offsets[i + 1]! * 128)]));
    return out;
  }

  it('takes the chunks read ahead and reads only the rest, with the same rows as without', async () => {
    const store = await filled('ahead');
    const ids = [docs[5]!.id, docs[100]!.id, docs[250]!.id, docs[330]!.id, docs[590]!.id, 'unknown'];
    const held = await rowsOf(store, ids);
    await store.setRowResidency('on-demand');
    const plain = await rowsOf(store, ids);
    expect(store.lastRead).toEqual({ chunks: 4, prefetched: 0 });
    // Read ahead: two of the four documents not held (docs[590] is in the tail, held; 'unknown' is nobody).
    store.prefetchRows([docs[5]!.id, docs[250]!.id, docs[590]!.id, 'unknown']);
    const mixed = await rowsOf(store, ids);
    expect(store.lastRead).toEqual({ chunks: 4, prefetched: 2 });
    // Each read ahead is taken once: the next read reads them itself.
    const again = await rowsOf(store, ids);
    expect(store.lastRead).toEqual({ chunks: 4, prefetched: 0 });
    for (const got of [plain, mixed, again]) expect(got).toEqual(held);
    expect([...held.keys()]).toEqual(ids.slice(0, 5));
    await store.close();
  });

  it('a replacement, a compaction or another connection\'s write between the read ahead and the read gives the rows stored now', async () => {
    const store = await filled('ahead-writes');
    await store.setRowResidency('on-demand');
    const other = await IdbStore.open({ name: 'ahead-writes', fingerprint, rowsOnDemand: true });
    // A first-segment document replaced by another's vectors after its chunk was read ahead.
    store.prefetchRows([docs[5]!.id, docs[6]!.id]);
    await store.put([{ id: docs[5]!.id, matrix: docs[400]!.embedding }]);
    const replaced = await rowsOf(store, [docs[5]!.id, docs[6]!.id, docs[400]!.id]);
    expect(replaced.get(docs[5]!.id)).toEqual(replaced.get(docs[400]!.id));
    expect(replaced.get(docs[6]!.id)).not.toEqual(replaced.get(docs[400]!.id));
    // Three quarters of the first segment's documents deleted by the other connection after this
    // one read the survivors' chunks ahead: the compaction moves them (the chunks read ahead are
    // of a segment that is gone), and the read finds them where they are now.
    const kept = docs.slice(0, 150).filter((_, i) => i % 4 === 0 && i !== 0).map((d) => d.id);
    const want = await rowsOf(other, kept);
    store.prefetchRows(kept);
    const gone = docs.slice(0, 150).filter((_, i) => i % 4 !== 0).map((d) => d.id);
    expect(await other.delete(gone)).toHaveLength(gone.length);
    const after = await rowsOf(store, [...kept, ...gone]);
    expect(store.lastRead!.prefetched).toBe(0);
    expect(after).toEqual(want);
    // The other connection replaces a first-segment document whose old rows are still stored (a
    // tombstone, no compaction): this one's read, begun before it caught up, gives the new rows.
    store.prefetchRows([docs[200]!.id]);
    await other.put([{ id: docs[200]!.id, matrix: docs[401]!.embedding }]);
    const moved = await rowsOf(store, [docs[200]!.id, docs[401]!.id]);
    expect(moved.get(docs[200]!.id)).toEqual(moved.get(docs[401]!.id));
    // And a read ahead that nothing overtook is taken, with the rows the other connection reads.
    store.prefetchRows([docs[330]!.id]);
    const mine = await rowsOf(store, [docs[330]!.id]);
    expect(store.lastRead).toEqual({ chunks: 1, prefetched: 1 });
    expect(mine.get(docs[330]!.id)).toEqual((await rowsOf(other, [docs[330]!.id])).get(docs[330]!.id));
    await other.close();
    await store.close();
  });

  it('does nothing where every row is held, or once closed', async () => {
    const store = await filled('ahead-held');
    store.prefetchRows([docs[5]!.id]);
    await rowsOf(store, [docs[5]!.id]);
    expect(store.lastRead).toEqual({ chunks: 0, prefetched: 0 });
    await store.close();
    expect(() => store.prefetchRows([docs[5]!.id])).not.toThrow();
  });
});
