/**
 * Writes an IndexedDB index the way colbert-web stored it before the compressed index persisted
 * (IndexedDB schema 2, index format 1): the same object stores and records, made with raw `idb`
 * calls and the shard format both versions share, so the migration in src/store/idb.ts
 * `upgrade()` is tested against real old records rather than a checked-in binary.
 */
import { openDB } from 'idb';
import { DB_PREFIX } from '../../src/store/idb.ts';
import type { ModelFingerprint } from '../../src/store/manifest.ts';
import { packMatrix, Shard, ShardSet, type RowChunk, type SegmentData, type SegmentMeta } from '../../src/store/shards.ts';
import type { TokenMatrix } from '../../src/types.ts';

/** Schema 2's object stores. */
const SCHEMA_2_STORES = ['manifest', 'segments', 'vectors', 'docs', 'texts', 'staging', 'postings'] as const;

/** Writes index `name` as schema 2 / format 1 with these documents (fp16 vectors, no texts). */
export async function writeSchema2Index(name: string, fingerprint: ModelFingerprint, docs: readonly { id: string; embedding: TokenMatrix }[]): Promise<void> {
  const precision = 'fp16' as const;
  const set = new ShardSet(precision, fingerprint.dim, 'legacy', false);
  const plan = set.plan(
    docs.map((d) => ({ id: d.id, tokens: d.embedding.tokens, packed: packMatrix(d.embedding.data, d.embedding.tokens, d.embedding.dim, precision), tokenIds: d.embedding.ids })),
    [],
    fingerprint.dim,
  );
  set.apply(plan);
  const db = await openDB(DB_PREFIX + name, 2, {
    upgrade(database) {
      for (const s of SCHEMA_2_STORES) database.createObjectStore(s);
    },
  });
  const tx = db.transaction([...SCHEMA_2_STORES], 'readwrite');
  const now = Date.now();
  const generation = 1;
  const pending: Promise<unknown>[] = [];
  pending.push(
    tx.objectStore('manifest').put(
      {
        format: 1,
        name,
        fingerprint,
        precision,
        dim: fingerprint.dim,
        documents: docs.length,
        tokens: set.tokens,
        createdAt: now,
        updatedAt: now,
        generation,
        nextSegment: set.nextSegment,
        lexical: { language: 'en', stemming: true, stopWords: true },
      },
      'manifest',
    ),
    tx.objectStore('manifest').put({ generation }, 'clean'),
  );
  for (const shard of set.list()) {
    // Schema 2's meta had no row chunks: the rows were one `vectors` record per segment.
    const { chunks: _chunks, ...meta } = shard.toMeta();
    pending.push(tx.objectStore('segments').put(meta, shard.segment), tx.objectStore('vectors').put(shard.toData(), shard.segment));
  }
  for (const d of docs) pending.push(tx.objectStore('docs').put({ id: d.id, hash: '', tokens: d.embedding.tokens, textLength: 0 }, d.id));
  await Promise.all([...pending, tx.done]);
  db.close();
}

/**
 * The `segments` and `vectors` records of a database written by today's store, laid out as
 * schemas 1-3 stored them (one record of rows per segment, metas without row chunks), for tests
 * that rewrite a database as an older schema had it.
 */
export async function legacySegmentRecords(db: { getAll(store: string, range?: IDBKeyRange): Promise<unknown[]> }): Promise<{ segments: SegmentMeta[]; vectors: SegmentData[] }> {
  const metas = (await db.getAll('segments')) as SegmentMeta[];
  const segments: SegmentMeta[] = [];
  const vectors: SegmentData[] = [];
  for (const meta of metas) {
    const chunks = (await db.getAll('rows', IDBKeyRange.bound([meta.segment], [meta.segment + 1], false, true))) as RowChunk[];
    const { chunks: _chunks, ...old } = meta;
    segments.push(old);
    vectors.push(Shard.fromChunks('legacy', meta, chunks).toData());
  }
  return { segments, vectors };
}
