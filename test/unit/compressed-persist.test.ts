/**
 * The compressed index persisted in IndexedDB (fake-indexeddb), at the store layer: a
 * CompressedIndex over an IdbStore, no model. Codes are written in the same transaction as the
 * vectors; opening reads them (no training); a document whose codes are missing or tagged with
 * other rows is encoded on open; a training that never switched leaves the old generation
 * serving and its leftovers are dropped on the next open; a background re-training switches
 * generations and deletes the old one; another connection's write is picked up from the stored
 * codes; an index written by the previous schema opens and trains once.
 */
import 'fake-indexeddb/auto';
import { openDB } from 'idb';
import { afterEach, describe, expect, it } from 'vitest';
import { CompressedIndex, RETRAIN_GROWTH } from '../../src/compression.ts';
import { DB_PREFIX, deleteIndex, IdbStore, listIndexes } from '../../src/store/idb.ts';
import { FORMAT_VERSION, type ModelFingerprint } from '../../src/store/manifest.ts';
import { centroidFloats } from '../../src/store/residual.ts';
import { clusteredData } from '../support/clusters.ts';
import { writeSchema2Index } from '../support/legacy-index.ts';
import { FINGERPRINT } from '../support/store.ts';

const DIM = 128;
const FP: ModelFingerprint = { ...FINGERPRINT, dim: DIM };
const OPTIONS = { nbits: 2, poolFactor: 1, rerank: true } as const;
const data = clusteredData({ docs: 200, queries: 2, seed: 5 });
const opened: IdbStore[] = [];

async function openStore(name: string, onChange?: () => void): Promise<IdbStore> {
  const store = await IdbStore.open({ name, fingerprint: FP, precision: 'fp16', ...(onChange ? { onChange } : {}) });
  opened.push(store);
  return store;
}

async function close(store: IdbStore): Promise<void> {
  opened.splice(opened.indexOf(store), 1);
  await store.close();
}

/** A store with a trained, persisted compressed index over the first `docs` documents. */
async function trained(name: string, docs = 120): Promise<{ store: IdbStore; index: CompressedIndex }> {
  const store = await openStore(name);
  const index = new CompressedIndex(OPTIONS);
  await index.open(store);
  const batch = data.docs.slice(0, docs).map((d) => ({ id: d.id, matrix: d.embedding }));
  await store.put(batch);
  await index.update(store, batch.map((d) => d.id));
  await index.settled();
  expect(index.stats()).toMatchObject({ state: 'ready', trainings: 1 });
  return { store, index };
}

/** The codes the index holds for every document, by id. */
function held(index: CompressedIndex): Map<string, number[]> {
  const g = index.generation!;
  const out = new Map<string, number[]>();
  for (const id of g.codes.storedIds()) {
    const c = g.codes.document(id)!;
    out.set(id, [...c.codes, ...c.residuals]);
  }
  return out;
}

async function storedGenerations(name: string): Promise<{ codecs: number[]; codes: number[] }> {
  const db = await openDB(DB_PREFIX + name);
  const codecs = (await db.getAllKeys('codecs')) as number[];
  const codes = ((await db.getAllKeys('codes')) as [number, string][]).map((k) => k[0]);
  db.close();
  return { codecs, codes: [...new Set(codes)] };
}

afterEach(async () => {
  await Promise.all(opened.splice(0).map((s) => s.close()));
  for (const { name } of await listIndexes()) await deleteIndex(name);
});

describe('compressed index in IndexedDB', () => {
  it('writes a document\'s codes in the same transaction as its vectors, tagged with its rows', async () => {
    const { store } = await trained('tx');
    const codec = await store.readCodec();
    expect(codec).toBeDefined();
    const extra = data.docs[150]!;
    await store.put([{ id: extra.id, matrix: extra.embedding }]);
    // No update() yet: whatever is stored came with the vectors' own write.
    const codes = await store.readCodes(codec!.generation, [extra.id]);
    expect(codes.get(extra.id)?.tag).toBe((await store.codeTags()).get(extra.id));
    expect(codes.get(extra.id)?.codes.length).toBe(extra.embedding.tokens);
    // A delete removes them with the document.
    await store.delete([extra.id]);
    expect((await store.readCodes(codec!.generation, [extra.id])).size).toBe(0);
  });

  it('reopening reads the codes instead of training, identical to what was held', async () => {
    const { store, index } = await trained('reopen');
    const before = held(index);
    await close(store);
    const again = await openStore('reopen');
    const reopened = new CompressedIndex(OPTIONS);
    await reopened.open(again);
    expect(reopened.stats()).toMatchObject({ state: 'ready', trainings: 0, trainedTokens: index.stats().trainedTokens, centroids: index.stats().centroids });
    expect(held(reopened)).toEqual(before);
    // Other options (nbits) do not use the stored codec: that search trains its own.
    const other = new CompressedIndex({ ...OPTIONS, nbits: 4 });
    await other.open(again);
    expect(other.stats()).toMatchObject({ state: 'ready', trainings: 1, nbits: 4 });
  });

  it('a codec record stored with fp32 centroids (the previous version) opens without training, rounded to fp16', async () => {
    const { store, index } = await trained('fp32-codec');
    const before = held(index);
    const halves = Array.from(index.generation!.trained.codec.centroids);
    const gen = index.generation!.id;
    await close(store);
    // What the previous version wrote: Float32 centroids, no centroidBits.
    const db = await openDB(DB_PREFIX + 'fp32-codec');
    const rec = await db.get('codecs', gen);
    expect(rec.centroidBits).toBe(16);
    const { centroidBits: _, ...old } = rec;
    await db.put('codecs', { ...old, centroids: centroidFloats({ centroids: new Uint16Array(rec.centroids) }).buffer }, gen);
    db.close();
    const again = await openStore('fp32-codec');
    const reopened = new CompressedIndex(OPTIONS);
    await reopened.open(again);
    expect(reopened.stats()).toMatchObject({ state: 'ready', trainings: 0, centroids: index.stats().centroids });
    const codec = reopened.generation!.trained.codec;
    expect(codec.centroids).toBeInstanceOf(Uint16Array);
    expect(Array.from(codec.centroids)).toEqual(halves);
    expect(held(reopened)).toEqual(before);
  });

  it('encodes on open a document whose codes are missing or tagged with other rows, and stores them', async () => {
    const { store, index } = await trained('stale');
    const gen = index.generation!.id;
    await close(store);
    // A connection without compression replaces d3 (its old codes go) and a record of d4 carries a wrong tag.
    const plain = await openStore('stale');
    await plain.put([{ id: 'd3', matrix: data.docs[160]!.embedding }]);
    expect((await plain.readCodes(gen, ['d3'])).size).toBe(0);
    await close(plain);
    const db = await openDB(DB_PREFIX + 'stale');
    const rec = await db.get('codes', [gen, 'd4']);
    await db.put('codes', { ...rec, tag: 'other@1' }, [gen, 'd4']);
    db.close();
    const again = await openStore('stale');
    const reopened = new CompressedIndex(OPTIONS);
    await reopened.open(again);
    expect(reopened.stats().trainings).toBe(0);
    expect(reopened.generation!.codes.document('d3')!.codes.length).toBe(data.docs[160]!.embedding.tokens);
    const tags = await again.codeTags();
    const stored = await again.readCodes(gen, ['d3', 'd4']);
    expect(stored.get('d3')?.tag).toBe(tags.get('d3'));
    expect(stored.get('d4')?.tag).toBe(tags.get('d4'));
    expect([...stored.get('d4')!.codes]).toEqual([...index.generation!.codes.document('d4')!.codes]);
  });

  it('a training that never switched leaves the old generation serving; its leftovers go on the next open', async () => {
    const { store, index } = await trained('killed');
    const gen = index.generation!.id;
    // What a page closed during re-training leaves: the next generation's codec and some codes, no switch.
    const next = await store.beginGeneration({ ...(await store.readCodec())!, trainedTokens: 1 });
    const some = new Map([...(await store.readCodes(gen))].slice(0, 10));
    await store.writeGenerationCodes(next, some);
    expect(next).toBeGreaterThan(gen);
    expect((await storedGenerations('killed')).codes.sort()).toEqual([gen, next]);
    await close(store);
    const again = await openStore('killed');
    const reopened = new CompressedIndex(OPTIONS);
    await reopened.open(again);
    expect(reopened.generation!.id).toBe(gen);
    expect(reopened.stats().trainings).toBe(0);
    expect(await storedGenerations('killed')).toEqual({ codecs: [gen], codes: [gen] });
    // A generation number is never handed out twice.
    expect(await again.beginGeneration((await again.readCodec())!)).toBeGreaterThan(next);
  });

  it('a background re-training writes a new generation, switches in one step and deletes the old one', async () => {
    const big = clusteredData({ docs: 700, queries: 1, seed: 9 });
    const store = await openStore('retrain');
    const index = new CompressedIndex(OPTIONS);
    await index.open(store);
    let i = 0;
    const addBatch = async () => {
      const batch = big.docs.slice(i, i + 25).map((d) => ({ id: d.id, matrix: d.embedding }));
      i += 25;
      await store.put(batch);
      await index.update(store, batch.map((d) => d.id));
    };
    while (!index.ready) await addBatch();
    const first = index.generation!.id;
    // A second connection follows: it reads the first generation, and later the re-trained one.
    const other = await openStore('retrain');
    const follower = new CompressedIndex(OPTIONS);
    await follower.open(other);
    expect(follower.generation!.id).toBe(first);
    const trainedTokens = index.stats().trainedTokens;
    while ((await store.stats()).tokens < RETRAIN_GROWTH * trainedTokens) await addBatch();
    expect(index.stats().state).toBe('training');
    // Changes while it runs are carried into the new generation by the switch.
    const late = big.docs[i]!;
    await store.put([{ id: late.id, matrix: late.embedding }]);
    await index.update(store, [late.id]);
    await store.delete(['d0']);
    await index.update(store, [], ['d0']);
    await index.settled();
    const g = index.generation!;
    expect(g.id).toBeGreaterThan(first);
    expect(index.stats().trainings).toBe(2);
    expect((await store.readCodec())!.generation).toBe(g.id);
    expect(await storedGenerations('retrain')).toEqual({ codecs: [g.id], codes: [g.id] });
    const tags = await store.codeTags();
    const stored = await store.readCodes(g.id);
    expect([...stored.keys()].sort()).toEqual([...tags.keys()].sort());
    for (const [id, tag] of tags) expect(stored.get(id)!.tag).toBe(tag);
    expect(g.codes.has(late.id) && !g.codes.has('d0')).toBe(true);
    expect(g.codes.documents).toBe(tags.size);
    // The deleted and re-encoded documents leave no dead tokens in the new generation (2 bytes a code).
    expect(g.codes.breakdown().codes).toBe(2 * (await store.stats()).tokens);
    await follower.sync(other);
    expect(follower.generation!.id).toBe(g.id);
    expect(follower.stats()).toMatchObject({ trainings: 0, trainedTokens: index.stats().trainedTokens });
    expect(held(follower)).toEqual(held(index));
  });

  it('another connection picks up a write from the stored codes, without training', async () => {
    const { store, index } = await trained('tabs');
    let changed = 0;
    const other = await openStore('tabs', () => changed++);
    const follower = new CompressedIndex(OPTIONS);
    await follower.open(other);
    const extra = data.docs[170]!;
    await store.put([{ id: extra.id, matrix: extra.embedding }]);
    await index.update(store, [extra.id]);
    await store.delete(['d1']);
    await index.update(store, [], ['d1']);
    await expect.poll(() => changed, { timeout: 5000 }).toBeGreaterThanOrEqual(1);
    await follower.sync(other);
    expect(follower.stats().trainings).toBe(0);
    expect(held(follower)).toEqual(held(index));
  });

  it('at a full quota, delete() and clear() still work and remove the code records too', async () => {
    const { store, index } = await trained('full');
    const gen = index.generation!.id;
    const proto = IDBObjectStore.prototype;
    const { put, add } = proto;
    const full = () => {
      throw new DOMException('The quota has been exceeded.', 'QuotaExceededError');
    };
    proto.put = full;
    proto.add = full;
    try {
      expect(await store.delete(['d2', 'd7'])).toEqual(['d2', 'd7']);
      await index.update(store, [], ['d2', 'd7']);
      expect((await store.readCodes(gen, ['d2', 'd7', 'd8'])).size).toBe(1);
      await store.clear();
    } finally {
      proto.put = put;
      proto.add = add;
    }
    expect(await storedGenerations('full')).toEqual({ codecs: [], codes: [] });
    expect(await store.readCodec()).toBeUndefined();
  });

  it('a training whose codes do not fit the quota serves them from memory; the add that started it does not fail', async () => {
    const store = await openStore('nospace');
    const index = new CompressedIndex(OPTIONS);
    await index.open(store);
    const batch = data.docs.slice(0, 120).map((d) => ({ id: d.id, matrix: d.embedding }));
    await store.put(batch);
    const proto = IDBObjectStore.prototype;
    const { put } = proto;
    proto.put = function (this: IDBObjectStore, ...args: Parameters<IDBObjectStore['put']>) {
      if (this.name === 'codecs' || this.name === 'codes') throw new DOMException('The quota has been exceeded.', 'QuotaExceededError');
      return put.apply(this, args);
    };
    try {
      await index.update(store, batch.map((d) => d.id));
    } finally {
      proto.put = put;
    }
    expect(index.stats()).toMatchObject({ state: 'ready', trainings: 1 });
    expect(index.generation!.id).toBe(0);
    expect(index.generation!.codes.documents).toBe(120);
    expect(await store.readCodec()).toBeUndefined();
  });

  it('migrates an index written by the previous schema: it opens unchanged and trains once when compression is asked for', async () => {
    await writeSchema2Index('legacy', FP, data.docs.slice(0, 120));
    const store = await openStore('legacy');
    expect((await store.stats()).documents).toBe(120);
    expect((await store.snapshot()).manifest.format).toBe(FORMAT_VERSION);
    expect(await store.readCodec()).toBeUndefined();
    const index = new CompressedIndex(OPTIONS);
    await index.open(store);
    expect(index.stats()).toMatchObject({ state: 'ready', trainings: 1 });
    await close(store);
    const again = await openStore('legacy');
    const reopened = new CompressedIndex(OPTIONS);
    await reopened.open(again);
    expect(reopened.stats()).toMatchObject({ state: 'ready', trainings: 0 });
    expect(held(reopened)).toEqual(held(index));
  });
});
