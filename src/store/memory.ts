/**
 * An in-memory {@link VectorStore}: documents are appended to fixed-capacity shards; deletes leave
 * tombstones that compaction reclaims once they outweigh the live rows.
 */
import { ColbertError } from '../errors.ts';
import type { Metadata, TokenMatrix } from '../types.ts';
import { allocatePacked, bytesPerToken, decodeRows, encodeRows, type PackedRows, type VectorPrecision } from './precision.ts';
import type { ShardView, StoreStats, StoredDocument, VectorStore } from './types.ts';

/** Rows per shard before a new one is opened. */
const SHARD_ROWS = 1 << 16;

let nextShardKey = 0;

class Shard {
  readonly key = `mem-${nextShardKey++}`;
  docIds: (string | null)[] = [];
  offsets: Uint32Array;
  packed: PackedRows;
  tokenIds: Int32Array;
  rows = 0;
  liveRows = 0;

  constructor(
    readonly dim: number,
    readonly precision: VectorPrecision,
    capacityRows: number,
  ) {
    this.packed = allocatePacked(precision, capacityRows, dim);
    this.tokenIds = new Int32Array(capacityRows);
    this.offsets = new Uint32Array(17);
  }

  get capacityRows(): number {
    return this.tokenIds.length;
  }

  /** Appends a document; `m.data` holds floats (encoded here) unless `packed` gives stored rows to copy. */
  append(id: string, m: TokenMatrix, packed?: { from: PackedRows; row: number }): number {
    const slot = this.docIds.length;
    if (this.offsets.length < slot + 2) {
      const grown = new Uint32Array(this.offsets.length * 2);
      grown.set(this.offsets);
      this.offsets = grown;
    }
    if (packed) {
      const { from, row } = packed;
      this.packed.vectors.set(from.vectors.subarray(row * this.dim, (row + m.tokens) * this.dim) as never, this.rows * this.dim);
      if (from.scales) this.packed.scales!.set(from.scales.subarray(row, row + m.tokens), this.rows);
    } else {
      encodeRows(m.data, m.tokens, this.dim, this.packed, this.rows);
    }
    this.tokenIds.set(m.ids.subarray(0, m.tokens), this.rows);
    this.rows += m.tokens;
    this.liveRows += m.tokens;
    this.docIds.push(id);
    this.offsets[slot + 1] = this.rows;
    return slot;
  }

  /** A view trimmed to the used part (no copy). */
  view(): ShardView {
    const { vectors, scales } = this.packed;
    const view: ShardView = {
      key: this.key,
      dim: this.dim,
      precision: this.precision,
      docIds: this.docIds,
      offsets: this.offsets.subarray(0, this.docIds.length + 1),
      vectors: vectors.subarray(0, this.rows * this.dim),
    };
    if (scales) view.scales = scales.subarray(0, this.rows);
    return view;
  }
}

interface Location {
  shard: Shard;
  slot: number;
}

/** Options of {@link MemoryStore}. */
export interface MemoryStoreOptions {
  /** Storage precision of token vectors. Default 'fp32'. */
  precision?: VectorPrecision;
}

/** Non-persistent store; `storage: 'memory'`. */
export class MemoryStore implements VectorStore {
  readonly precision: VectorPrecision;
  private shardList: Shard[] = [];
  private readonly where = new Map<string, Location>();
  private readonly meta = new Map<string, Metadata>();
  private dimension: number | null = null;
  private closed = false;

  constructor(options: MemoryStoreOptions = {}) {
    this.precision = options.precision ?? 'fp32';
  }

  get dim(): number | null {
    return this.dimension;
  }

  private check(): void {
    if (this.closed) throw new ColbertError('CLOSED', 'The store was closed.');
  }

  async put(docs: readonly StoredDocument[]): Promise<void> {
    this.check();
    // Validate everything before touching anything, so a bad batch changes nothing.
    const dim = this.dimension ?? docs[0]?.matrix.dim ?? null;
    for (const doc of docs) {
      if (doc.matrix.dim !== dim) {
        throw new ColbertError('DIMENSION_MISMATCH', `Document "${doc.id}" has dim ${doc.matrix.dim}; this index holds dim ${String(dim)}.`, { id: doc.id, dim: doc.matrix.dim, expected: dim });
      }
    }
    if (dim === null) return;
    this.dimension = dim;
    for (const doc of docs) {
      this.remove(doc.id);
      const shard = this.shardFor(doc.matrix.tokens, dim);
      const slot = shard.append(doc.id, doc.matrix);
      this.where.set(doc.id, { shard, slot });
      if (doc.metadata !== undefined) this.meta.set(doc.id, doc.metadata);
    }
  }

  private shardFor(rows: number, dim: number): Shard {
    const last = this.shardList[this.shardList.length - 1];
    if (last && last.rows + rows <= last.capacityRows) return last;
    const shard = new Shard(dim, this.precision, Math.max(SHARD_ROWS, rows));
    this.shardList.push(shard);
    return shard;
  }

  private remove(id: string): boolean {
    const loc = this.where.get(id);
    if (!loc) return false;
    const { shard, slot } = loc;
    shard.docIds[slot] = null;
    shard.liveRows -= shard.offsets[slot + 1]! - shard.offsets[slot]!;
    this.where.delete(id);
    this.meta.delete(id);
    return true;
  }

  async delete(ids: readonly string[]): Promise<string[]> {
    this.check();
    const removed = ids.filter((id) => this.remove(id));
    this.compact();
    return removed;
  }

  /** Rewrites shards whose deleted rows outnumber the live ones (ids stay stable). */
  private compact(): void {
    const keep: Shard[] = [];
    for (const shard of this.shardList) {
      if (shard.liveRows * 2 >= shard.rows) {
        keep.push(shard);
        continue;
      }
      if (shard.liveRows === 0 && !shard.docIds.some((id) => id !== null)) continue;
      const fresh = new Shard(shard.dim, shard.precision, Math.max(1, shard.liveRows));
      shard.docIds.forEach((id, slot) => {
        if (id === null) return;
        const from = shard.offsets[slot]!;
        const to = shard.offsets[slot + 1]!;
        // Stored rows are copied as they are: compaction never re-quantizes.
        const matrix: TokenMatrix = { data: new Float32Array(0), tokens: to - from, dim: shard.dim, ids: shard.tokenIds.subarray(from, to) };
        this.where.set(id, { shard: fresh, slot: fresh.append(id, matrix, { from: shard.packed, row: from }) });
      });
      keep.push(fresh);
    }
    this.shardList = keep;
  }

  async has(ids: readonly string[]): Promise<boolean[]> {
    this.check();
    return ids.map((id) => this.where.has(id));
  }

  async metadata(ids: readonly string[]): Promise<(Metadata | undefined)[]> {
    this.check();
    return ids.map((id) => this.meta.get(id));
  }

  async matrix(id: string): Promise<TokenMatrix | undefined> {
    this.check();
    const loc = this.where.get(id);
    if (!loc) return undefined;
    const { shard, slot } = loc;
    const from = shard.offsets[slot]!;
    const to = shard.offsets[slot + 1]!;
    return { data: decodeRows(shard.packed, from, to - from, shard.dim), tokens: to - from, dim: shard.dim, ids: shard.tokenIds.slice(from, to) };
  }

  async *shards(): AsyncIterable<ShardView> {
    this.check();
    for (const shard of [...this.shardList]) yield shard.view();
  }

  async stats(): Promise<StoreStats> {
    this.check();
    let tokens = 0;
    let rows = 0;
    for (const shard of this.shardList) {
      tokens += shard.liveRows;
      rows += shard.rows;
    }
    return { documents: this.where.size, tokens, vectorBytes: rows * bytesPerToken(this.precision, this.dimension ?? 0) };
  }

  async close(): Promise<void> {
    this.closed = true;
    this.shardList = [];
    this.where.clear();
    this.meta.clear();
  }
}
