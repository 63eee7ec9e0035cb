/**
 * The storage interface every index backend implements (memory today; IndexedDB plugs in here).
 * Stores hold token matrices in shards: large packed arrays with per-document offsets, never one
 * record per token.
 */
import type { Metadata, TokenMatrix } from '../types.ts';
import type { PackedRows } from './precision.ts';

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
}

/** Counts a store reports. */
export interface StoreStats {
  documents: number;
  tokens: number;
  /** Bytes of token vectors held (live and not yet compacted). */
  vectorBytes: number;
}

/** A document index backend. Every mutating call is atomic: it applies whole or not at all. */
export interface VectorStore {
  /** Token vector dimension, fixed by the first document stored (null while empty). */
  readonly dim: number | null;
  /** Adds documents; an id already stored is replaced. */
  put(docs: readonly StoredDocument[]): Promise<void>;
  /** Removes documents by id; returns the ids that were stored (unknown ids are ignored here). */
  delete(ids: readonly string[]): Promise<string[]>;
  /** Which of `ids` are stored. */
  has(ids: readonly string[]): Promise<boolean[]>;
  /** Metadata of stored documents, `undefined` for unknown ids or documents without metadata. */
  metadata(ids: readonly string[]): Promise<(Metadata | undefined)[]>;
  /** The token matrix of one document (with token ids), or undefined. */
  matrix(id: string): Promise<TokenMatrix | undefined>;
  /** Streams the shards for scoring. */
  shards(): AsyncIterable<ShardView>;
  stats(): Promise<StoreStats>;
  close(): Promise<void>;
}
