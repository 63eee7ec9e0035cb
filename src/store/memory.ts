/**
 * An in-memory {@link VectorStore} (`storage: 'memory'`): the shared shard format of ./shards.ts
 * held in this thread only; nothing survives a reload. Deletes leave tombstones that compaction
 * reclaims once they outweigh the live rows. The full-precision rows always stay in memory (they
 * are the only copy): the compressed index's rerank reads them from there, so a compressed memory
 * index holds its codes and its full vectors.
 */
import { ColbertError } from '../errors.ts';
import { resolveLexicalConfig, type LexicalConfig, type LexicalOptions } from '../lexical/analyze.ts';
import type { LexicalPostings } from '../lexical/bm25.ts';
import { InvertedIndex } from '../lexical/inverted.ts';
import type { Metadata, TokenMatrix } from '../types.ts';
import { FORMAT_VERSION, type ModelFingerprint } from './manifest.ts';
import type { VectorPrecision } from './precision.ts';
import { checkBatchDim, documentsShard, packMatrix, resolveCommit, ShardSet, snapshotShards, type PackedDocument } from './shards.ts';
import type { CommitItem, DocumentState, IndexSnapshot, ShardView, StagedDocument, StoreStats, StoredDocument, VectorStore } from './types.ts';

/** Options of {@link MemoryStore}. */
export interface MemoryStoreOptions {
  /** Storage precision of token vectors. Default 'fp32'. */
  precision?: VectorPrecision;
  /** The model whose vectors this store holds; needed only by {@link MemoryStore.snapshot}. */
  fingerprint?: ModelFingerprint;
  /**
   * Hold the vectors in SharedArrayBuffers, for scoring sub-workers. Default: where the realm is
   * cross-origin isolated and several scoring threads are possible.
   */
  sharedMemory?: boolean;
  /** How texts become lexical terms. Default: English, stemmed, without stop words. */
  lexical?: LexicalOptions;
}

interface DocInfo {
  hash: string;
  metadata?: Metadata;
  text?: string;
}

/** Content hashes are hex digits, so this key is unique per (id, hash). */
function stagingKey(id: string, hash: string): string {
  return `${hash}\u0000${id}`;
}

/** Non-persistent store; `storage: 'memory'`. */
export class MemoryStore implements VectorStore {
  readonly precision: VectorPrecision;
  private readonly set: ShardSet;
  private readonly docs = new Map<string, DocInfo>();
  /** Staged encodings by id and content hash: concurrent adds of one id with other texts keep theirs. */
  private readonly staging = new Map<string, PackedDocument & { hash: string; dim: number }>();
  private readonly createdAt = Date.now();
  private closed = false;
  readonly lexical: LexicalConfig;
  private readonly inverted: InvertedIndex;

  constructor(private readonly options: MemoryStoreOptions = {}) {
    this.precision = options.precision ?? 'fp32';
    this.lexical = resolveLexicalConfig(options.lexical);
    this.inverted = new InvertedIndex(this.lexical);
    this.set = new ShardSet(this.precision, null, 'mem', options.sharedMemory);
  }

  get dim(): number | null {
    return this.set.dim;
  }

  private check(): void {
    if (this.closed) throw new ColbertError('CLOSED', 'The store was closed.');
  }

  async put(docs: readonly StoredDocument[]): Promise<void> {
    await this.commit(docs.map((d) => (d.metadata === undefined ? { id: d.id, hash: '', matrix: d.matrix } : { id: d.id, hash: '', matrix: d.matrix, metadata: d.metadata })));
  }

  async lookup(ids: readonly string[], hashes: readonly string[]): Promise<DocumentState[]> {
    this.check();
    return ids.map((id, i) => (this.docs.get(id)?.hash === hashes[i] && hashes[i] !== '' ? 'live' : this.staging.has(stagingKey(id, hashes[i]!)) ? 'staged' : 'none'));
  }

  async stage(docs: readonly StagedDocument[]): Promise<void> {
    this.check();
    checkBatchDim(docs.map((d) => ({ id: d.id, dim: d.matrix.dim })), this.set.dim);
    for (const { id, hash, matrix: m } of docs) {
      this.staging.set(stagingKey(id, hash), { id, hash, dim: m.dim, tokens: m.tokens, packed: packMatrix(m.data, m.tokens, m.dim, this.precision), tokenIds: m.ids });
    }
  }

  async commit(items: readonly CommitItem[]): Promise<void> {
    this.check();
    // Validate everything before touching anything, so a bad batch changes nothing.
    const dim = checkBatchDim(items.flatMap((i) => (i.matrix ? [{ id: i.id, dim: i.matrix.dim }] : [])), this.set.dim);
    const adds = resolveCommit(items, this.precision, (id, hash) => this.staging.get(stagingKey(id, hash)), (id) => this.docs.get(id)?.hash);
    if (!items.length) return;
    const planDim = dim ?? this.set.dim ?? items.map((i) => this.staging.get(stagingKey(i.id, i.hash))?.dim).find((d) => d !== undefined) ?? null;
    this.set.apply(this.set.plan(adds, [], planDim));
    for (const item of items) {
      const info: DocInfo = { hash: item.hash };
      if (item.metadata !== undefined) info.metadata = item.metadata;
      if (item.text !== undefined) info.text = item.text;
      this.docs.set(item.id, info);
      this.inverted.set(item.id, item.text);
      this.staging.delete(stagingKey(item.id, item.hash));
    }
  }

  async delete(ids: readonly string[]): Promise<string[]> {
    this.check();
    const removed = ids.filter((id) => this.docs.has(id));
    this.set.apply(this.set.plan([], removed));
    for (const id of removed) {
      this.docs.delete(id);
      this.inverted.delete(id);
    }
    return removed;
  }

  async clear(): Promise<void> {
    this.check();
    this.set.clear();
    this.docs.clear();
    this.inverted.clear();
    this.staging.clear();
  }

  async has(ids: readonly string[]): Promise<boolean[]> {
    this.check();
    return ids.map((id) => this.docs.has(id));
  }

  async metadata(ids: readonly string[]): Promise<(Metadata | undefined)[]> {
    this.check();
    return ids.map((id) => this.docs.get(id)?.metadata);
  }

  async postings(terms: readonly string[]): Promise<LexicalPostings> {
    this.check();
    return this.inverted.postings(terms);
  }

  async lexicalStats(): Promise<{ documents: number; terms?: number }> {
    this.check();
    return this.inverted.size;
  }

  async allMetadata(): Promise<Iterable<readonly [string, Metadata | undefined]>> {
    this.check();
    return Array.from(this.docs, ([id, d]) => [id, d.metadata] as const);
  }

  async matrix(id: string): Promise<TokenMatrix | undefined> {
    this.check();
    return this.set.matrix(id);
  }

  async matrices(ids: readonly string[]): Promise<(TokenMatrix | undefined)[]> {
    this.check();
    return ids.map((id) => this.set.matrix(id));
  }

  async rowsShard(ids: readonly string[], key: string): Promise<ShardView> {
    this.check();
    const docs = ids.flatMap((id) => {
      const loc = this.set.locate(id);
      return loc ? [loc.shard.document(loc.slot)] : [];
    });
    return documentsShard(key, this.set.dim ?? 0, this.precision, docs);
  }

  async *shards(): AsyncIterable<ShardView> {
    this.check();
    for (const shard of this.set.list()) yield shard.view();
  }

  async stats(): Promise<StoreStats> {
    this.check();
    return { documents: this.set.documents, tokens: this.set.tokens, vectorBytes: this.set.vectorBytes };
  }

  async snapshot(): Promise<IndexSnapshot> {
    this.check();
    const fingerprint = this.options.fingerprint;
    if (!fingerprint) throw new ColbertError('INTERNAL', 'This memory store was created without a model fingerprint, so it cannot be exported.');
    const { ids, shards } = snapshotShards(this.set.list());
    const now = Date.now();
    return {
      manifest: { format: FORMAT_VERSION, fingerprint, precision: this.precision, dim: this.set.dim ?? fingerprint.dim, documents: ids.length, tokens: this.set.tokens, createdAt: this.createdAt, updatedAt: now },
      documents: ids.map((id) => ({ id, ...this.docs.get(id)! })),
      shards,
    };
  }

  async restore(snapshot: IndexSnapshot): Promise<void> {
    this.check();
    const shards = this.set.fromSnapshot(snapshot);
    this.set.clear();
    this.set.load(shards);
    this.set.dim = snapshot.manifest.dim;
    this.docs.clear();
    this.inverted.clear();
    this.staging.clear();
    for (const d of snapshot.documents) {
      const info: DocInfo = { hash: d.hash };
      if (d.metadata !== undefined) info.metadata = d.metadata;
      if (d.text !== undefined) info.text = d.text;
      this.docs.set(d.id, info);
      this.inverted.set(d.id, d.text);
    }
  }

  async close(): Promise<void> {
    this.closed = true;
    this.set.clear();
    this.docs.clear();
    this.staging.clear();
  }
}
