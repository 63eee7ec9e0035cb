/**
 * The storage interface every index backend implements (memory today; IndexedDB plugs in here).
 * Stores hold token matrices in shards: large packed arrays with per-document offsets, never one
 * record per token.
 */
import type { LexicalConfig } from '../lexical/analyze.ts';
import type { LexicalPostings } from '../lexical/bm25.ts';
import type { Metadata, TokenMatrix } from '../types.ts';
import type { IndexManifest } from './manifest.ts';
import type { PackedRows, VectorPrecision } from './precision.ts';
import type { ResidualCodec } from './residual.ts';

/** A document as the engine hands it to a store. */
export interface StoredDocument {
  id: string;
  matrix: TokenMatrix;
  metadata?: Metadata;
}

/**
 * A read-only view of one shard for scoring. Document `i` owns rows
 * `offsets[i] .. offsets[i + 1]` of `vectors` (row-major, `dim` values per row, at `precision`,
 * see ./precision.ts); `docIds[i]` is `null` for a deleted slot, which scorers skip.
 *
 * Residency rules (for scorers that keep shards on a GPU): a shard's `key` names its storage for
 * as long as its rows are only appended to; when rows are rewritten (compaction, reload) the key
 * changes. So a scorer holding the first `n` rows of a key may upload only rows `n..` and
 * re-read `docIds` for deletions.
 */
export interface ShardView extends PackedRows {
  /** Stable identity of this shard's storage (see the residency rules above). */
  key: string;
  dim: number;
  docIds: readonly (string | null)[];
  offsets: Uint32Array;
  /**
   * True when the rows were read for this scan only (a store with rows on demand): the store does
   * not hold them, so a scorer scores such shards as they come, a few at a time, instead of
   * gathering them all first (see ../score/scorer.ts and ../score/gpu.ts).
   */
  transient?: boolean;
}

/** Where a persistent store keeps the full-precision rows (see {@link VectorStore.setRowResidency}). */
export type RowResidency = 'all' | 'on-demand';

/** Counts a store reports. */
export interface StoreStats {
  documents: number;
  tokens: number;
  /** Bytes of token vectors held in memory (live and not yet compacted); rows read on demand are not counted. */
  vectorBytes: number;
  /** Bytes this index occupies in IndexedDB (vectors, ids, metadata, texts, the compressed index's codes); absent in memory. */
  bytesOnDisk?: number;
}

/** A document encoded during an `add`, staged (invisible to search) until its batch commits. */
export interface StagedDocument {
  id: string;
  /** Content hash of the text it was encoded from. */
  hash: string;
  matrix: TokenMatrix;
}

/**
 * One document of a batch to commit. With `matrix`, those vectors are stored; without, the
 * staged encoding with the same id and hash is used, or, when the live document already has
 * this hash, its rows are kept and only metadata and text change.
 */
export interface CommitItem {
  id: string;
  hash: string;
  metadata?: Metadata;
  /** The document text, kept beside the vectors (never read by search). */
  text?: string;
  matrix?: TokenMatrix;
}

/** What a store already holds for an id and a content hash. */
export type DocumentState = 'live' | 'staged' | 'none';

/** A whole index as plain data: what export writes and import reads (see ./portable.ts). */
export interface IndexSnapshot {
  manifest: IndexManifest;
  /** Every live document in shard order (shard `i` holds the next `shards[i].docIds.length`). */
  documents: { id: string; hash: string; metadata?: Metadata; text?: string }[];
  /** Shards without tombstones. */
  shards: (PackedRows & { docIds: string[]; offsets: Uint32Array; tokenIds: Int32Array; dim: number })[];
  /**
   * The compressed index's codec and codes, when the exported index was trained: `codes[i]`
   * covers the rows of `shards[i]` in order (one centroid code and `residualBytes` bytes per row).
   */
  compression?: SnapshotCodes;
}

/** A trained codec as stored and exported: what decodes the codes and what assigns new tokens. */
export interface PersistedCodec {
  codec: ResidualCodec;
  /** The coarse level that speeds up assignment (../score/train.ts `CentroidTree`). */
  tree: { coarse: Float32Array; starts: Uint32Array };
  /** Tokens the centroids were trained for. */
  trainedTokens: number;
  /** The pool factor of the index that trained it. */
  poolFactor: number;
}

/** The codes of a snapshot (see {@link IndexSnapshot.compression}). */
export interface SnapshotCodes {
  codec: PersistedCodec;
  codes: { codes: Uint16Array; residuals: Uint8Array }[];
}

/** One document's codes: a centroid code per token and its residual bytes. */
export interface DocCodes {
  codes: Uint16Array;
  residuals: Uint8Array;
}

/** A document's codes as a code store holds them: `tag` names the rows they were encoded from. */
export interface TaggedCodes extends DocCodes {
  tag: string;
}

/** Encodes documents with the codec of one generation, inside a store's write transaction (synchronous). */
export interface CodeEncoder {
  generation: number;
  encode(id: string, tag: string, matrix: TokenMatrix): DocCodes;
}

/**
 * Where a persistent store keeps the compressed index (see ./idb.ts): codecs by generation, and
 * per (generation, document) the codes tagged with what they were encoded from, so that opening
 * reads them instead of training. The manifest names the current generation.
 */
export interface CodeStore {
  /** The current generation's codec, or undefined when none is stored. */
  readCodec(): Promise<(PersistedCodec & { generation: number }) | undefined>;
  /** The tag each live document's codes must carry (its content hash and the write that stored its rows). */
  codeTags(): Promise<Map<string, string>>;
  /** Stored codes of a generation (of `ids`, or all), whatever their tags. */
  readCodes(generation: number, ids?: readonly string[]): Promise<Map<string, TaggedCodes>>;
  /**
   * From now on every write of document rows encodes them with `encoder` and stores the codes in
   * the same transaction, while the manifest's generation is the encoder's (null: none).
   */
  setCodeEncoder(encoder: CodeEncoder | null): void;
  /** Stores codes of the current generation for documents whose tag still matches (re-encoded on open or sync). */
  writeCodes(generation: number, entries: ReadonlyMap<string, TaggedCodes>): Promise<void>;
  /**
   * Runs `fn` (a training) alone across tabs and workers; resolves to undefined without running
   * it when another context is training this index.
   */
  exclusiveTraining<T>(fn: () => Promise<T>): Promise<T | undefined>;
  /** Drops codes and codecs of generations other than the current one (an unfinished training's leftovers). Call while training exclusively. */
  dropLeftovers(): Promise<number>;
  /** Stores a new generation's codec (not current yet) and returns its number. Call while training exclusively. */
  beginGeneration(codec: PersistedCodec): Promise<number>;
  /** Stores a batch of a new generation's codes (its own transaction). */
  writeGenerationCodes(generation: number, entries: ReadonlyMap<string, TaggedCodes>): Promise<void>;
  /**
   * Makes `generation` current in ONE transaction: documents whose tag is not `have`'s are
   * encoded with `encoder`, codes of documents no longer stored are deleted, and the manifest
   * flips. `done` runs inside the store's write lock once that committed (nothing else wrote in
   * between); the encoder then becomes the store's. Old generations are deleted afterwards.
   * Resolves false, writing nothing, when the generation's codec is gone (a clear or an import ran).
   */
  switchGeneration(generation: number, have: ReadonlyMap<string, string>, encoder: CodeEncoder, done: (added: Map<string, TaggedCodes>, removed: string[]) => void): Promise<boolean>;
}

/** A change another context (tab, worker) made to a persistent index. */
export interface StoreChange {
  documents: number;
  tokens: number;
}

/** A document index backend. Every mutating call is atomic: it applies whole or not at all. */
export interface VectorStore {
  /** Token vector dimension, fixed by the first document stored (null while empty). */
  readonly dim: number | null;
  /** Storage precision of the vectors. */
  readonly precision: VectorPrecision;
  /** How document texts become lexical terms (fixed when the index was created). */
  readonly lexical: LexicalConfig;
  /** Adds documents; an id already stored is replaced. */
  put(docs: readonly StoredDocument[]): Promise<void>;
  /** For each id: 'live' when stored from text with this hash, 'staged' when encoded and waiting, else 'none'. */
  lookup(ids: readonly string[], hashes: readonly string[]): Promise<DocumentState[]>;
  /** Keeps encoded documents of an unfinished batch, invisible to search, so a retry can skip them. */
  stage(docs: readonly StagedDocument[]): Promise<void>;
  /** Makes a batch live in one atomic step (see {@link CommitItem}). */
  commit(items: readonly CommitItem[]): Promise<void>;
  /** Removes every document (and staged encodings). */
  clear(): Promise<void>;
  /** The whole index as plain data, for export (texts included; with `codes`, the stored compressed index's codes where a code store holds them for every document). */
  snapshot(options?: { codes?: boolean }): Promise<IndexSnapshot>;
  /** Replaces the whole index by a snapshot, atomically; the manifest's model was checked by the caller. */
  restore(snapshot: IndexSnapshot): Promise<void>;
  /** Removes documents by id; returns the ids that were stored (unknown ids are ignored here). */
  delete(ids: readonly string[]): Promise<string[]>;
  /** Which of `ids` are stored. */
  has(ids: readonly string[]): Promise<boolean[]>;
  /** Metadata of stored documents, `undefined` for unknown ids or documents without metadata. */
  metadata(ids: readonly string[]): Promise<(Metadata | undefined)[]>;
  /** Every stored document's id with its metadata (for filters: one pass, no per-id lookups). */
  allMetadata(): Promise<Iterable<readonly [string, Metadata | undefined]>>;
  /** The token matrix of one document (with token ids), or undefined. */
  matrix(id: string): Promise<TokenMatrix | undefined>;
  /**
   * The token matrices of several documents (undefined for unknown ids), read together: where
   * the rows are not held in memory (see {@link setRowResidency}) one transaction reads only
   * the stored chunks holding them.
   */
  matrices(ids: readonly string[]): Promise<(TokenMatrix | undefined)[]>;
  /**
   * Whether the full-precision rows stay in memory ('all', what every store does by default) or
   * are read on demand ('on-demand': only the segment that appends go to stays resident; scans
   * such as {@link shards} read the others one segment at a time). The engine asks for
   * 'on-demand' while the compressed index serves searches. Absent: the rows are always in memory
   * (the memory store, where memory is the only copy).
   */
  setRowResidency?(mode: RowResidency): Promise<void>;
  /**
   * A hint that the rows of `ids` are about to be asked for ({@link matrices}, a rerank's rows):
   * a store whose rows are read on demand starts reading them now, without waiting, and the
   * next read of them takes what came. Never changes what a read returns. Absent: no such hint helps.
   */
  prefetchRows?(ids: readonly string[]): void;
  /**
   * The rows of `ids` (unknown ids left out) as one shard, in the order given, at the store's
   * precision, copied as stored (never decoded): how the compressed index's rerank scores its
   * candidates with the kernel that scores the stored shards. `key` must be new for every call.
   */
  rowsShard(ids: readonly string[], key: string): Promise<ShardView>;
  /**
   * Lexical collection statistics and the live posting lists of `terms` (analysed with
   * {@link lexical}); only those lists are read. Documents stored without text have none.
   */
  postings(terms: readonly string[]): Promise<LexicalPostings>;
  /** Lexical counts: documents indexed from text, and (where cheap to know) distinct terms. */
  lexicalStats(): Promise<{ documents: number; terms?: number }>;
  /** Streams the shards for scoring. */
  shards(): AsyncIterable<ShardView>;
  /** Where the compressed index persists (IndexedDB); absent where its codes live in memory only. */
  readonly codes?: CodeStore;
  stats(): Promise<StoreStats>;
  close(): Promise<void>;
}
