/**
 * The shard format both stores share: documents' token vectors packed into large typed arrays at
 * one precision (./precision.ts), with per-document offsets, token ids, doc ids and tombstones.
 *
 * A {@link ShardSet} holds the shards of one index and plans every change copy-on-write: a
 * {@link ShardPlan} describes the next state without touching the current one, so a store can
 * persist it first (IndexedDB) and {@link ShardSet.apply} it only once that succeeded. Rules:
 * - rows of a shard are only ever appended in place; rows past `rows` are scratch until applied;
 * - a shard whose deleted rows outnumber its live rows is rewritten into a new segment (new key);
 * - document ids are external and stable: nothing is renumbered.
 */
import { ColbertError } from '../errors.ts';
import { defaultScoringThreads } from '../capabilities.ts';
import { allocatePacked, bytesPerToken, decodeRows, encodeRows, isShared, packedArray, type PackedRows, type PackedVectors, type VectorPrecision } from './precision.ts';
import type { TokenMatrix } from '../types.ts';
import type { CommitItem, IndexSnapshot, ShardView } from './types.ts';

/** Most rows per segment. */
export const SEGMENT_ROWS = 16384;
/**
 * Target bytes of packed vectors per segment: a segment is one IndexedDB record, rewritten when
 * rows are appended to it, and records of several MiB are slow to clone (fake-indexeddb read an
 * 8 MiB record 50x slower than four of 2 MiB).
 */
export const SEGMENT_BYTES = 2 << 20;
/**
 * Target bytes of packed vectors per stored row chunk (IndexedDB schema 4): a segment's rows are
 * stored as chunks of whole documents, appended and never rewritten, so one document's rows are
 * read with one small record. Measured in Chromium (one readonly transaction, 128 random gets):
 * 16 KiB records 28 ms, 40 KiB 36 ms, 64 KiB 62 ms, 256 KiB 166 ms, 2 MiB 1.1 s.
 */
export const CHUNK_BYTES = 32 << 10;

/** Rows per segment at a precision and dimension (fp32 128-d: 4096; fp16: 8192; int8: 15,887). */
export function segmentRows(precision: VectorPrecision, dim: number): number {
  return Math.max(256, Math.min(SEGMENT_ROWS, Math.floor(SEGMENT_BYTES / bytesPerToken(precision, dim))));
}

let keyCounter = 0;
/** A process-unique shard key (see the residency rules on {@link ShardView}). */
function newKey(prefix: string): string {
  return `${prefix}-${keyCounter++}`;
}

/** One document's rows at the store's precision, ready to append. */
export interface PackedDocument {
  id: string;
  tokens: number;
  /** `tokens` rows at the store's precision (exact size, or longer with `row` as the start). */
  packed: PackedRows;
  /** First row of this document in `packed`. Default 0. */
  row?: number;
  /** Tokenizer id of each row (-1 where unknown). */
  tokenIds: Int32Array;
}

/** Encodes a float token matrix into exact-size packed rows. */
export function packMatrix(data: Float32Array, tokens: number, dim: number, precision: VectorPrecision): PackedRows {
  const packed = allocatePacked(precision, tokens, dim);
  encodeRows(data, tokens, dim, packed, 0);
  return packed;
}

/** The small, mutable part of a segment as stored: who owns which rows, and tombstones. */
export interface SegmentMeta {
  segment: number;
  dim: number;
  precision: VectorPrecision;
  rows: number;
  liveRows: number;
  /** Doc id per slot; null marks a deleted slot (tombstone). */
  docIds: (string | null)[];
  /** Uint32 offsets, one per slot plus one, as an exact-size buffer. */
  offsets: ArrayBuffer;
  /** Bumped whenever the rows change, so another tab knows to reload the vectors. */
  version: number;
  /**
   * Uint32 slot boundaries of the stored row chunks ({@link RowChunk}, keyed [segment, chunk]):
   * chunk `c` holds the rows of slots `chunks[c] .. chunks[c + 1]`. Absent before schema 4 (the
   * rows were then one {@link SegmentData} record; the migration writes the chunks).
   */
  chunks?: ArrayBuffer;
}

/** One stored chunk of a segment's rows: the rows of whole documents (slots), appended once and never rewritten. */
export interface RowChunk {
  /** The chunk's rows, `dim` elements each, of the precision's array type. */
  vectors: ArrayBuffer;
  /** int8 only: one Float32 scale per row. */
  scales?: ArrayBuffer;
  /** Int32 token id per row. */
  tokenIds: ArrayBuffer;
}

/** A segment's packed rows as one record: the layout before IndexedDB schema 4 (read by its migration). */
export interface SegmentData {
  segment: number;
  /** `rows * dim` elements of the precision's array type. */
  vectors: ArrayBuffer;
  /** int8 only: one Float32 scale per row. */
  scales?: ArrayBuffer;
  /** Int32 token id per row. */
  tokenIds: ArrayBuffer;
}

/**
 * An exact-size ArrayBuffer of the first `n` elements: the array's own buffer when it is exactly
 * that and not shared, else a copy. Never a SharedArrayBuffer, which IndexedDB cannot store
 * (DataCloneError): `slice` always allocates a plain ArrayBuffer.
 */
function exact<T extends PackedVectors | Uint32Array | Int32Array | Float32Array>(array: T, n: number): ArrayBuffer {
  if (array.length === n && array.byteOffset === 0 && array.buffer.byteLength === array.byteLength && !isShared(array)) return array.buffer as ArrayBuffer;
  return array.slice(0, n).buffer as ArrayBuffer;
}

/** A stored meta's chunk boundaries ([0]: no chunks stored, as in a segment before schema 4). */
function chunkBoundaries(meta: SegmentMeta): number[] {
  return meta.chunks ? Array.from(new Uint32Array(meta.chunks)) : [0];
}

/** A segment's rows concatenated from its stored chunks, checked against the row count. */
function rowsFromChunks(segment: number, precision: VectorPrecision, dim: number, rows: number, chunks: readonly RowChunk[], shared: boolean): { packed: PackedRows; tokenIds: Int32Array } {
  const packed = allocatePacked(precision, rows, dim, shared);
  const tokenIds = new Int32Array(rows);
  let at = 0;
  const corrupt = () => new ColbertError('INDEX_CORRUPT', `Segment ${segment} of the stored index is inconsistent (its row chunks and offsets disagree). Delete the index and rebuild or re-import it.`, { segment });
  for (const c of chunks) {
    const vectors = packedArray(precision, c.vectors);
    const ids = new Int32Array(c.tokenIds);
    const n = ids.length;
    if (vectors.length !== n * dim || at + n > rows || (precision === 'int8') !== (c.scales !== undefined) || (c.scales && c.scales.byteLength !== n * 4)) throw corrupt();
    packed.vectors.set(vectors as never, at * dim);
    if (c.scales) packed.scales!.set(new Float32Array(c.scales), at);
    tokenIds.set(ids, at);
    at += n;
  }
  if (at !== rows) throw corrupt();
  return { packed, tokenIds };
}

/**
 * One shard in memory: a segment's rows with spare capacity to append into. A persistent store
 * may hold a shard without its rows ({@link resident} false: only ids, offsets and tombstones),
 * reading them from storage when needed; every method that needs rows throws on such a shard.
 */
export class Shard {
  /** Slot boundaries of the stored row chunks (see {@link SegmentMeta.chunks}); the last is the number of slots stored. */
  chunks: number[] = [0];
  private rowsPacked: PackedRows | null;
  private rowTokenIds: Int32Array | null;

  constructor(
    /** Storage identity for scorers; kept while rows are only appended. */
    public key: string,
    readonly segment: number,
    readonly dim: number,
    readonly precision: VectorPrecision,
    public docIds: (string | null)[],
    public offsets: Uint32Array,
    packed: PackedRows | null,
    tokenIds: Int32Array | null,
    public rows: number,
    public liveRows: number,
    public version: number,
  ) {
    this.rowsPacked = packed;
    this.rowTokenIds = tokenIds;
  }

  /** Whether the rows are held in memory. */
  get resident(): boolean {
    return this.rowsPacked !== null;
  }

  /** The rows (throws on a shard whose rows are not resident). */
  get packed(): PackedRows {
    if (!this.rowsPacked) throw new ColbertError('INTERNAL', `The rows of segment ${this.segment} are not in memory.`, { segment: this.segment });
    return this.rowsPacked;
  }

  set packed(packed: PackedRows) {
    this.rowsPacked = packed;
  }

  /** Token id per row (throws on a shard whose rows are not resident). */
  get tokenIds(): Int32Array {
    if (!this.rowTokenIds) throw new ColbertError('INTERNAL', `The rows of segment ${this.segment} are not in memory.`, { segment: this.segment });
    return this.rowTokenIds;
  }

  set tokenIds(ids: Int32Array) {
    this.rowTokenIds = ids;
  }

  /** A shard of a stored segment without its rows: the same key, slots and chunks. */
  static cold(key: string, meta: SegmentMeta): Shard {
    const offsets = new Uint32Array(meta.offsets);
    if (offsets.length !== meta.docIds.length + 1 || offsets[meta.docIds.length] !== meta.rows) {
      throw new ColbertError('INDEX_CORRUPT', `Segment ${meta.segment} of the stored index is inconsistent (rows and offsets disagree). Delete the index and rebuild or re-import it.`, { segment: meta.segment });
    }
    const shard = new Shard(key, meta.segment, meta.dim, meta.precision, [...meta.docIds], offsets, null, null, meta.rows, meta.liveRows, meta.version);
    shard.chunks = chunkBoundaries(meta);
    return shard;
  }

  /** This shard without its rows (same key). */
  withoutRows(): Shard {
    const shard = new Shard(this.key, this.segment, this.dim, this.precision, this.docIds, this.offsets, null, null, this.rows, this.liveRows, this.version);
    shard.chunks = this.chunks;
    return shard;
  }

  /** This shard's slots with rows read back from its stored chunks (same key: the same rows). */
  withRows(chunks: readonly RowChunk[], shared = false): Shard {
    const { packed, tokenIds } = rowsFromChunks(this.segment, this.precision, this.dim, this.rows, chunks, shared);
    const shard = new Shard(this.key, this.segment, this.dim, this.precision, this.docIds, this.offsets, packed, tokenIds, this.rows, this.liveRows, this.version);
    shard.chunks = this.chunks;
    return shard;
  }

  /** This shard's slots with the row arrays of `other`, a shard of the same segment and rows. */
  withRowsOf(other: Shard): Shard {
    const shard = new Shard(this.key, this.segment, this.dim, this.precision, this.docIds, this.offsets, other.packed, other.tokenIds, this.rows, this.liveRows, this.version);
    shard.chunks = this.chunks;
    return shard;
  }

  /** The chunk holding `slot`'s rows. */
  chunkOf(slot: number): number {
    const c = this.chunks;
    let lo = 0;
    let hi = c.length - 2;
    while (lo < hi) {
      const mid = (lo + hi + 1) >> 1;
      if (c[mid]! <= slot) lo = mid;
      else hi = mid - 1;
    }
    return lo;
  }

  /**
   * The row chunks of the slots not stored yet (doc-aligned, about {@link CHUNK_BYTES} each,
   * a larger document alone), with their chunk numbers; records them as stored.
   */
  newChunks(): { chunk: number; data: RowChunk }[] {
    const out: { chunk: number; data: RowChunk }[] = [];
    const target = Math.max(1, Math.floor(CHUNK_BYTES / bytesPerToken(this.precision, this.dim)));
    const chunks = [...this.chunks];
    let first = chunks[chunks.length - 1]!;
    const slots = this.docIds.length;
    while (first < slots) {
      let end = first + 1;
      while (end < slots && this.offsets[end + 1]! - this.offsets[first]! <= target) end++;
      out.push({ chunk: chunks.length - 1, data: this.chunkData(this.offsets[first]!, this.offsets[end]!) });
      chunks.push(end);
      first = end;
    }
    this.chunks = chunks;
    return out;
  }

  /** Rows `from .. to` as a stored chunk (copies). */
  private chunkData(from: number, to: number): RowChunk {
    const d = this.dim;
    const { vectors, scales } = this.packed;
    const data: RowChunk = { vectors: vectors.slice(from * d, to * d).buffer as ArrayBuffer, tokenIds: this.tokenIds.slice(from, to).buffer as ArrayBuffer };
    if (scales) data.scales = scales.slice(from, to).buffer as ArrayBuffer;
    return data;
  }

  /** An empty shard with room for `capacityRows` rows (vectors in shared memory with `shared`). */
  static create(keyPrefix: string, segment: number, dim: number, precision: VectorPrecision, capacityRows: number, shared = false): Shard {
    return new Shard(newKey(keyPrefix), segment, dim, precision, [], new Uint32Array(17), allocatePacked(precision, capacityRows, dim, shared), new Int32Array(capacityRows), 0, 0, 0);
  }

  /**
   * Rebuilds a shard from its stored parts: the buffers are used as they are, or with `shared`
   * copied once into shared memory.
   */
  static fromRecord(keyPrefix: string, meta: SegmentMeta, data: SegmentData, shared = false): Shard {
    const { dim, precision, rows } = meta;
    const vectors = packedArray(precision, data.vectors);
    const tokenIds = new Int32Array(data.tokenIds);
    const offsets = new Uint32Array(meta.offsets);
    const scales = data.scales ? new Float32Array(data.scales) : undefined;
    if (vectors.length !== rows * dim || tokenIds.length !== rows || offsets.length !== meta.docIds.length + 1 || (precision === 'int8') !== (scales !== undefined) || (scales && scales.length !== rows) || offsets[meta.docIds.length] !== rows) {
      throw new ColbertError('INDEX_CORRUPT', `Segment ${meta.segment} of the stored index is inconsistent (rows, offsets and vectors disagree). Delete the index and rebuild or re-import it.`, { segment: meta.segment });
    }
    let packed: PackedRows = scales ? { precision, vectors, scales } : { precision, vectors };
    if (shared) {
      packed = allocatePacked(precision, rows, dim, true);
      packed.vectors.set(vectors as never);
      if (scales) packed.scales!.set(scales);
    }
    const shard = new Shard(newKey(keyPrefix), meta.segment, dim, precision, [...meta.docIds], offsets, packed, tokenIds, rows, meta.liveRows, meta.version);
    shard.chunks = chunkBoundaries(meta);
    return shard;
  }

  /** Rebuilds a shard from its stored meta and row chunks (in chunk order), in shared memory with `shared`. */
  static fromChunks(keyPrefix: string, meta: SegmentMeta, chunks: readonly RowChunk[], shared = false): Shard {
    return Shard.cold(newKey(keyPrefix), meta).withRows(chunks, shared);
  }

  /** Whether the rows live in shared memory (growth keeps it that way). */
  get shared(): boolean {
    return isShared(this.packed.vectors);
  }

  get capacityRows(): number {
    return this.tokenIds.length;
  }

  /** A copy that shares the row arrays (appending writes past `rows`, invisible to this one). */
  clone(): Shard {
    const shard = new Shard(this.key, this.segment, this.dim, this.precision, [...this.docIds], this.offsets, this.rowsPacked, this.rowTokenIds, this.rows, this.liveRows, this.version);
    shard.chunks = this.chunks;
    return shard;
  }

  /** Grows the arrays (by copying) when `rows` more rows or one more slot do not fit. */
  private reserve(rows: number): void {
    const slots = this.docIds.length + 2;
    if (this.offsets.length < slots) {
      const grown = new Uint32Array(Math.max(slots, this.offsets.length * 2));
      grown.set(this.offsets.subarray(0, this.docIds.length + 1));
      this.offsets = grown;
    }
    const need = this.rows + rows;
    if (need <= this.capacityRows) return;
    const capacity = Math.max(need, Math.min(segmentRows(this.precision, this.dim), this.capacityRows * 2));
    const packed = allocatePacked(this.precision, capacity, this.dim, this.shared);
    packed.vectors.set(this.packed.vectors.subarray(0, this.rows * this.dim) as never);
    if (packed.scales) packed.scales.set(this.packed.scales!.subarray(0, this.rows));
    const tokenIds = new Int32Array(capacity);
    tokenIds.set(this.tokenIds.subarray(0, this.rows));
    this.packed = packed;
    this.tokenIds = tokenIds;
  }

  /** Appends one document's packed rows (copied as they are: never re-quantized); returns its slot. */
  append(doc: PackedDocument): number {
    const { tokens, packed } = doc;
    const row = doc.row ?? 0;
    if (packed.precision !== this.precision) throw new ColbertError('INTERNAL', `Cannot append ${packed.precision} rows to a ${this.precision} shard.`);
    this.reserve(tokens);
    const d = this.dim;
    this.packed.vectors.set(packed.vectors.subarray(row * d, (row + tokens) * d) as never, this.rows * d);
    if (packed.scales) this.packed.scales!.set(packed.scales.subarray(row, row + tokens), this.rows);
    this.tokenIds.set(doc.tokenIds.subarray(0, tokens), this.rows);
    const slot = this.docIds.length;
    this.rows += tokens;
    this.liveRows += tokens;
    this.docIds.push(doc.id);
    this.offsets[slot + 1] = this.rows;
    return slot;
  }

  /** Marks a slot deleted; returns the rows it held. */
  tombstone(slot: number): number {
    const n = this.offsets[slot + 1]! - this.offsets[slot]!;
    this.docIds[slot] = null;
    this.liveRows -= n;
    return n;
  }

  /** Document `slot` as a packed document that points into this shard's arrays (no copy). */
  document(slot: number): PackedDocument {
    const from = this.offsets[slot]!;
    const to = this.offsets[slot + 1]!;
    return { id: this.docIds[slot]!, tokens: to - from, packed: this.packed, row: from, tokenIds: this.tokenIds.subarray(from, to) };
  }

  /** A read-only view trimmed to the used part (no copy). */
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

  /** The small stored part. */
  toMeta(): SegmentMeta {
    return {
      segment: this.segment,
      dim: this.dim,
      precision: this.precision,
      rows: this.rows,
      liveRows: this.liveRows,
      docIds: [...this.docIds],
      offsets: exact(this.offsets, this.docIds.length + 1),
      version: this.version,
      chunks: Uint32Array.from(this.chunks).buffer,
    };
  }

  /** The rows as one record, as exact-size buffers (the layout before schema 4; tests write old indexes with it). */
  toData(): SegmentData {
    const data: SegmentData = {
      segment: this.segment,
      vectors: exact(this.packed.vectors, this.rows * this.dim),
      tokenIds: exact(this.tokenIds, this.rows),
    };
    if (this.packed.scales) data.scales = exact(this.packed.scales, this.rows);
    return data;
  }

  /** Bytes the rows occupy (live and deleted), held in memory or not. */
  get rowBytes(): number {
    return this.rows * bytesPerToken(this.precision, this.dim);
  }

  /** Bytes of rows held in memory (0 when not resident). */
  get vectorBytes(): number {
    return this.resident ? this.rowBytes : 0;
  }
}

/** Where a document lives. */
export interface Location {
  segment: number;
  slot: number;
}

/** The next state of a {@link ShardSet}, computed without changing the current one. */
export interface ShardPlan {
  /** Every shard of the next state, by segment. */
  shards: Map<number, Shard>;
  /** Location changes: a new location, or null for a removed document. */
  moves: Map<string, Location | null>;
  /** Segments whose rows changed (appended, or new): write meta and data. */
  rowsChanged: Set<number>;
  /** Segments where only tombstones changed: write meta only. */
  metaChanged: Set<number>;
  /** Segments that no longer exist. */
  removed: Set<number>;
  nextSegment: number;
  dim: number | null;
  /**
   * Segments whose rows the plan needed (an append to the tail, a compaction) but which are not
   * resident: the plan is incomplete; read those rows ({@link ShardSet.replace}) and plan again.
   */
  missing: Set<number>;
}

/**
 * Whether a store's shards should live in shared memory by default: where this realm can start
 * scoring sub-workers that read them (cross-origin isolated, more than one thread).
 */
export function sharedShardsByDefault(): boolean {
  return defaultScoringThreads() > 1;
}

/**
 * All shards of one index, with the id -> location map; changes go through {@link plan}/{@link apply}.
 * Every shard the set creates (appends, compaction, loads, restores) is allocated in shared memory
 * or not according to `shared`: the one switch. What is written to IndexedDB or exported is always
 * a plain copy (see {@link Shard.toData}).
 */
export class ShardSet {
  shards = new Map<number, Shard>();
  readonly where = new Map<string, Location>();
  nextSegment = 0;

  constructor(
    readonly precision: VectorPrecision,
    public dim: number | null,
    private readonly keyPrefix: string,
    /** Allocate packed rows in SharedArrayBuffers (default: {@link sharedShardsByDefault}). */
    readonly shared: boolean = sharedShardsByDefault(),
  ) {}

  /** An empty shard of this set. */
  private create(segment: number, dim: number, capacityRows: number): Shard {
    return Shard.create(this.keyPrefix, segment, dim, this.precision, capacityRows, this.shared);
  }

  /** A stored segment (meta and row chunks) as a shard of this set. */
  fromChunks(meta: SegmentMeta, chunks: readonly RowChunk[]): Shard {
    return Shard.fromChunks(this.keyPrefix, meta, chunks, this.shared);
  }

  /** A stored segment as a shard of this set without its rows. */
  cold(meta: SegmentMeta): Shard {
    return Shard.cold(newKey(this.keyPrefix), meta);
  }

  /** A stored segment as a shard of this set. */
  fromRecord(meta: SegmentMeta, data: SegmentData): Shard {
    return Shard.fromRecord(this.keyPrefix, meta, data, this.shared);
  }

  /** Shards (segments `firstSegment`, +1, ...) rebuilt from a snapshot at this set's precision (converted when it differs). */
  fromSnapshot(snapshot: IndexSnapshot, firstSegment = 0): Shard[] {
    return snapshot.shards.map((s, i) => {
      const rows = s.tokenIds.length;
      const packed = convertPacked(s, 0, rows, s.dim, this.precision);
      const shard = this.create(firstSegment + i, s.dim, Math.max(1, rows));
      s.docIds.forEach((id, slot) => {
        const from = s.offsets[slot]!;
        const to = s.offsets[slot + 1]!;
        shard.append({ id, tokens: to - from, packed, row: from, tokenIds: s.tokenIds.subarray(from, to) });
      });
      return shard;
    });
  }

  /** Replaces the whole state by stored segments (ascending segment order). */
  load(shards: readonly Shard[]): void {
    this.shards = new Map(shards.map((s) => [s.segment, s]));
    this.where.clear();
    for (const shard of shards) {
      shard.docIds.forEach((id, slot) => {
        if (id !== null) this.where.set(id, { segment: shard.segment, slot });
      });
      this.nextSegment = Math.max(this.nextSegment, shard.segment + 1);
      this.dim ??= shard.dim;
    }
  }

  /** Shards in segment order. */
  list(): Shard[] {
    return [...this.shards.values()].sort((a, b) => a.segment - b.segment);
  }

  get documents(): number {
    return this.where.size;
  }

  get tokens(): number {
    let n = 0;
    for (const s of this.shards.values()) n += s.liveRows;
    return n;
  }

  /** Bytes of rows held in memory. */
  get vectorBytes(): number {
    let n = 0;
    for (const s of this.shards.values()) n += s.vectorBytes;
    return n;
  }

  /** Bytes of all rows, held in memory or not. */
  get rowBytes(): number {
    let n = 0;
    for (const s of this.shards.values()) n += s.rowBytes;
    return n;
  }

  /** Replaces a shard by another of the same segment and slots (the same rows read back, or dropped from memory). */
  replace(shard: Shard): void {
    this.shards.set(shard.segment, shard);
  }

  /**
   * Plans removing `removes` (ignoring unknown ids), then adding `adds` (an id already stored is
   * replaced), then compacting every shard whose deleted rows outnumber its live ones.
   */
  plan(adds: readonly PackedDocument[], removes: readonly string[] = [], dim: number | null = this.dim): ShardPlan {
    if (adds.length && dim === null) throw new ColbertError('INTERNAL', 'A shard plan that adds documents needs the dimension.');
    const plan: ShardPlan = { shards: new Map(this.shards), moves: new Map(), rowsChanged: new Set(), metaChanged: new Set(), removed: new Set(), nextSegment: this.nextSegment, dim: this.dim ?? (adds.length ? dim : null), missing: new Set() };
    const locate = (id: string): Location | undefined => (plan.moves.has(id) ? plan.moves.get(id) ?? undefined : this.where.get(id));
    const writable = (segment: number): Shard => {
      let shard = plan.shards.get(segment)!;
      if (shard === this.shards.get(segment)) {
        shard = shard.clone();
        plan.shards.set(segment, shard);
      }
      return shard;
    };
    const drop = (id: string) => {
      const loc = locate(id);
      if (!loc) return;
      writable(loc.segment).tombstone(loc.slot);
      if (!plan.rowsChanged.has(loc.segment)) plan.metaChanged.add(loc.segment);
      plan.moves.set(id, null);
    };
    for (const id of removes) drop(id);
    for (const doc of adds) drop(doc.id);
    let tail: Shard | undefined;
    const limit = adds.length ? segmentRows(this.precision, plan.dim!) : 0;
    for (const doc of adds) {
      if (!tail) {
        const last = [...plan.shards.values()].sort((a, b) => b.segment - a.segment)[0];
        if (last && !last.resident && last.rows + doc.tokens <= limit) plan.missing.add(last.segment);
        tail = last?.resident && last.rows + doc.tokens <= limit ? writable(last.segment) : undefined;
      }
      if (!tail || (tail.rows > 0 && tail.rows + doc.tokens > limit)) {
        tail = this.create(plan.nextSegment++, plan.dim!, Math.min(limit, Math.max(doc.tokens, 1024)));
        plan.shards.set(tail.segment, tail);
      }
      const slot = tail.append(doc);
      plan.rowsChanged.add(tail.segment);
      plan.metaChanged.delete(tail.segment);
      plan.moves.set(doc.id, { segment: tail.segment, slot });
    }
    this.compact(plan);
    // A stored segment whose rows changed gets a new version, so other tabs reload its vectors.
    for (const segment of plan.rowsChanged) {
      const before = this.shards.get(segment);
      if (before) plan.shards.get(segment)!.version = before.version + 1;
    }
    return plan;
  }

  private compact(plan: ShardPlan): void {
    for (const [segment, shard] of [...plan.shards]) {
      if (shard.liveRows * 2 >= shard.rows && shard.docIds.some((id) => id !== null)) continue;
      if (!plan.metaChanged.has(segment) && !plan.rowsChanged.has(segment)) continue;
      if (!shard.resident && shard.docIds.some((id) => id !== null)) {
        plan.missing.add(segment);
        continue;
      }
      plan.shards.delete(segment);
      plan.metaChanged.delete(segment);
      plan.rowsChanged.delete(segment);
      if (this.shards.has(segment)) plan.removed.add(segment);
      if (!shard.docIds.some((id) => id !== null)) continue;
      const fresh = this.create(plan.nextSegment++, shard.dim, Math.max(1, shard.liveRows));
      shard.docIds.forEach((id, slot) => {
        if (id === null) return;
        plan.moves.set(id, { segment: fresh.segment, slot: fresh.append(shard.document(slot)) });
      });
      plan.shards.set(fresh.segment, fresh);
      plan.rowsChanged.add(fresh.segment);
    }
  }

  /** Makes a plan the current state. */
  apply(plan: ShardPlan): void {
    this.shards = plan.shards;
    for (const [id, loc] of plan.moves) {
      if (loc) this.where.set(id, loc);
      else this.where.delete(id);
    }
    this.nextSegment = plan.nextSegment;
    this.dim = plan.dim;
  }

  /** The location of a stored document. */
  locate(id: string): { shard: Shard; slot: number } | undefined {
    const loc = this.where.get(id);
    return loc ? { shard: this.shards.get(loc.segment)!, slot: loc.slot } : undefined;
  }

  /** A stored document's rows decoded to floats, with its token ids (a copy), or undefined (throws when its shard is not resident). */
  matrix(id: string): TokenMatrix | undefined {
    const loc = this.locate(id);
    return loc && slotMatrix(loc.shard, loc.slot);
  }

  /** Empties the set. */
  clear(): void {
    this.shards = new Map();
    this.where.clear();
    this.nextSegment = 0;
  }
}

/** The rows of one slot of a resident shard decoded to floats, with its token ids (a copy). */
export function slotMatrix(shard: Shard, slot: number): TokenMatrix {
  return documentMatrix(shard.document(slot), shard.dim);
}

/** A packed document's rows decoded to floats, with its token ids (a copy). */
export function documentMatrix(doc: PackedDocument, dim: number): TokenMatrix {
  return { data: decodeRows(doc.packed, doc.row ?? 0, doc.tokens, dim), tokens: doc.tokens, dim, ids: doc.tokenIds.slice(0, doc.tokens) };
}

/**
 * The rows of one slot as they are stored in its chunk (`chunk`, the record of chunk
 * `shard.chunkOf(slot)`): a document read on demand, viewing the record's buffers.
 */
export function chunkDocument(shard: Shard, slot: number, chunk: RowChunk): PackedDocument {
  const c = shard.chunkOf(slot);
  const base = shard.offsets[shard.chunks[c]!]!;
  const from = shard.offsets[slot]! - base;
  const tokens = shard.offsets[slot + 1]! - shard.offsets[slot]!;
  const ids = new Int32Array(chunk.tokenIds);
  const vectors = packedArray(shard.precision, chunk.vectors);
  const packed: PackedRows = chunk.scales ? { precision: shard.precision, vectors, scales: new Float32Array(chunk.scales) } : { precision: shard.precision, vectors };
  if (from + tokens > ids.length || vectors.length !== ids.length * shard.dim || (packed.scales && packed.scales.length !== ids.length)) {
    throw new ColbertError('INDEX_CORRUPT', `A row chunk of segment ${shard.segment} of the stored index is inconsistent with its offsets. Delete the index and rebuild or re-import it.`, { segment: shard.segment });
  }
  return { id: shard.docIds[slot]!, tokens, packed, row: from, tokenIds: ids.subarray(from, from + tokens) };
}

/**
 * One shard of whole documents' rows as stored (the store's precision, copied, never decoded),
 * in the order given: how the compressed index's rerank scores its candidates with the same
 * scorer and kernel as the stored shards. `key` must be new for every call.
 */
export function documentsShard(key: string, dim: number, precision: VectorPrecision, docs: readonly PackedDocument[]): ShardView {
  const offsets = new Uint32Array(docs.length + 1);
  docs.forEach((d, i) => (offsets[i + 1] = offsets[i]! + d.tokens));
  const rows = offsets[docs.length]!;
  const packed = allocatePacked(precision, rows, dim);
  docs.forEach((d, i) => {
    const row = d.row ?? 0;
    packed.vectors.set(d.packed.vectors.subarray(row * dim, (row + d.tokens) * dim) as never, offsets[i]! * dim);
    if (packed.scales) packed.scales.set(d.packed.scales!.subarray(row, row + d.tokens), offsets[i]!);
  });
  const view: ShardView = { key, dim, docIds: docs.map((d) => d.id), offsets, precision, vectors: packed.vectors };
  if (packed.scales) view.scales = packed.scales;
  return view;
}

/**
 * One fp32 shard of whole documents' matrices, in the order given: how a few documents (the
 * compressed index's rerank candidates) are scored by the same scorer as the stored shards.
 * `key` names it for scorers that cache shards, so it must be new for every call.
 */
export function matricesShard(key: string, dim: number, docs: readonly { id: string; m: TokenMatrix }[]): ShardView {
  const offsets = new Uint32Array(docs.length + 1);
  docs.forEach((d, i) => (offsets[i + 1] = offsets[i]! + d.m.tokens));
  const vectors = new Float32Array(offsets[docs.length]! * dim);
  docs.forEach((d, i) => vectors.set(d.m.data, offsets[i]! * dim));
  return { key, dim, docIds: docs.map((d) => d.id), offsets, precision: 'fp32', vectors };
}

/** Stored rows converted to another precision (via float32; exact when `to` is the same). */
export function convertPacked(packed: PackedRows, from: number, rows: number, dim: number, to: VectorPrecision): PackedRows {
  if (packed.precision === to) {
    const out = allocatePacked(to, rows, dim);
    out.vectors.set(packed.vectors.subarray(from * dim, (from + rows) * dim) as never);
    if (out.scales) out.scales.set(packed.scales!.subarray(from, from + rows));
    return out;
  }
  return packMatrix(decodeRows(packed, from, rows, dim), rows, dim, to);
}

/** Checks that every matrix of a batch has the index's dimension (or, while empty, the first one's). */
export function checkBatchDim(dims: readonly { id: string; dim: number }[], current: number | null): number | null {
  const dim = current ?? dims[0]?.dim ?? null;
  for (const d of dims) {
    if (d.dim !== dim) {
      throw new ColbertError('DIMENSION_MISMATCH', `Document "${d.id}" has dim ${d.dim}; this index holds dim ${String(dim)}.`, { id: d.id, dim: d.dim, expected: dim });
    }
  }
  return dim;
}

/**
 * Turns a commit batch into the rows to append: a matrix is packed, else the staged encoding is
 * used, else (same hash as the live document) the live rows stay and only metadata changes.
 */
/**
 * A commit found neither vectors, nor a staged encoding, nor the live rows it counted on for
 * `ids`: another write (a clear, a delete, a concurrent add of the same ids) took them between
 * staging and commit. Nothing was written; the engine encodes those documents again and retries.
 */
export class MissingEncodingError extends ColbertError {
  constructor(readonly ids: string[]) {
    super('INTERNAL', `Document${ids.length > 1 ? 's' : ''} ${ids.slice(0, 5).map((id) => `"${id}"`).join(', ')}${ids.length > 5 ? ', ...' : ''} ha${ids.length > 1 ? 've' : 's'} neither vectors nor a staged encoding to commit.`, { ids });
  }
}

export function resolveCommit(
  items: readonly CommitItem[],
  precision: VectorPrecision,
  staged: (id: string, hash: string) => PackedDocument | undefined,
  liveHash: (id: string) => string | undefined,
): PackedDocument[] {
  const adds: PackedDocument[] = [];
  const missing: string[] = [];
  for (const item of items) {
    if (item.matrix) {
      const m = item.matrix;
      adds.push({ id: item.id, tokens: m.tokens, packed: packMatrix(m.data, m.tokens, m.dim, precision), tokenIds: m.ids });
      continue;
    }
    const doc = staged(item.id, item.hash);
    if (doc) adds.push(doc);
    else if (liveHash(item.id) !== item.hash) missing.push(item.id);
  }
  if (missing.length) throw new MissingEncodingError(missing);
  return adds;
}

/** The live documents of resident shards (in segment order) as tombstone-free shards (views where a shard has no tombstones). */
export function snapshotShards(list: Iterable<Shard>): { ids: string[]; shards: IndexSnapshot['shards'] } {
  const ids: string[] = [];
  const shards: IndexSnapshot['shards'] = [];
  for (let shard of list) {
    if (!shard.docIds.some((id) => id !== null)) continue;
    if (shard.docIds.includes(null)) {
      const fresh = Shard.create('snapshot', shard.segment, shard.dim, shard.precision, Math.max(1, shard.liveRows));
      shard.docIds.forEach((id, slot) => {
        if (id !== null) fresh.append(shard.document(slot));
      });
      shard = fresh;
    }
    const view = shard.view();
    const docIds = shard.docIds as string[];
    ids.push(...docIds);
    const out: IndexSnapshot['shards'][number] = { precision: view.precision, vectors: view.vectors, docIds, offsets: view.offsets, tokenIds: shard.tokenIds.subarray(0, shard.rows), dim: shard.dim };
    if (view.scales) out.scales = view.scales;
    shards.push(out);
  }
  return { ids, shards };
}
