/**
 * A persistent, crash-safe {@link VectorStore} in IndexedDB (`storage: 'indexeddb'`), one
 * database per named index, typed with idb's `DBSchema`.
 *
 * Object stores:
 * - `manifest`: the model fingerprint, precision, format version, counts and a generation number
 *   bumped by every write (how other tabs notice a change);
 * - `segments` / `rows`: the shards of ./shards.ts, split into the small mutable part
 *   (doc ids, tombstones, offsets, chunk boundaries) and the packed rows, stored as chunks of
 *   whole documents keyed [segment, chunk] (about 32 KiB each), appended and never rewritten, so
 *   one document's rows are one small read (schema 4; `vectors` held one record per segment
 *   before, and is empty since the migration);
 * - `docs`: per document its content hash and metadata (loaded on open, never per query);
 * - `texts`: the document texts, read only by export (and by the migration that built postings);
 * - `postings`: the lexical index, key [term, block]: each write that stores texts adds one block
 *   per term it touches (ids and term frequencies of that write's documents), so a lexical query
 *   reads only the lists of its terms. A posting is live while its document's record still
 *   names that block (`DocRecord.lex`); replaced and deleted documents' postings are skipped,
 *   and dropped when the index is cleared or imported;
 * - `staging`: encodings of an unfinished `add`, invisible to search, reused when it is retried;
 * - `codecs` / `codes`: the compressed index (`compression`): codecs (centroids, buckets, the
 *   coarse assignment level) by generation number, and per [generation, document id] the
 *   document's centroid codes and residuals, tagged with what they were encoded from (its content
 *   hash and the generation of the write that stored its rows, see {@link codeTag}). The
 *   manifest's `codec` names the generation searches use; a write of rows encodes them in its
 *   own transaction when its context has that codec ({@link IdbStore.setCodeEncoder}); a
 *   (re)training writes a new generation beside it and flips `codec` in one transaction.
 *
 * Invariants:
 * - every change is ONE readwrite transaction: a closed tab, a killed worker or a full quota
 *   leaves the index as it was before or after, never half;
 * - writes are serialised across tabs and workers by a Web Lock per index; each write checks
 *   the generation first and reloads what another context changed;
 * - the shards are held once in memory, loaded segment by segment; a search reads one small
 *   manifest record to see whether another context wrote meanwhile, never the whole store;
 * - with rows on demand ({@link IdbStore.setRowResidency}, asked for by the engine while the
 *   compressed index serves searches) only the ids, offsets and tombstones of each segment are
 *   held, and the rows of the segment appends go to: a rerank reads its documents' chunks in one
 *   transaction, a scan (exhaustive search, training, export) reads one segment at a time, a write
 *   reads the rows it must copy (a compaction) inside its own transaction. IndexedDB stays the one
 *   copy of the rows.
 */
import { deleteDB, openDB, type DBSchema, type IDBPDatabase, type IDBPTransaction, type StoreNames } from 'idb';
import { ColbertError, isColbertError } from '../errors.ts';
import { resolveLexicalConfig, sameLexicalConfig, termFrequencies, type LexicalConfig, type LexicalOptions } from '../lexical/analyze.ts';
import type { LexicalPostings, Posting } from '../lexical/bm25.ts';
import type { Metadata, TokenMatrix } from '../types.ts';
import { metadataJson } from './metadata.ts';
import { checkFingerprint, checkManifest, FORMAT_VERSION, type IndexManifest, type ModelFingerprint } from './manifest.ts';
import { decodeRows, type VectorPrecision } from './precision.ts';
import { centroidCount, halfCentroids, RESIDUAL_BITS, residualBytes, type ResidualBits } from './residual.ts';
import { shardCodes } from './codes.ts';
import {
  checkBatchDim,
  chunkDocument,
  documentMatrix,
  documentsShard,
  packMatrix,
  resolveCommit,
  Shard,
  ShardSet,
  snapshotShards,
  type PackedDocument,
  type RowChunk,
  type SegmentData,
  type SegmentMeta,
  type ShardPlan,
} from './shards.ts';
import type {
  CodeEncoder,
  CodeStore,
  CommitItem,
  DocumentState,
  IndexSnapshot,
  PersistedCodec,
  RowResidency,
  ShardView,
  StagedDocument,
  StoreChange,
  StoreStats,
  StoredDocument,
  TaggedCodes,
  VectorStore,
} from './types.ts';

/** Databases of this library are named `colbert-web:<index name>`. */
export const DB_PREFIX = 'colbert-web:';
/** Staged encodings older than this are dropped on open (milliseconds). */
const STAGING_TTL = 7 * 24 * 3600 * 1000;

interface ManifestRecord extends IndexManifest {
  name: string;
  /** Bumped by every committed write. */
  generation: number;
  /** Segment numbers are never reused, so a (segment, version) pair names one set of rows for good. */
  nextSegment: number;
  /** How texts become lexical terms (absent in indexes from before the lexical index: the default). */
  lexical?: LexicalConfig;
  /** The compressed index's current codec generation (absent: none stored). */
  codec?: number;
  /** The number the next codec generation gets (generation numbers are never reused). */
  nextCodec?: number;
}

interface DocRecord {
  id: string;
  hash: string;
  tokens: number;
  /** Length of the stored text in UTF-16 units (0 without text). */
  textLength: number;
  metadata?: Metadata;
  /** The postings block holding this document's terms, and its length in terms (absent without text). */
  lex?: { block: number; length: number };
  /** The manifest generation of the write that stored this document's rows (absent before schema 3: 0). */
  stamp?: number;
}

/** A codec generation of the compressed index. */
interface CodecRecord {
  generation: number;
  nbits: ResidualBits;
  poolFactor: number;
  dim: number;
  trainedTokens: number;
  /** IEEE half bits `count * dim` (Uint16) with `centroidBits: 16`; Float32 in records written before (rounded to halves when read). */
  centroids: ArrayBuffer;
  /** 16 for half centroids; absent in records that hold Float32 centroids. */
  centroidBits?: 16;
  cutoffs: ArrayBuffer;
  weights: ArrayBuffer;
  /** Float32 coarse centroids and Uint32 fine-centroid boundaries (../score/train.ts `CentroidTree`). */
  coarse: ArrayBuffer;
  starts: ArrayBuffer;
}

/** One document's codes in one generation. */
interface CodeRecord {
  /** {@link codeTag} of the document the codes were encoded from. */
  tag: string;
  /** Uint16 centroid code per token. */
  codes: ArrayBuffer;
  /** `residualBytes(dim, nbits)` bytes per token. */
  residuals: ArrayBuffer;
}

/** What a document's codes must be tagged with to be its codes: its content hash and the write that stored its rows. */
function codeTag(rec: DocRecord): string {
  return `${rec.hash}@${rec.stamp ?? 0}`;
}

/** One block of one term's posting list. */
interface PostingRecord {
  ids: string[];
  tfs: number[];
}

interface StagedRecord {
  id: string;
  hash: string;
  dim: number;
  tokens: number;
  vectors: ArrayBuffer;
  scales?: ArrayBuffer;
  tokenIds: ArrayBuffer;
  stagedAt: number;
}

/**
 * Beside the manifest: the generation of the last write that kept the index clean. A write at a
 * full quota (delete, clear) stores nothing, so it cannot bump the generation: it deletes this
 * record instead, and while it is missing every read reloads (see {@link IdbStore.reload}).
 */
interface CleanRecord {
  generation: number;
}

interface IndexSchema extends DBSchema {
  manifest: { key: string; value: ManifestRecord | CleanRecord };
  segments: { key: number; value: SegmentMeta };
  /** Before schema 4: one record of rows per segment (empty since the migration). */
  vectors: { key: number; value: SegmentData };
  /** Keyed by [segment, chunk] (schema 4). */
  rows: { key: [number, number]; value: RowChunk };
  docs: { key: string; value: DocRecord };
  texts: { key: string; value: string };
  /** Keyed by [id, content hash], so concurrent adds of one id with other texts keep their own encodings. */
  staging: { key: StagingKey; value: StagedRecord };
  postings: { key: [string, number]; value: PostingRecord };
  codecs: { key: number; value: CodecRecord };
  /** Keyed by [codec generation, document id]. */
  codes: { key: [number, string]; value: CodeRecord };
}

type StagingKey = [id: string, hash: string];
type Db = IDBPDatabase<IndexSchema>;
/** A readonly transaction over the row chunks alone. */
type RowsTx = IDBPTransaction<IndexSchema, ['rows'], 'readonly'>;
const ALL_STORES: StoreNames<IndexSchema>[] = ['manifest', 'segments', 'vectors', 'rows', 'docs', 'texts', 'staging', 'postings', 'codecs', 'codes'];
/**
 * The IndexedDB schema version (the object stores), apart from the index FORMAT_VERSION:
 * 1 = vectors, docs, texts, staging; 2 = + postings (built on upgrade from the stored texts);
 * 3 = + codecs, codes (empty on upgrade: a compressed search trains them on first open);
 * 4 = + rows: each segment's rows as chunks of whole documents (moved from `vectors` on upgrade).
 */
const DB_VERSION = 4;
const MANIFEST_KEY = 'manifest';
const CLEAN_KEY = 'clean';

/** True for a failure that a write needing no new space might avoid. */
function isQuotaError(err: unknown): boolean {
  return storageError(err, '').code === 'QUOTA_EXCEEDED';
}

/** Options of {@link IdbStore.open}. */
export interface IdbStoreOptions {
  /** Index name (any non-empty string). */
  name: string;
  /** The model that will read and write the vectors; a stored index built by another is refused. */
  fingerprint: ModelFingerprint;
  /** Precision for a new index; an existing one keeps its own (a different explicit value is an error). */
  precision?: VectorPrecision;
  /** Precision of a new index when `precision` is not given. Default 'fp32'. */
  newPrecision?: VectorPrecision;
  /** Called after another tab or worker changed this index (the store has already reloaded it). */
  onChange?: (change: StoreChange) => void;
  /**
   * Hold the loaded vectors in SharedArrayBuffers, for scoring sub-workers (one copy at load;
   * writes still store plain buffers). Default: where the realm is cross-origin isolated and
   * several scoring threads are possible.
   */
  sharedMemory?: boolean;
  /** How texts become lexical terms, for a new index (an existing one keeps its own). Default English, stemmed. */
  lexical?: LexicalOptions;
  /**
   * Open with the rows on demand (see {@link IdbStore.setRowResidency}) when the index has a
   * stored compressed index, so that opening never loads them. Default false.
   */
  rowsOnDemand?: boolean;
}

/** True when IndexedDB exists here. */
export function hasIndexedDB(): boolean {
  return typeof indexedDB !== 'undefined';
}

function requireIndexedDB(): void {
  if (!hasIndexedDB()) {
    throw new ColbertError('UNSUPPORTED_ENVIRONMENT', "IndexedDB is not available here (Node.js without a shim?). Use storage: 'memory'; exportIndex()/importIndex() still work there.");
  }
}

/** Checks an index name. */
export function checkIndexName(name: unknown): string {
  if (typeof name !== 'string' || name.length === 0 || name.length > 200) {
    throw new ColbertError('INVALID_ARGUMENT', `An index name must be a non-empty string of at most 200 characters; got ${JSON.stringify(name)}.`, { name });
  }
  return name;
}

/** Turns an IndexedDB failure into a coded error (quota first: it is the one callers can fix). */
export function storageError(err: unknown, what: string): ColbertError {
  if (isColbertError(err)) return err;
  const name = (err as { name?: string } | null)?.name;
  const inner = (err as { inner?: { name?: string } } | null)?.inner?.name;
  if (name === 'QuotaExceededError' || inner === 'QuotaExceededError') {
    return new ColbertError('QUOTA_EXCEEDED', `${what} needs more storage than the browser allows this site; it was rolled back and nothing was lost. Free space (deleteIndex(), site data) or use a smaller precision, then try again.`, { name }, { cause: err });
  }
  const message = err instanceof Error ? err.message : String(err);
  return new ColbertError('STORAGE_FAILED', `${what} failed in IndexedDB (${name ?? 'Error'}: ${message}); it was rolled back. Reload the page and try again.`, { name }, { cause: err });
}

/** Where Web Locks are missing (Node), writes are serialised per index name in this context only. */
const localLocks = new Map<string, Promise<unknown>>();

/** Runs `fn` holding this index's write lock, across tabs and workers (Web Locks), else in this context. */
async function withLock<T>(name: string, fn: () => Promise<T>): Promise<T> {
  const locks = (globalThis.navigator as Navigator | undefined)?.locks;
  if (locks?.request) return locks.request(`${DB_PREFIX}${name}`, fn) as Promise<T>;
  const before = localLocks.get(name) ?? Promise.resolve();
  const run = before.then(fn, fn);
  localLocks.set(name, run.catch(() => undefined));
  return run;
}

function newChannel(name: string): BroadcastChannel | undefined {
  return typeof BroadcastChannel === 'undefined' ? undefined : new BroadcastChannel(`${DB_PREFIX}${name}`);
}

/** A staged record as a packed document at the store's precision. */
function stagedDocument(rec: StagedRecord, precision: VectorPrecision): PackedDocument & { hash: string } {
  const n = rec.tokens * rec.dim;
  const vectors = precision === 'fp32' ? new Float32Array(rec.vectors) : precision === 'fp16' ? new Uint16Array(rec.vectors) : new Int8Array(rec.vectors);
  if (vectors.length !== n) throw new ColbertError('INDEX_CORRUPT', `The staged encoding of "${rec.id}" has the wrong size.`, { id: rec.id });
  const packed = rec.scales ? { precision, vectors, scales: new Float32Array(rec.scales) } : { precision, vectors };
  return { id: rec.id, hash: rec.hash, tokens: rec.tokens, packed, tokenIds: new Int32Array(rec.tokenIds) };
}

/**
 * Writes one postings block: the terms of `docs` (those with text), one record per term. Returns
 * each indexed document's `lex` field.
 */
function writePostings(
  postings: { put(value: PostingRecord, key: [string, number]): Promise<unknown> },
  docs: readonly { id: string; text?: string | undefined }[],
  block: number,
  config: LexicalConfig,
  pending: Promise<unknown>[],
): Map<string, { block: number; length: number }> {
  const lists = new Map<string, PostingRecord>();
  const lex = new Map<string, { block: number; length: number }>();
  for (const doc of docs) {
    if (doc.text === undefined) continue;
    const { tf, length } = termFrequencies(doc.text, config);
    lex.set(doc.id, { block, length });
    for (const [term, f] of tf) {
      let rec = lists.get(term);
      if (!rec) lists.set(term, (rec = { ids: [], tfs: [] }));
      rec.ids.push(doc.id);
      rec.tfs.push(f);
    }
  }
  for (const [term, rec] of lists) pending.push(postings.put(rec, [term, block]));
  return lex;
}

/**
 * Aborts a failed write's transaction (a request that threw synchronously must not let the
 * others commit) and returns the error to throw: the transaction's own, where it has one.
 */
function abortWith(tx: IDBPTransaction<IndexSchema, StoreNames<IndexSchema>[], 'readwrite'>, pending: Promise<unknown>[], err: unknown): unknown {
  pending.forEach((p) => p.catch(() => undefined));
  try {
    tx.abort();
  } catch {
    // Already finished or aborted.
  }
  return tx.error ?? err;
}

/** Most row chunks held read ahead ({@link IdbStore.prefetchRows}) and not taken yet: about 8 MiB of 32 KiB chunks. */
const AHEAD_CHUNKS = 256;

function aheadKey(segment: number, version: number, chunk: number): string {
  return `${segment}:${version}:${chunk}`;
}

/** Key range of one segment's row chunks. */
function segmentRange(segment: number): IDBKeyRange {
  return IDBKeyRange.bound([segment], [segment + 1], false, true);
}

/** Stores a shard's rows not stored yet as new chunks, and its meta (which names them). */
function writeShard(tx: IDBPTransaction<IndexSchema, StoreNames<IndexSchema>[], 'readwrite' | 'versionchange'>, shard: Shard, pending: Promise<unknown>[]): void {
  const rows = tx.objectStore('rows');
  for (const { chunk, data } of shard.newChunks()) pending.push(rows.put(data, [shard.segment, chunk]));
  pending.push(tx.objectStore('segments').put(shard.toMeta(), shard.segment));
}

/** Applies a shard plan's segment changes inside a transaction. */
function writePlan(tx: IDBPTransaction<IndexSchema, StoreNames<IndexSchema>[], 'readwrite'>, plan: ShardPlan, pending: Promise<unknown>[]): void {
  const segments = tx.objectStore('segments');
  for (const segment of plan.removed) pending.push(segments.delete(segment), tx.objectStore('rows').delete(segmentRange(segment)));
  // Appends write only their own new chunks: stored chunks are never rewritten.
  for (const segment of plan.rowsChanged) writeShard(tx, plan.shards.get(segment)!, pending);
  for (const segment of plan.metaChanged) pending.push(segments.put(plan.shards.get(segment)!.toMeta(), segment));
}

/** The persistent store. Create with {@link IdbStore.open}. */
export class IdbStore implements VectorStore, CodeStore {
  readonly precision: VectorPrecision;
  /** Encodes the rows of every write in its transaction (see {@link setCodeEncoder}). */
  private encoder: CodeEncoder | null = null;
  private readonly set: ShardSet;
  private docs = new Map<string, DocRecord>();
  private manifest: ManifestRecord;
  private closed = false;
  /** Why the connection was lost (deleted or upgraded elsewhere, or killed by the browser). */
  private lost: string | undefined;
  private readonly channel: BroadcastChannel | undefined;
  private refreshing: Promise<void> | undefined;
  /** Whether the last load found the clean record of its generation (else every read reloads). */
  private clean = true;
  /**
   * Segments whose stored meta still names documents that a write at a full quota deleted (their
   * doc records are gone, so loading tombstones them); the next write with space rewrites them.
   */
  private readonly phantoms = new Set<number>();
  /** Rows on demand: only the tail segment's rows are held (see the module comment). */
  private onDemand = false;
  /** Bytes per token and fixed bytes of the stored codes of a generation (for bytesOnDisk), once known. */
  private codeShape: { generation: number; perToken: number; fixed: number } | undefined;
  /** The shape of the generation a training is storing (current once it switches). */
  private pendingShape: { generation: number; perToken: number; fixed: number } | undefined;
  /**
   * Row chunks read ahead by {@link prefetchRows}, by segment, segment version and chunk (a
   * stored chunk never changes while its segment keeps its version); each taken by the next
   * read that wants it, the oldest dropped past {@link AHEAD_CHUNKS}.
   */
  private readonly ahead = new Map<string, { segment: number; version: number; chunk: Promise<RowChunk | undefined> }>();
  /** @internal The last rows' read ({@link rowsShard}, {@link matrices}): stored chunks it needed, and how many of them were read ahead. */
  lastRead: { chunks: number; prefetched: number } | undefined;

  private constructor(
    private readonly db: Db,
    readonly name: string,
    manifest: ManifestRecord,
    private readonly onChange: ((change: StoreChange) => void) | undefined,
    sharedMemory: boolean | undefined,
    readonly lexical: LexicalConfig,
  ) {
    this.manifest = manifest;
    this.precision = manifest.precision;
    this.set = new ShardSet(manifest.precision, manifest.dim, `idb:${name}`, sharedMemory);
    this.channel = newChannel(name);
    if (this.channel) this.channel.onmessage = (event: MessageEvent) => void this.onMessage(event.data);
  }

  /** Opens (or creates) the named index; refuses one built with another model. */
  static async open(options: IdbStoreOptions): Promise<IdbStore> {
    requireIndexedDB();
    const name = checkIndexName(options.name);
    const lexical = resolveLexicalConfig(options.lexical);
    let store: IdbStore | undefined;
    let db: Db;
    try {
      db = await openDB<IndexSchema>(DB_PREFIX + name, DB_VERSION, {
        upgrade(database, oldVersion, _newVersion, transaction) {
          // Schema migrations, one step per version, inside the upgrade transaction.
          if (oldVersion < 1) {
            for (const s of ALL_STORES) database.createObjectStore(s);
            return;
          }
          const tx = transaction as unknown as IDBPTransaction<IndexSchema, StoreNames<IndexSchema>[], 'versionchange'>;
          let steps = Promise.resolve();
          if (oldVersion < 2) {
            database.createObjectStore('postings');
            steps = migrateToPostings(tx, lexical);
          }
          if (oldVersion < 3) {
            database.createObjectStore('codecs');
            database.createObjectStore('codes');
            // After the step before: both rewrite the manifest record.
            steps = steps.then(() => migrateToCodes(tx));
          }
          if (oldVersion < 4) {
            database.createObjectStore('rows');
            steps = steps.then(() => migrateToChunks(tx));
          }
          steps.catch(() => {
            try {
              transaction.abort();
            } catch {
              // Already aborted by the failed request: the open fails and the index stays at its old schema.
            }
          });
        },
        blocking() {
          // Another context deletes or upgrades this index: let it, and fail our later calls clearly.
          store?.lose('the index was deleted or upgraded in another tab or worker');
          db.close();
        },
        terminated() {
          store?.lose('the browser closed the database connection');
        },
      });
    } catch (err) {
      // The database is at a newer schema than this version knows: a newer colbert-web wrote it.
      if ((err as { name?: string } | null)?.name === 'VersionError') {
        throw new ColbertError('INDEX_FORMAT_UNSUPPORTED', `Index "${name}" was stored by a newer colbert-web (its IndexedDB schema is newer than ${DB_VERSION}); upgrade colbert-web to open it. Nothing was changed.`, { name, schema: DB_VERSION }, { cause: err });
      }
      throw storageError(err, `Opening index "${name}"`);
    }
    try {
      let manifest = (await db.get('manifest', MANIFEST_KEY)) as ManifestRecord | undefined;
      if (!manifest) {
        // A new index: create its manifest unless another context just did.
        const tx = db.transaction('manifest', 'readwrite');
        manifest = (await tx.store.get(MANIFEST_KEY)) as ManifestRecord | undefined;
        if (!manifest) {
          const now = Date.now();
          manifest = { format: FORMAT_VERSION, name, fingerprint: options.fingerprint, precision: options.precision ?? options.newPrecision ?? 'fp32', dim: options.fingerprint.dim, documents: 0, tokens: 0, createdAt: now, updatedAt: now, generation: 0, nextSegment: 0, lexical };
          await tx.store.put(manifest, MANIFEST_KEY);
          await tx.store.put({ generation: 0 } satisfies CleanRecord, CLEAN_KEY);
        }
        await tx.done;
      }
      checkManifest(manifest, `Index "${name}"`);
      checkFingerprint(manifest.fingerprint, options.fingerprint, `Index "${name}"`);
      if (options.precision !== undefined && options.precision !== manifest.precision) {
        throw new ColbertError('INVALID_ARGUMENT', `Index "${name}" stores ${manifest.precision} vectors; it cannot be opened with precision '${options.precision}'. Leave precision out to use the stored one, or use another index name.`, { stored: manifest.precision, requested: options.precision });
      }
      const stored = manifest.lexical ?? resolveLexicalConfig(undefined);
      if (options.lexical !== undefined && !sameLexicalConfig(stored, lexical)) {
        throw new ColbertError('INVALID_ARGUMENT', `Index "${name}" indexes words as ${JSON.stringify(stored)}; it cannot be opened with lexical ${JSON.stringify(lexical)}. Leave lexical out to use the stored settings, or use another index name.`, { stored, requested: lexical });
      }
      store = new IdbStore(db, name, { ...manifest, generation: -1 }, options.onChange, options.sharedMemory, stored);
      store.onDemand = options.rowsOnDemand === true && manifest.codec !== undefined;
      await store.reload();
      if (await db.count('staging')) await store.dropStaleStaging();
      // Left unclean by a write at a full quota, or made by a version without the clean record: a
      // small write makes it clean again where there is space, so reads stop reloading.
      if (!store.clean) await store.markClean().catch(() => undefined);
      return store;
    } catch (err) {
      store?.channel?.close();
      db.close();
      throw storageError(err, `Opening index "${name}"`);
    }
  }

  get dim(): number | null {
    return this.set.dim;
  }

  private lose(reason: string): void {
    this.lost ??= reason;
  }

  private check(): void {
    if (this.closed) throw new ColbertError('CLOSED', 'The store was closed.');
    if (this.lost) throw new ColbertError('STORAGE_FAILED', `Index "${this.name}" is no longer usable: ${this.lost}. Create the search again.`, { reason: this.lost });
  }

  /**
   * Loads what changed since our generation: segments whose rows changed are read again, one at
   * a time (with rows on demand, only the tail segment's; the others keep their metas).
   */
  private async reload(): Promise<void> {
    const tx = this.db.transaction(['manifest', 'segments', 'rows', 'docs'], 'readonly');
    const manifest = (await tx.objectStore('manifest').get(MANIFEST_KEY)) as ManifestRecord | undefined;
    const cleanRecord = (await tx.objectStore('manifest').get(CLEAN_KEY)) as CleanRecord | undefined;
    if (!manifest) throw new ColbertError('INDEX_CORRUPT', `Index "${this.name}" lost its manifest.`);
    const clean = cleanRecord?.generation === manifest.generation;
    if (clean && this.clean && manifest.generation === this.manifest.generation) return;
    const metas = await tx.objectStore('segments').getAll();
    const shards: Shard[] = [];
    metas.sort((a, b) => a.segment - b.segment);
    const tail = metas[metas.length - 1]?.segment;
    for (const meta of metas) {
      const known = this.set.shards.get(meta.segment);
      const same = known !== undefined && known.version === meta.version && known.rows === meta.rows;
      const wanted = !this.onDemand || meta.segment === tail;
      // Same rows (only tombstones may differ): keep the key, and the arrays where they are held.
      const shard = same ? Shard.cold(known.key, meta) : this.set.cold(meta);
      if (!wanted) shards.push(shard);
      else if (same && known.resident) shards.push(shard.withRowsOf(known));
      else shards.push(shard.withRows(await tx.objectStore('rows').getAll(segmentRange(meta.segment)), this.set.shared));
    }
    const docs = await tx.objectStore('docs').getAll();
    await tx.done;
    // A document is live only with its doc record: a delete at a full quota removed just that.
    const live = new Set(docs.map((d) => d.id));
    this.phantoms.clear();
    for (const shard of shards) {
      shard.docIds.forEach((id, slot) => {
        if (id === null || live.has(id)) return;
        shard.tombstone(slot);
        this.phantoms.add(shard.segment);
      });
    }
    this.clean = clean;
    this.set.load(shards);
    this.set.dim = manifest.dim;
    this.set.nextSegment = manifest.nextSegment;
    this.docs = new Map(docs.map((d) => [d.id, d]));
    this.manifest = manifest;
    for (const [key, a] of this.ahead) if (this.set.shards.get(a.segment)?.version !== a.version) this.ahead.delete(key);
  }

  /** With rows on demand: drops from memory the rows of every segment but the tail (appends go there). */
  private settle(): void {
    if (!this.onDemand) return;
    let tail = -1;
    for (const segment of this.set.shards.keys()) tail = Math.max(tail, segment);
    for (const shard of [...this.set.shards.values()]) if (shard.resident && shard.segment !== tail) this.set.replace(shard.withoutRows());
  }

  /**
   * Keeps every segment's rows in memory ('all', the default) or only the tail's ('on-demand',
   * see the module comment). Going back to 'all' reads the rows, one segment at a time.
   */
  async setRowResidency(mode: RowResidency): Promise<void> {
    this.check();
    const onDemand = mode === 'on-demand';
    if (onDemand === this.onDemand) return;
    this.onDemand = onDemand;
    if (onDemand) {
      this.settle();
      return;
    }
    for (const shard of this.set.list()) {
      if (shard.resident) continue;
      const chunks = await this.readChunks(shard.segment);
      // Unless a write replaced the shard meanwhile (it then holds rows or is gone).
      if (!this.onDemand && this.set.shards.get(shard.segment) === shard) this.set.replace(shard.withRows(chunks, this.set.shared));
    }
  }

  /** A segment's stored row chunks, in order (its own transaction, or `tx`'s). */
  private async readChunks(segment: number, tx?: IDBPTransaction<IndexSchema, StoreNames<IndexSchema>[], 'readwrite'>): Promise<RowChunk[]> {
    try {
      return await (tx ? tx.objectStore('rows') : this.db.transaction('rows', 'readonly').store).getAll(segmentRange(segment));
    } catch (err) {
      throw storageError(err, `Reading index "${this.name}"`);
    }
  }

  /**
   * Plans a change inside a write's transaction; the rows a plan needs that are not in memory
   * (the tail it appends to, segments it compacts) are read in that transaction first.
   */
  private async planWith(tx: IDBPTransaction<IndexSchema, StoreNames<IndexSchema>[], 'readwrite'>, adds: readonly PackedDocument[], removes: readonly string[], dim: number | null): Promise<ShardPlan> {
    let plan = this.set.plan(adds, removes, dim);
    while (plan.missing.size) {
      for (const segment of plan.missing) {
        const shard = this.set.shards.get(segment)!;
        // The same rows, now held (the next settle drops them again).
        this.set.replace(shard.withRows(await this.readChunks(segment, tx), this.set.shared));
      }
      plan = this.set.plan(adds, removes, dim);
    }
    return plan;
  }

  /**
   * The rows of `ids` as stored (undefined for unknown ids): views into memory where their
   * segment's rows are held, else into their stored chunks, read with `get` (each chunk once);
   * `lost` when a chunk is gone (another context compacted its segment since our last read).
   */
  private async readDocuments(ids: readonly string[], get: (key: [number, number], shard: Shard) => Promise<RowChunk | undefined>): Promise<{ out: (PackedDocument | undefined)[]; lost: boolean }> {
    const out: (PackedDocument | undefined)[] = new Array(ids.length).fill(undefined);
    const wanted = new Map<string, { key: [number, number]; docs: { i: number; shard: Shard; slot: number }[] }>();
    ids.forEach((id, i) => {
      const loc = this.set.locate(id);
      if (!loc) return;
      if (loc.shard.resident) {
        out[i] = loc.shard.document(loc.slot);
        return;
      }
      const key: [number, number] = [loc.shard.segment, loc.shard.chunkOf(loc.slot)];
      const name = `${key[0]}:${key[1]}`;
      let w = wanted.get(name);
      if (!w) wanted.set(name, (w = { key, docs: [] }));
      w.docs.push({ i, shard: loc.shard, slot: loc.slot });
    });
    let lost = false;
    const groups = [...wanted.values()];
    const chunks = await Promise.all(groups.map((w) => get(w.key, w.docs[0]!.shard)));
    groups.forEach((w, g) => {
      const chunk = chunks[g];
      if (!chunk) {
        lost = true;
        return;
      }
      for (const d of w.docs) out[d.i] = chunkDocument(d.shard, d.slot, chunk);
    });
    return { out, lost };
  }

  /**
   * Starts reading the stored chunks of `ids` not held in memory (rows on demand), in a readonly
   * transaction of its own, and returns at once: the next {@link documents} read takes those
   * chunks instead of reading them again, where their segment still has the version it had here
   * (else it reads them as before). Locations are the ones known now; a read checks them again
   * after catching up with other contexts, so a prefetch never changes what a read returns.
   */
  prefetchRows(ids: readonly string[]): void {
    if (this.closed || this.lost || !this.onDemand) return;
    const wanted: { name: string; key: [number, number]; segment: number; version: number }[] = [];
    const names = new Set<string>();
    for (const id of ids) {
      const loc = this.set.locate(id);
      if (!loc || loc.shard.resident) continue;
      const chunk = loc.shard.chunkOf(loc.slot);
      const name = aheadKey(loc.shard.segment, loc.shard.version, chunk);
      if (this.ahead.has(name) || names.has(name)) continue;
      names.add(name);
      wanted.push({ name, key: [loc.shard.segment, chunk], segment: loc.shard.segment, version: loc.shard.version });
    }
    if (!wanted.length) return;
    let tx: RowsTx;
    try {
      tx = this.db.transaction('rows', 'readonly');
      tx.done.catch(() => undefined);
    } catch {
      // The connection is closing: reads report it; a hint has nobody to tell.
      return;
    }
    for (const w of wanted) {
      // A failed read ahead is a miss: the read that wants the chunk reads it itself.
      const chunk = (tx.store.get(w.key) as Promise<RowChunk | undefined>).catch(() => undefined);
      this.ahead.set(w.name, { segment: w.segment, version: w.version, chunk });
    }
    for (const key of this.ahead.keys()) {
      if (this.ahead.size <= AHEAD_CHUNKS) break;
      this.ahead.delete(key);
    }
  }

  /** Reloads when another context wrote since (one small read when nothing changed). */
  private async fresh(): Promise<void> {
    this.check();
    this.refreshing ??= this.reload().finally(() => (this.refreshing = undefined));
    try {
      await this.refreshing;
    } catch (err) {
      throw storageError(err, `Reading index "${this.name}"`);
    }
  }

  private async onMessage(data: unknown): Promise<void> {
    if (this.closed || this.lost) return;
    const message = data as { type?: string } | null;
    if (message?.type === 'deleted') {
      this.lose('the index was deleted');
      return;
    }
    if (message?.type !== 'changed') return;
    try {
      await this.fresh();
      this.onChange?.({ documents: this.set.documents, tokens: this.set.tokens });
    } catch {
      // The next call reports the problem; a notification has no caller to tell.
    }
  }

  /** Drops staged encodings that are committed already or older than a week. */
  private async dropStaleStaging(): Promise<void> {
    const tx = this.db.transaction('staging', 'readwrite');
    const now = Date.now();
    for (let cursor = await tx.store.openCursor(); cursor; cursor = await cursor.continue()) {
      const rec = cursor.value;
      if (this.docs.get(rec.id)?.hash === rec.hash || now - rec.stagedAt > STAGING_TTL) await cursor.delete();
    }
    await tx.done;
  }

  /**
   * Runs a write: holds the index's lock, catches up with other contexts, then runs `fn`, whose
   * transaction must check the generation it read and commit everything at once.
   */
  private write<T>(what: string, fn: () => Promise<T>): Promise<T> {
    this.check();
    return withLock(this.name, async () => {
      await this.fresh();
      try {
        return await fn();
      } catch (err) {
        throw storageError(err, what);
      }
    });
  }

  /** Opens the one transaction of a write and checks nobody wrote since our generation. */
  private async begin(): Promise<{ tx: IDBPTransaction<IndexSchema, StoreNames<IndexSchema>[], 'readwrite'>; manifest: ManifestRecord }> {
    const tx = this.db.transaction(ALL_STORES, 'readwrite');
    // Observed by finish(); a write that fails before reaching it must not leave it unhandled.
    tx.done.catch(() => undefined);
    const manifest = (await tx.objectStore('manifest').get(MANIFEST_KEY)) as ManifestRecord | undefined;
    if (!manifest || manifest.generation !== this.manifest.generation) {
      tx.abort();
      throw new ColbertError('STORAGE_FAILED', `Index "${this.name}" changed in another context during a write; nothing was written. Try again.`);
    }
    return { tx, manifest };
  }

  /** Waits for every request and the commit; aborts (rolling everything back) on the first failure. */
  private async finish(tx: IDBPTransaction<IndexSchema, StoreNames<IndexSchema>[], 'readwrite'>, pending: Promise<unknown>[]): Promise<void> {
    try {
      await Promise.all([...pending, tx.done]);
    } catch (err) {
      try {
        tx.abort();
      } catch {
        // Already aborted.
      }
      // A request may fail with AbortError while the transaction's own error is the real cause.
      throw tx.error ?? err;
    }
  }

  private nextManifest(manifest: ManifestRecord, set: { documents: number; tokens: number }, nextSegment: number): ManifestRecord {
    return { ...manifest, documents: set.documents, tokens: set.tokens, nextSegment, generation: manifest.generation + 1, updatedAt: Date.now(), lexical: this.lexical };
  }

  /**
   * The records every write with space adds to its transaction: the clean record of its
   * generation, and the metas of segments with phantom documents that `plan` does not write.
   */
  private writeClean(tx: IDBPTransaction<IndexSchema, StoreNames<IndexSchema>[], 'readwrite'>, next: ManifestRecord, plan: ShardPlan | undefined, pending: Promise<unknown>[]): void {
    pending.push(tx.objectStore('manifest').put({ generation: next.generation } satisfies CleanRecord, CLEAN_KEY));
    if (!plan) return;
    for (const segment of this.phantoms) {
      if (plan.removed.has(segment) || plan.rowsChanged.has(segment) || plan.metaChanged.has(segment)) continue;
      const shard = plan.shards.get(segment);
      if (shard) pending.push(tx.objectStore('segments').put(shard.toMeta(), segment));
    }
  }

  /** After a write with space: the index is clean again. */
  private cleaned(): void {
    this.clean = true;
    this.phantoms.clear();
  }

  /** Makes an unclean index clean with a write of its manifest (needs a little space). */
  private async markClean(): Promise<void> {
    await this.write(`Updating index "${this.name}"`, async () => {
      if (this.clean) return;
      const { tx, manifest } = await this.begin();
      const pending: Promise<unknown>[] = [];
      const plan = this.set.plan([], []);
      const next = this.nextManifest(manifest, { documents: this.set.documents, tokens: this.set.tokens }, manifest.nextSegment);
      pending.push(tx.objectStore('manifest').put(next, MANIFEST_KEY));
      this.writeClean(tx, next, plan, pending);
      await this.finish(tx, pending);
      this.cleaned();
      this.committed(next);
    });
  }

  private committed(manifest: ManifestRecord): void {
    this.manifest = manifest;
    this.channel?.postMessage({ type: 'changed', generation: manifest.generation });
  }

  async put(docs: readonly StoredDocument[]): Promise<void> {
    await this.commit(docs.map((d) => (d.metadata === undefined ? { id: d.id, hash: '', matrix: d.matrix } : { id: d.id, hash: '', matrix: d.matrix, metadata: d.metadata })));
  }

  async lookup(ids: readonly string[], hashes: readonly string[]): Promise<DocumentState[]> {
    await this.fresh();
    const out: DocumentState[] = ids.map((id, i) => (hashes[i] !== '' && this.docs.get(id)?.hash === hashes[i] ? 'live' : 'none'));
    const tx = this.db.transaction('staging', 'readonly');
    const staged = await Promise.all(ids.map((id, i) => (out[i] === 'none' ? tx.store.getKey([id, hashes[i]!]) : undefined)));
    await tx.done;
    return out.map((state, i) => (state === 'none' && staged[i] !== undefined ? 'staged' : state));
  }

  async stage(docs: readonly StagedDocument[]): Promise<void> {
    this.check();
    checkBatchDim(docs.map((d) => ({ id: d.id, dim: d.matrix.dim })), this.set.dim);
    const now = Date.now();
    const records = docs.map(({ id, hash, matrix: m }): StagedRecord => {
      const packed = packMatrix(m.data, m.tokens, m.dim, this.precision);
      const rec: StagedRecord = { id, hash, dim: m.dim, tokens: m.tokens, vectors: packed.vectors.buffer as ArrayBuffer, tokenIds: m.ids.slice(0, m.tokens).buffer as ArrayBuffer, stagedAt: now };
      if (packed.scales) rec.scales = packed.scales.buffer as ArrayBuffer;
      return rec;
    });
    // Staging is invisible to search, so it needs no lock: each chunk is its own transaction.
    const tx = this.db.transaction('staging', 'readwrite');
    try {
      await this.finish(tx as never, records.map((r) => tx.store.put(r, [r.id, r.hash])));
    } catch (err) {
      throw storageError(err, `Storing encoded documents of index "${this.name}"`);
    }
  }

  async commit(items: readonly CommitItem[]): Promise<void> {
    if (!items.length) return;
    const dim = checkBatchDim(items.flatMap((i) => (i.matrix ? [{ id: i.id, dim: i.matrix.dim }] : [])), this.set.dim);
    await this.write(`Adding ${items.length} document(s) to index "${this.name}"`, async () => {
      const { tx, manifest } = await this.begin();
      const pending: Promise<unknown>[] = [];
      try {
        const staging = tx.objectStore('staging');
        const need = items.filter((i) => !i.matrix && this.docs.get(i.id)?.hash !== i.hash);
        const records = await Promise.all(need.map((i) => staging.get([i.id, i.hash])));
        const staged = new Map<string, PackedDocument & { hash: string }>();
        records.forEach((rec) => {
          if (rec) staged.set(rec.id, stagedDocument(rec, this.precision));
        });
        const adds = resolveCommit(items, this.precision, (id, hash) => (staged.get(id)?.hash === hash ? staged.get(id) : undefined), (id) => this.docs.get(id)?.hash);
        const plan = await this.planWith(tx, adds, [], dim ?? this.set.dim);
        writePlan(tx, plan, pending);
        const written = new Set(adds.map((a) => a.id));
        // The lexical postings of this batch: one block, named by the generation this write commits.
        const lex = writePostings(tx.objectStore('postings'), items, manifest.generation + 1, this.lexical, pending);
        const docRecords = new Map<string, DocRecord>();
        const docsStore = tx.objectStore('docs');
        const texts = tx.objectStore('texts');
        for (const item of items) {
          const loc = plan.moves.get(item.id);
          const tokens = loc ? plan.shards.get(loc.segment)!.document(loc.slot).tokens : this.docs.get(item.id)!.tokens;
          const rec: DocRecord = { id: item.id, hash: item.hash, tokens, textLength: item.text?.length ?? 0 };
          if (item.metadata !== undefined) rec.metadata = item.metadata;
          if (lex.has(item.id)) rec.lex = lex.get(item.id)!;
          const stamp = written.has(item.id) ? manifest.generation + 1 : this.docs.get(item.id)?.stamp;
          if (stamp !== undefined) rec.stamp = stamp;
          docRecords.set(item.id, rec);
          pending.push(docsStore.put(rec, item.id));
          pending.push(item.text !== undefined ? texts.put(item.text, item.id) : texts.delete(item.id));
          pending.push(staging.delete([item.id, item.hash]));
        }
        this.encodeWritten(tx, manifest, adds, plan.dim, docRecords, pending);
        const documents = new Set([...this.docs.keys(), ...docRecords.keys()]).size;
        let tokens = 0;
        for (const s of plan.shards.values()) tokens += s.liveRows;
        const next = this.nextManifest(manifest, { documents, tokens }, plan.nextSegment);
        pending.push(tx.objectStore('manifest').put(next, MANIFEST_KEY));
        this.writeClean(tx, next, plan, pending);
        await this.finish(tx, pending);
        this.set.apply(plan);
        this.settle();
        for (const [id, rec] of docRecords) this.docs.set(id, rec);
        this.cleaned();
        this.committed(next);
      } catch (err) {
        pending.forEach((p) => p.catch(() => undefined));
        try {
          tx.abort();
        } catch {
          // Already finished or aborted.
        }
        throw tx.error ?? err;
      }
    });
  }

  /**
   * Removes documents. At a full quota, where even the small records of a normal delete do not
   * fit, it falls back to a write that stores nothing (see {@link deleteInPlace}).
   */
  async delete(ids: readonly string[]): Promise<string[]> {
    return this.write(`Deleting from index "${this.name}"`, async () => {
      const removed = ids.filter((id) => this.docs.has(id));
      if (!removed.length) return [];
      try {
        await this.deleteWithSpace(removed);
      } catch (err) {
        if (!isQuotaError(err)) throw err;
        await this.deleteInPlace(removed);
      }
      return removed;
    });
  }

  private async deleteWithSpace(removed: readonly string[]): Promise<void> {
    const { tx, manifest } = await this.begin();
    const pending: Promise<unknown>[] = [];
    let next: ManifestRecord;
    let plan: ShardPlan;
    try {
      plan = await this.planWith(tx, [], removed, this.set.dim);
      writePlan(tx, plan, pending);
      for (const id of removed) pending.push(tx.objectStore('docs').delete(id), tx.objectStore('texts').delete(id));
      if (manifest.codec !== undefined) for (const id of removed) pending.push(tx.objectStore('codes').delete([manifest.codec, id]));
      let tokens = 0;
      for (const s of plan.shards.values()) tokens += s.liveRows;
      next = this.nextManifest(manifest, { documents: this.docs.size - removed.length, tokens }, plan.nextSegment);
      pending.push(tx.objectStore('manifest').put(next, MANIFEST_KEY));
      this.writeClean(tx, next, plan, pending);
      await this.finish(tx, pending);
    } catch (err) {
      throw abortWith(tx, pending, err);
    }
    this.set.apply(plan);
    this.settle();
    for (const id of removed) this.docs.delete(id);
    this.cleaned();
    this.committed(next);
  }

  /**
   * A delete that stores nothing, for a full quota: it removes the documents' records (their doc
   * records, texts, and every segment left without a live document, vectors and all) and the
   * clean record. The rows of deleted documents in segments shared with live ones stay until the
   * next write with space rewrites those segments; loading treats them as deleted already.
   */
  private async deleteInPlace(removed: readonly string[]): Promise<void> {
    const { tx } = await this.begin();
    const pending: Promise<unknown>[] = [];
    try {
      const gone = new Set(removed);
      for (const id of removed) pending.push(tx.objectStore('docs').delete(id), tx.objectStore('texts').delete(id));
      // Deleting code records frees space too.
      const codec = this.manifest.codec;
      if (codec !== undefined) for (const id of removed) pending.push(tx.objectStore('codes').delete([codec, id]));
      for (const shard of this.set.shards.values()) {
        if (shard.docIds.every((id) => id === null || gone.has(id))) pending.push(tx.objectStore('segments').delete(shard.segment), tx.objectStore('rows').delete(segmentRange(shard.segment)));
      }
      pending.push(tx.objectStore('manifest').delete(CLEAN_KEY));
      await this.finish(tx, pending);
    } catch (err) {
      throw abortWith(tx, pending, err);
    }
    // Other contexts see the missing clean record and reload; so does this one.
    this.clean = false;
    await this.reload();
    this.channel?.postMessage({ type: 'changed', generation: this.manifest.generation });
  }

  /** Removes every document. At a full quota it falls back to clearing the stores without storing anything. */
  async clear(): Promise<void> {
    await this.write(`Clearing index "${this.name}"`, async () => {
      try {
        await this.clearWith(true);
      } catch (err) {
        if (!isQuotaError(err)) throw err;
        await this.clearWith(false);
      }
    });
  }

  /** Clears every store; with `space`, bumps the generation, else (full quota) deletes the clean record instead. */
  private async clearWith(space: boolean): Promise<void> {
    const { tx, manifest } = await this.begin();
    const pending: Promise<unknown>[] = [];
    let next = manifest;
    try {
      for (const s of ALL_STORES) if (s !== 'manifest') pending.push(tx.objectStore(s).clear());
      if (space) {
        next = this.nextManifest(manifest, { documents: 0, tokens: 0 }, manifest.nextSegment);
        delete next.codec;
        pending.push(tx.objectStore('manifest').put(next, MANIFEST_KEY));
        this.writeClean(tx, next, undefined, pending);
      } else {
        pending.push(tx.objectStore('manifest').delete(CLEAN_KEY));
      }
      await this.finish(tx, pending);
    } catch (err) {
      throw abortWith(tx, pending, err);
    }
    this.set.clear();
    this.set.nextSegment = next.nextSegment;
    this.docs.clear();
    this.phantoms.clear();
    this.codeShape = undefined;
    if (space) {
      this.cleaned();
      this.committed(next);
    } else {
      this.clean = false;
      this.channel?.postMessage({ type: 'changed', generation: next.generation });
    }
  }

  async has(ids: readonly string[]): Promise<boolean[]> {
    await this.fresh();
    return ids.map((id) => this.docs.has(id));
  }

  async metadata(ids: readonly string[]): Promise<(Metadata | undefined)[]> {
    await this.fresh();
    return ids.map((id) => this.docs.get(id)?.metadata);
  }

  async postings(terms: readonly string[]): Promise<LexicalPostings> {
    await this.fresh();
    const unique = [...new Set(terms)];
    let records: { key: [string, number]; value: PostingRecord }[][];
    try {
      const tx = this.db.transaction('postings', 'readonly');
      records = await Promise.all(
        unique.map(async (term) => {
          const range = IDBKeyRange.bound([term, -Infinity], [term, Infinity]);
          const [keys, values] = await Promise.all([tx.store.getAllKeys(range), tx.store.getAll(range)]);
          return values.map((value, i) => ({ key: keys[i]!, value }));
        }),
      );
      await tx.done;
    } catch (err) {
      throw storageError(err, `Reading the lexical index of "${this.name}"`);
    }
    const lists = new Map<string, Posting[]>();
    unique.forEach((term, t) => {
      const list: Posting[] = [];
      for (const { key, value } of records[t]!) {
        const block = key[1];
        value.ids.forEach((id, i) => {
          const lex = this.docs.get(id)?.lex;
          if (lex && lex.block === block) list.push({ id, tf: value.tfs[i]!, length: lex.length });
        });
      }
      lists.set(term, list);
    });
    let documents = 0;
    let totalLength = 0;
    for (const d of this.docs.values()) {
      if (!d.lex) continue;
      documents++;
      totalLength += d.lex.length;
    }
    return { documents, totalLength, lists };
  }

  async lexicalStats(): Promise<{ documents: number; terms?: number }> {
    await this.fresh();
    let documents = 0;
    for (const d of this.docs.values()) if (d.lex) documents++;
    return { documents };
  }

  async allMetadata(): Promise<Iterable<readonly [string, Metadata | undefined]>> {
    await this.fresh();
    return Array.from(this.docs.values(), (d) => [d.id, d.metadata] as const);
  }

  async matrix(id: string): Promise<TokenMatrix | undefined> {
    return (await this.matrices([id]))[0];
  }

  /** Matrices from memory where held, else from their stored chunks, in one readonly transaction. */
  async matrices(ids: readonly string[]): Promise<(TokenMatrix | undefined)[]> {
    const dim = this.set.dim ?? 0;
    return (await this.documents(ids)).map((d) => d && documentMatrix(d, dim));
  }

  /** The rows of `ids` as one shard at the stored precision (never decoded), read like {@link matrices}. */
  async rowsShard(ids: readonly string[], key: string): Promise<ShardView> {
    const docs = await this.documents(ids);
    return documentsShard(key, this.set.dim ?? 0, this.precision, docs.filter((d) => d !== undefined));
  }

  /** The stored rows of `ids` (views), from memory or in one readonly transaction. */
  private async documents(ids: readonly string[]): Promise<(PackedDocument | undefined)[]> {
    this.check();
    // The rows where they are known to be now, read while catching up with other contexts (one
    // round trip less): kept only when catching up changed nothing (the same generation, clean),
    // so they are what the read after it would have read; else read again below.
    const generation = this.manifest.generation;
    const early = generation >= 0 && this.clean ? this.readRows(ids).catch(() => undefined) : undefined;
    await this.fresh();
    if (early) {
      const read = await early;
      if (read && !read.lost && this.clean && this.manifest.generation === generation) return read.out;
    }
    for (let attempt = 0; ; attempt++) {
      let read: Awaited<ReturnType<IdbStore['readDocuments']>>;
      try {
        read = await this.readRows(ids);
      } catch (err) {
        throw storageError(err, `Reading index "${this.name}"`);
      }
      if (!read.lost) return read.out;
      // A chunk is gone: another context compacted its segment since our last read. Catch up once.
      if (attempt > 0) throw new ColbertError('INDEX_CORRUPT', `Index "${this.name}" lost the stored rows of a document.`);
      this.manifest = { ...this.manifest, generation: -1 };
      await this.fresh();
    }
  }

  /** {@link readDocuments} of `ids` where they are located now: chunks read ahead where they fit, the rest in one readonly transaction. */
  private async readRows(ids: readonly string[]): Promise<Awaited<ReturnType<IdbStore['readDocuments']>>> {
    // One transaction for the chunks not read ahead (opened only when some are not).
    let tx: RowsTx | undefined;
    const direct = (key: [number, number]) => (tx ??= this.db.transaction('rows', 'readonly')).store.get(key) as Promise<RowChunk | undefined>;
    let chunks = 0;
    let prefetched = 0;
    const read = await this.readDocuments(ids, (key, shard) => {
      chunks++;
      const name = aheadKey(key[0], shard.version, key[1]);
      const a = this.ahead.get(name);
      if (!a) return direct(key);
      this.ahead.delete(name);
      prefetched++;
      // Gone or failed when read ahead: read now, in a transaction of its own (the shared one may have committed by then).
      return a.chunk.then((chunk) => chunk ?? (this.db.transaction('rows', 'readonly').store.get(key) as Promise<RowChunk | undefined>));
    });
    if (tx) await (tx as RowsTx).done;
    this.lastRead = { chunks, prefetched };
    return read;
  }

  /** The shards for scoring; with rows on demand, those not held are read one segment at a time (and not kept). */
  async *shards(): AsyncIterable<ShardView> {
    await this.fresh();
    for (const shard of this.set.list()) {
      if (shard.resident) {
        yield shard.view();
        continue;
      }
      const chunks = await this.readChunks(shard.segment);
      // Gone: a write compacted it since (its documents moved to a segment this scan does not see).
      if (!chunks.length && shard.rows > 0) continue;
      yield { ...shard.withRows(chunks, this.set.shared).view(), transient: true };
    }
  }

  async stats(): Promise<StoreStats> {
    await this.fresh();
    let bytes = 0;
    for (const s of this.set.shards.values()) bytes += s.rowBytes + s.rows * 4 + (s.docIds.length + 1) * 4;
    for (const d of this.docs.values()) bytes += 2 * (d.id.length * 2 + d.textLength) + 32 + (d.metadata ? (metadataJson(d.metadata)?.length ?? 0) * 2 : 0);
    // The compressed index's stored codes: one code and its residual bytes per live token, and the codec.
    const shape = this.codeShape;
    if (shape && shape.generation === this.manifest.codec) bytes += this.set.tokens * shape.perToken + shape.fixed;
    return { documents: this.set.documents, tokens: this.set.tokens, vectorBytes: this.set.vectorBytes, bytesOnDisk: bytes };
  }

  async snapshot(options: { codes?: boolean } = {}): Promise<IndexSnapshot> {
    await this.fresh();
    const list: Shard[] = [];
    for (const shard of this.set.list()) list.push(shard.resident ? shard : shard.withRows(await this.readChunks(shard.segment), false));
    const { ids, shards } = snapshotShards(list);
    const tags = ids.map((id) => codeTag(this.docs.get(id)!));
    const generation = options.codes ? this.manifest.codec : undefined;
    const tx = this.db.transaction(['texts', 'codecs', 'codes'], 'readonly');
    const textStore = tx.objectStore('texts');
    const texts = await Promise.all(ids.map((id) => (this.docs.get(id)!.textLength ? textStore.get(id) : undefined)));
    let compression: IndexSnapshot['compression'];
    if (generation !== undefined) {
      const rec = await tx.objectStore('codecs').get(generation);
      if (validCodec(rec)) {
        const codec = fromCodecRecord(rec);
        const codeStore = tx.objectStore('codes');
        const records = await Promise.all(ids.map((id) => codeStore.get([generation, id])));
        compression = this.snapshotCodes(codec, shards, records, tags);
      }
    }
    await tx.done;
    const { name: _name, generation: _generation, nextSegment: _next, codec: _codec, nextCodec: _nextCodec, ...manifest } = this.manifest;
    const out: IndexSnapshot = {
      manifest: { ...manifest, documents: ids.length, tokens: this.set.tokens },
      documents: ids.map((id, i) => {
        const d = this.docs.get(id)!;
        const out: IndexSnapshot['documents'][number] = { id, hash: d.hash };
        if (d.metadata !== undefined) out.metadata = d.metadata;
        if (texts[i] !== undefined) out.text = texts[i];
        return out;
      }),
      shards,
    };
    if (compression) out.compression = compression;
    return out;
  }

  /** The snapshot's codes per shard, when every document has codes of its own rows (else undefined: the file carries none). */
  private snapshotCodes(codec: PersistedCodec, shards: IndexSnapshot['shards'], records: (CodeRecord | undefined)[], tags: string[]): IndexSnapshot['compression'] {
    const bytes = residualBytes(codec.codec.dim, codec.codec.nbits);
    const count = centroidCount(codec.codec);
    const codes = shardCodes(shards, bytes, (doc) => {
      const c = fromCodeRecord(records[doc], bytes, count);
      return c && c.tag === tags[doc] ? c : undefined;
    });
    return codes && { codec, codes };
  }


  /**
   * Inside a write's transaction: the codes of the rows it stores, encoded with this context's
   * encoder when that is the manifest's generation; else the documents' old codes are deleted
   * (a context without that codec wrote them; whoever has it encodes them on its next sync or open).
   */
  private encodeWritten(
    tx: IDBPTransaction<IndexSchema, StoreNames<IndexSchema>[], 'readwrite'>,
    manifest: ManifestRecord,
    adds: readonly PackedDocument[],
    dim: number | null,
    records: ReadonlyMap<string, DocRecord>,
    pending: Promise<unknown>[],
  ): void {
    const generation = manifest.codec;
    if (generation === undefined || !adds.length || dim === null) return;
    const codes = tx.objectStore('codes');
    const encoder = this.encoder?.generation === generation ? this.encoder : null;
    for (const doc of adds) {
      if (!encoder) {
        pending.push(codes.delete([generation, doc.id]));
        continue;
      }
      const tag = codeTag(records.get(doc.id)!);
      const m: TokenMatrix = { data: decodeRows(doc.packed, doc.row ?? 0, doc.tokens, dim), tokens: doc.tokens, dim, ids: doc.tokenIds };
      pending.push(codes.put(toCodeRecord({ tag, ...encoder.encode(doc.id, tag, m) }), [generation, doc.id]));
    }
  }

  /** This store keeps the compressed index's codes (see the module comment). */
  get codes(): CodeStore {
    return this;
  }

  setCodeEncoder(encoder: CodeEncoder | null): void {
    this.encoder = encoder;
  }

  async readCodec(): Promise<(PersistedCodec & { generation: number }) | undefined> {
    await this.fresh();
    const generation = this.manifest.codec;
    if (generation === undefined) return undefined;
    let rec: CodecRecord | undefined;
    try {
      rec = await this.db.get('codecs', generation);
    } catch (err) {
      throw storageError(err, `Reading the compressed index of "${this.name}"`);
    }
    if (!validCodec(rec)) return undefined;
    const codec = fromCodecRecord(rec);
    this.codeShape = codeShapeOf(generation, codec);
    return codec;
  }

  async codeTags(): Promise<Map<string, string>> {
    await this.fresh();
    return new Map(Array.from(this.docs.values(), (d) => [d.id, codeTag(d)] as const));
  }

  async readCodes(generation: number, ids?: readonly string[]): Promise<Map<string, TaggedCodes>> {
    this.check();
    const out = new Map<string, TaggedCodes>();
    try {
      const tx = this.db.transaction(['codecs', 'codes'], 'readonly');
      const rec = await tx.objectStore('codecs').get(generation);
      if (!validCodec(rec)) {
        await tx.done;
        return out;
      }
      const bytes = residualBytes(rec.dim, rec.nbits);
      const count = rec.centroids.byteLength / (rec.centroidBits === 16 ? 2 : 4) / rec.dim;
      const store = tx.objectStore('codes');
      if (ids) {
        const records = await Promise.all(ids.map((id) => store.get([generation, id])));
        ids.forEach((id, i) => {
          const c = fromCodeRecord(records[i], bytes, count);
          if (c) out.set(id, c);
        });
      } else {
        const range = generationRange(generation);
        const [keys, values] = await Promise.all([store.getAllKeys(range), store.getAll(range)]);
        keys.forEach((key, i) => {
          const c = fromCodeRecord(values[i], bytes, count);
          if (c) out.set(key[1], c);
        });
      }
      await tx.done;
    } catch (err) {
      throw storageError(err, `Reading the compressed index of "${this.name}"`);
    }
    return out;
  }

  async writeCodes(generation: number, entries: ReadonlyMap<string, TaggedCodes>): Promise<void> {
    if (!entries.size) return;
    await this.write(`Storing the compressed index of "${this.name}"`, async () => {
      if (this.manifest.codec !== generation) return;
      const tx = this.db.transaction('codes', 'readwrite');
      tx.done.catch(() => undefined);
      const pending: Promise<unknown>[] = [];
      try {
        for (const [id, c] of entries) {
          const doc = this.docs.get(id);
          if (doc && codeTag(doc) === c.tag) pending.push(tx.store.put(toCodeRecord(c), [generation, id]));
        }
        await this.finish(tx as never, pending);
      } catch (err) {
        throw abortWith(tx as never, pending, err);
      }
    });
  }

  async exclusiveTraining<T>(fn: () => Promise<T>): Promise<T | undefined> {
    this.check();
    const name = `${DB_PREFIX}${this.name}:training`;
    const locks = (globalThis.navigator as Navigator | undefined)?.locks;
    if (locks?.request) return locks.request(name, { ifAvailable: true }, async (lock) => (lock ? fn() : undefined)) as Promise<T | undefined>;
    if (localTrainings.has(name)) return undefined;
    localTrainings.add(name);
    try {
      return await fn();
    } finally {
      localTrainings.delete(name);
    }
  }

  async dropLeftovers(): Promise<number> {
    return this.write(`Cleaning the compressed index of "${this.name}"`, async () => {
      const keep = this.manifest.codec;
      const tx = this.db.transaction(['codecs', 'codes'], 'readwrite');
      tx.done.catch(() => undefined);
      const pending: Promise<unknown>[] = [];
      let dropped = 0;
      try {
        const codecs = tx.objectStore('codecs');
        const codes = tx.objectStore('codes');
        for (const generation of await codecs.getAllKeys()) {
          if (generation === keep) continue;
          dropped++;
          pending.push(codecs.delete(generation));
        }
        if (keep === undefined) pending.push(codes.clear());
        else pending.push(codes.delete(IDBKeyRange.upperBound([keep], true)), codes.delete(IDBKeyRange.lowerBound([keep + 1])));
        await this.finish(tx as never, pending);
      } catch (err) {
        throw abortWith(tx as never, pending, err);
      }
      return dropped;
    });
  }

  async beginGeneration(codec: PersistedCodec): Promise<number> {
    return this.write(`Storing the compressed index of "${this.name}"`, async () => {
      const tx = this.db.transaction(['manifest', 'codecs'], 'readwrite');
      tx.done.catch(() => undefined);
      const pending: Promise<unknown>[] = [];
      try {
        const manifest = (await tx.objectStore('manifest').get(MANIFEST_KEY)) as ManifestRecord | undefined;
        if (!manifest) throw new ColbertError('INDEX_CORRUPT', `Index "${this.name}" lost its manifest.`);
        const generation = manifest.nextCodec ?? (manifest.codec ?? 0) + 1;
        // Not a change anyone must reload for: the generation number stays, only the counter moves.
        pending.push(tx.objectStore('manifest').put({ ...manifest, nextCodec: generation + 1 }, MANIFEST_KEY));
        pending.push(tx.objectStore('codecs').put(toCodecRecord(generation, codec), generation));
        await this.finish(tx as never, pending);
        this.manifest = { ...this.manifest, nextCodec: generation + 1 };
        this.pendingShape = codeShapeOf(generation, codec);
        return generation;
      } catch (err) {
        throw abortWith(tx as never, pending, err);
      }
    });
  }

  async writeGenerationCodes(generation: number, entries: ReadonlyMap<string, TaggedCodes>): Promise<void> {
    this.check();
    if (!entries.size) return;
    const tx = this.db.transaction('codes', 'readwrite');
    tx.done.catch(() => undefined);
    const pending: Promise<unknown>[] = [];
    try {
      for (const [id, c] of entries) pending.push(tx.store.put(toCodeRecord(c), [generation, id]));
      await this.finish(tx as never, pending);
    } catch (err) {
      throw storageError(abortWith(tx as never, pending, err), `Storing the compressed index of "${this.name}"`);
    }
  }

  async switchGeneration(generation: number, have: ReadonlyMap<string, string>, encoder: CodeEncoder, done: (added: Map<string, TaggedCodes>, removed: string[]) => void): Promise<boolean> {
    const switched = await this.write(`Switching the compressed index of "${this.name}"`, async () => {
      const { tx, manifest } = await this.begin();
      const pending: Promise<unknown>[] = [];
      const added = new Map<string, TaggedCodes>();
      const removed: string[] = [];
      let next: ManifestRecord;
      try {
        if (!validCodec(await tx.objectStore('codecs').get(generation))) {
          tx.abort();
          return false;
        }
        const codes = tx.objectStore('codes');
        // What changed since the training read the rows (in any context) is encoded here.
        const changed = [...this.docs.values()].filter((doc) => have.get(doc.id) !== codeTag(doc));
        const rows = tx.objectStore('rows');
        const { out: found, lost } = await this.readDocuments(
          changed.map((d) => d.id),
          (key) => rows.get(key),
        );
        const matrices = found.map((d) => d && documentMatrix(d, this.set.dim ?? 0));
        if (lost) throw new ColbertError('INDEX_CORRUPT', `Index "${this.name}" lost the stored rows of a document.`);
        changed.forEach((doc, i) => {
          const m = matrices[i];
          if (!m) return;
          const tag = codeTag(doc);
          const c = { tag, ...encoder.encode(doc.id, tag, m) };
          added.set(doc.id, c);
          pending.push(codes.put(toCodeRecord(c), [generation, doc.id]));
        });
        for (const id of have.keys()) {
          if (this.docs.has(id)) continue;
          removed.push(id);
          pending.push(codes.delete([generation, id]));
        }
        next = { ...this.nextManifest(manifest, { documents: this.set.documents, tokens: this.set.tokens }, manifest.nextSegment), codec: generation };
        pending.push(tx.objectStore('manifest').put(next, MANIFEST_KEY));
        this.writeClean(tx, next, this.set.plan([], []), pending);
        await this.finish(tx, pending);
      } catch (err) {
        throw abortWith(tx, pending, err);
      }
      this.cleaned();
      this.committed(next);
      if (this.pendingShape?.generation === generation) this.codeShape = this.pendingShape;
      this.encoder = encoder;
      done(added, removed);
      return true;
    });
    // The old generations go after the flip (a kill before leaves them to the next open's cleanup).
    if (switched) await this.dropOlderThan(generation).catch(() => undefined);
    return switched;
  }

  /** Deletes codecs and codes of generations before `generation`. */
  private async dropOlderThan(generation: number): Promise<void> {
    const tx = this.db.transaction(['codecs', 'codes'], 'readwrite');
    tx.done.catch(() => undefined);
    const pending: Promise<unknown>[] = [tx.objectStore('codecs').delete(IDBKeyRange.upperBound(generation, true)), tx.objectStore('codes').delete(IDBKeyRange.upperBound([generation], true))];
    await this.finish(tx as never, pending);
  }

  async restore(snapshot: IndexSnapshot): Promise<void> {
    await this.write(`Importing into index "${this.name}"`, async () => {
      const { tx, manifest } = await this.begin();
      const shards = this.set.fromSnapshot(snapshot, manifest.nextSegment);
      const pending: Promise<unknown>[] = [];
      const docs = new Map<string, DocRecord>();
      let next: ManifestRecord;
      try {
        for (const s of ALL_STORES) if (s !== 'manifest') pending.push(tx.objectStore(s).clear());
        for (const shard of shards) writeShard(tx, shard, pending);
        // Postings are rebuilt from the file's texts inside this transaction (the file carries no postings).
        const lex = writePostings(tx.objectStore('postings'), snapshot.documents, manifest.generation + 1, this.lexical, pending);
        const byId = new Map<string, number>();
        for (const shard of shards) shard.docIds.forEach((id, slot) => byId.set(id!, shard.offsets[slot + 1]! - shard.offsets[slot]!));
        for (const d of snapshot.documents) {
          const rec: DocRecord = { id: d.id, hash: d.hash, tokens: byId.get(d.id) ?? 0, textLength: d.text?.length ?? 0, stamp: manifest.generation + 1 };
          if (d.metadata !== undefined) rec.metadata = d.metadata;
          if (lex.has(d.id)) rec.lex = lex.get(d.id)!;
          docs.set(d.id, rec);
          pending.push(tx.objectStore('docs').put(rec, d.id));
          if (d.text !== undefined) pending.push(tx.objectStore('texts').put(d.text, d.id));
        }
        let tokens = 0;
        for (const s of shards) tokens += s.liveRows;
        next = this.nextManifest(manifest, { documents: docs.size, tokens }, manifest.nextSegment + shards.length);
        delete next.codec;
        const codes = snapshot.compression;
        if (codes) {
          // The file's codes, as the next generation: tagged with the records written above.
          const generation = manifest.nextCodec ?? (manifest.codec ?? 0) + 1;
          next.codec = generation;
          next.nextCodec = generation + 1;
          pending.push(tx.objectStore('codecs').put(toCodecRecord(generation, codes.codec), generation));
          const bytes = residualBytes(codes.codec.codec.dim, codes.codec.codec.nbits);
          snapshot.shards.forEach((shard, i) => {
            const part = codes.codes[i]!;
            shard.docIds.forEach((id, slot) => {
              const from = shard.offsets[slot]!;
              const to = shard.offsets[slot + 1]!;
              const c = { tag: codeTag(docs.get(id)!), codes: part.codes.subarray(from, to), residuals: part.residuals.subarray(from * bytes, to * bytes) };
              pending.push(tx.objectStore('codes').put(toCodeRecord(c), [generation, id]));
            });
          });
        }
        pending.push(tx.objectStore('manifest').put(next, MANIFEST_KEY));
        this.writeClean(tx, next, undefined, pending);
        await this.finish(tx, pending);
      } catch (err) {
        // A request that throws at once (a full disk) must not let the clears above commit.
        throw abortWith(tx, pending, err);
      }
      this.cleaned();
      this.set.clear();
      this.set.load(shards);
      this.set.dim = next.dim;
      this.set.nextSegment = next.nextSegment;
      this.settle();
      this.docs = docs;
      this.codeShape = snapshot.compression && next.codec !== undefined ? codeShapeOf(next.codec, snapshot.compression.codec) : undefined;
      this.committed(next);
    });
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    this.ahead.clear();
    this.channel?.close();
    this.db.close();
    this.set.clear();
    this.docs.clear();
  }
}

/**
 * Schema 1 -> 2: builds the postings of every stored document from its text, in the upgrade
 * transaction (so an index opens either migrated whole or not at all), as one block named by the
 * manifest's generation, records the lexical settings in the manifest, and drops staged
 * encodings keyed the schema-1 way.
 */
async function migrateToPostings(tx: IDBPTransaction<IndexSchema, StoreNames<IndexSchema>[], 'versionchange'>, config: LexicalConfig): Promise<void> {
  const manifestStore = tx.objectStore('manifest');
  const manifest = (await manifestStore.get(MANIFEST_KEY)) as ManifestRecord | undefined;
  if (!manifest) return;
  const block = manifest.generation;
  const docsStore = tx.objectStore('docs');
  const docs = await docsStore.getAll();
  const texts = tx.objectStore('texts');
  const withText: { id: string; text?: string }[] = [];
  for (const d of docs) {
    const text = d.textLength ? await texts.get(d.id) : undefined;
    if (text !== undefined) withText.push({ id: d.id, text });
  }
  const pending: Promise<unknown>[] = [];
  const lex = writePostings(tx.objectStore('postings'), withText, block, config, pending);
  for (const d of docs) {
    const l = lex.get(d.id);
    if (l) pending.push(docsStore.put({ ...d, lex: l }, d.id));
  }
  pending.push(manifestStore.put({ ...manifest, lexical: config }, MANIFEST_KEY));
  // Schema 1 keyed staged encodings by id alone; today's are keyed [id, hash], so old ones could
  // never be found again. They are only a cache of an interrupted add: dropping them is safe.
  pending.push(tx.objectStore('staging').clear());
  await Promise.all(pending);
}

/**
 * Schema 2 -> 3: adds the (empty) code stores and moves the manifest to format 2. Documents keep
 * their records (without a stamp, which reads as 0); a compressed search trains its codes on
 * the first open and stores them, a search without compression never needs them.
 */
async function migrateToCodes(tx: IDBPTransaction<IndexSchema, StoreNames<IndexSchema>[], 'versionchange'>): Promise<void> {
  const manifestStore = tx.objectStore('manifest');
  const manifest = (await manifestStore.get(MANIFEST_KEY)) as ManifestRecord | undefined;
  if (!manifest) return;
  await manifestStore.put({ ...manifest, format: FORMAT_VERSION }, MANIFEST_KEY);
}

/**
 * Schema 3 -> 4: rewrites each segment's rows (one `vectors` record) as chunks of whole documents
 * in `rows`, one segment at a time, names them in its meta, and empties `vectors`, in the
 * upgrade transaction (an index opens migrated whole or not at all).
 */
async function migrateToChunks(tx: IDBPTransaction<IndexSchema, StoreNames<IndexSchema>[], 'versionchange'>): Promise<void> {
  const segments = tx.objectStore('segments');
  const vectors = tx.objectStore('vectors');
  for (const segment of await segments.getAllKeys()) {
    const meta = await segments.get(segment);
    const data = await vectors.get(segment);
    // A segment without rows stays so: opening reports it as corrupt, as before.
    if (!meta || !data) continue;
    const pending: Promise<unknown>[] = [];
    writeShard(tx, Shard.fromRecord('migration', meta, data), pending);
    await Promise.all(pending);
  }
  await vectors.clear();
}

/** Bytes per token and fixed bytes a generation's stored codes take. */
function codeShapeOf(generation: number, c: PersistedCodec): { generation: number; perToken: number; fixed: number } {
  const { codec, tree } = c;
  return { generation, perToken: 2 + residualBytes(codec.dim, codec.nbits), fixed: (codec.centroids.length + codec.cutoffs.length + codec.weights.length + tree.coarse.length + tree.starts.length) * 4 };
}

/** A stored codec as plain data. */
function fromCodecRecord(rec: CodecRecord): PersistedCodec & { generation: number } {
  return {
    generation: rec.generation,
    codec: { dim: rec.dim, nbits: rec.nbits, centroids: rec.centroidBits === 16 ? new Uint16Array(rec.centroids) : halfCentroids(new Float32Array(rec.centroids)), cutoffs: new Float32Array(rec.cutoffs), weights: new Float32Array(rec.weights) },
    tree: { coarse: new Float32Array(rec.coarse), starts: new Uint32Array(rec.starts) },
    trainedTokens: rec.trainedTokens,
    poolFactor: rec.poolFactor,
  };
}

/** An exact-size copy of a typed array's bytes. */
function bufferOf(view: ArrayBufferView): ArrayBuffer {
  return new Uint8Array(view.buffer, view.byteOffset, view.byteLength).slice().buffer;
}

function toCodecRecord(generation: number, c: PersistedCodec): CodecRecord {
  return {
    generation,
    nbits: c.codec.nbits,
    poolFactor: c.poolFactor,
    dim: c.codec.dim,
    trainedTokens: c.trainedTokens,
    centroids: bufferOf(c.codec.centroids),
    centroidBits: 16,
    cutoffs: bufferOf(c.codec.cutoffs),
    weights: bufferOf(c.codec.weights),
    coarse: bufferOf(c.tree.coarse),
    starts: bufferOf(c.tree.starts),
  };
}

function toCodeRecord(c: TaggedCodes): CodeRecord {
  return { tag: c.tag, codes: bufferOf(c.codes), residuals: bufferOf(c.residuals) };
}

/** Stored codes, checked against their codec: undefined when they do not fit it (then they are encoded again). */
function fromCodeRecord(rec: CodeRecord | undefined, bytesPerToken: number, centroids: number): TaggedCodes | undefined {
  if (!rec || !(rec.codes instanceof ArrayBuffer) || !(rec.residuals instanceof ArrayBuffer) || rec.codes.byteLength % 2) return undefined;
  const codes = new Uint16Array(rec.codes);
  if (rec.residuals.byteLength !== codes.length * bytesPerToken || codes.some((c) => c >= centroids)) return undefined;
  return { tag: rec.tag, codes, residuals: new Uint8Array(rec.residuals) };
}

/** Whether a stored codec record is whole (a damaged one is ignored: the index trains again). */
function validCodec(rec: CodecRecord | undefined): rec is CodecRecord {
  if (!rec || !RESIDUAL_BITS.includes(rec.nbits) || !Number.isInteger(rec.dim) || rec.dim <= 0 || (rec.centroidBits !== undefined && rec.centroidBits !== 16)) return false;
  if (!(rec.centroids instanceof ArrayBuffer) || rec.centroids.byteLength % (rec.centroidBits === 16 ? 2 : 4) !== 0) return false;
  const c = fromCodecRecord(rec);
  const count = c.codec.centroids.length / rec.dim;
  return Number.isInteger(count) && count > 0 && c.codec.cutoffs.length === (1 << rec.nbits) - 1 && c.codec.weights.length === 1 << rec.nbits && c.tree.starts.length >= 2 && c.tree.starts[c.tree.starts.length - 1] === count;
}

/** Key range of one generation's code records. */
function generationRange(generation: number): IDBKeyRange {
  return IDBKeyRange.bound([generation], [generation + 1], false, true);
}

/** Where Web Locks are missing (Node), trainings are exclusive per index name in this context only. */
const localTrainings = new Set<string>();

/**
 * One stored index, as {@link listIndexes} reports it: its name, the model that built it (repo id,
 * URL or path), and its manifest's precision, dim, counts and dates (milliseconds since the epoch).
 */
export type IndexSummary = { name: string; model: string } & Pick<IndexManifest, 'precision' | 'dim' | 'documents' | 'tokens' | 'createdAt' | 'updatedAt'>;

/** The indexes stored in this origin's IndexedDB, by name. Needs no model. */
export async function listIndexes(): Promise<IndexSummary[]> {
  requireIndexedDB();
  let names: string[];
  try {
    names = (await indexedDB.databases()).map((d) => d.name ?? '').filter((n) => n.startsWith(DB_PREFIX));
  } catch (err) {
    throw storageError(err, 'Listing indexes');
  }
  const out: IndexSummary[] = [];
  for (const dbName of names.sort()) {
    let db: IDBPDatabase<IndexSchema> | undefined;
    try {
      db = await openDB<IndexSchema>(dbName);
      if (!db.objectStoreNames.contains('manifest')) continue;
      const m = (await db.get('manifest', MANIFEST_KEY)) as ManifestRecord | undefined;
      if (!m) continue;
      out.push({ name: m.name, model: m.fingerprint.model, precision: m.precision, dim: m.dim, documents: m.documents, tokens: m.tokens, createdAt: m.createdAt, updatedAt: m.updatedAt });
    } catch (err) {
      throw storageError(err, `Reading index "${dbName.slice(DB_PREFIX.length)}"`);
    } finally {
      db?.close();
    }
  }
  return out;
}

/**
 * Deletes a stored index for good (no-op when it does not exist). Open searches on it, in any
 * tab or worker, close their connection and fail later calls with STORAGE_FAILED.
 */
export async function deleteIndex(name: string): Promise<void> {
  requireIndexedDB();
  checkIndexName(name);
  const channel = newChannel(name);
  channel?.postMessage({ type: 'deleted' });
  channel?.close();
  try {
    await withLock(name, () => deleteDB(DB_PREFIX + name));
  } catch (err) {
    throw storageError(err, `Deleting index "${name}"`);
  }
}
