/**
 * Where the compressed index keeps its document tokens: per token a 16-bit centroid code and its
 * residual bytes (./residual.ts), per document a slot (first token, token count), and the
 * inverted lists from centroid to slots (Elias-Fano or delta + varint coded, ./lists.ts). Deleted or replaced documents leave
 * dead slots until compaction (once dead tokens outnumber live ones) rewrites the arrays; slots
 * are then renumbered, so callers hold slots only within one query.
 */
import { encodeList, LIST_PADDING, listBytes } from './lists.ts';
import type { DocCodes, IndexSnapshot, SnapshotCodes } from './types.ts';

/**
 * Per-document codes laid out like a snapshot's shards (row for row, as the portable file
 * carries them), or undefined when a document has none (`codesOf` gives undefined) or codes of
 * another length than its rows. `doc` counts the documents across shards in order.
 */
export function shardCodes(shards: IndexSnapshot['shards'], bytesPerToken: number, codesOf: (doc: number, id: string) => DocCodes | undefined): SnapshotCodes['codes'] | undefined {
  const parts: SnapshotCodes['codes'] = [];
  let doc = 0;
  for (const shard of shards) {
    const rows = shard.tokenIds.length;
    const part = { codes: new Uint16Array(rows), residuals: new Uint8Array(rows * bytesPerToken) };
    for (let slot = 0; slot < shard.docIds.length; slot++, doc++) {
      const c = codesOf(doc, shard.docIds[slot]!);
      const from = shard.offsets[slot]!;
      if (!c || c.codes.length !== shard.offsets[slot + 1]! - from) return undefined;
      part.codes.set(c.codes, from);
      part.residuals.set(c.residuals, from * bytesPerToken);
    }
    parts.push(part);
  }
  return parts;
}
/**
 * The document tokens of the compressed index, by slot: slot `s` owns `counts[s]` consecutive
 * entries of `codes` (and rows of `residuals`) from `starts[s]`.
 */
export interface CodeView {
  /** One centroid id per stored token. */
  codes: Uint16Array | Uint32Array;
  /** `residualBytes(dim, nbits)` bytes per stored token. */
  residuals: Uint8Array;
  /** First token of each slot. */
  starts: Uint32Array;
  /** Tokens of each slot (0 for a deleted slot). */
  counts: Uint32Array;
}

/** Inverted lists: for each centroid, the ascending slots holding a token of it (coded by ./lists.ts). */
export interface InvertedLists {
  /** `centroids + 1` byte offsets into `bytes`. */
  offsets: Uint32Array;
  bytes: Uint8Array;
  /** Entries of the longest list (room a decoder needs). */
  longest: number;
}


function grow<T extends Uint8Array | Uint16Array | Uint32Array>(array: T, need: number, make: (n: number) => T): T {
  if (need <= array.length) return array;
  const next = make(Math.max(need, Math.ceil(array.length * 1.5), 1024));
  next.set(array);
  return next;
}

/** Token codes and residuals by document slot. */
export class CodeSet {
  private ids: (string | null)[] = [];
  private readonly slotOf = new Map<string, number>();
  private starts = new Uint32Array(0);
  private counts = new Uint32Array(0);
  private codes = new Uint16Array(0);
  private residuals = new Uint8Array(0);
  private used = 0;
  private dead = 0;
  private lists: InvertedLists | null = null;
  private rewrites = 0;

  constructor(
    /** Residual bytes per token. */
    readonly bytesPerToken: number,
    /** Centroids of the codec the codes refer to. */
    readonly centroids: number,
  ) {}

  /** Documents stored. */
  get documents(): number {
    return this.slotOf.size;
  }

  /** Live tokens stored. */
  get tokens(): number {
    return this.used - this.dead;
  }

  /**
   * How many times compaction renumbered the slots: a consumer that mirrors the slots (a GPU
   * copy appended in slot order) re-sends everything when this changes, else only new slots.
   */
  get compactions(): number {
    return this.rewrites;
  }

  /** Slots, live or dead (the bound of slot numbers). */
  get slots(): number {
    return this.ids.length;
  }

  /** Whether a slot holds a live document. */
  live(slot: number): boolean {
    return this.ids[slot] !== null && this.ids[slot] !== undefined;
  }

  /** The id of a live slot. */
  id(slot: number): string | null {
    return this.ids[slot] ?? null;
  }

  /** The slot of a stored id. */
  slot(id: string): number | undefined {
    return this.slotOf.get(id);
  }

  has(id: string): boolean {
    return this.slotOf.has(id);
  }

  /** The stored ids (in no particular order). */
  storedIds(): IterableIterator<string> {
    return this.slotOf.keys();
  }

  /**
   * Makes room for `tokens` more tokens in `documents` more slots at once, exactly: a set built
   * whole (a training, an open) then holds no growth slack (adds grow by half again, so a set of
   * 10M tokens built one document at a time could hold up to 170 MiB unused at nbits 2).
   */
  reserve(tokens: number, documents: number): void {
    const fit = <T extends Uint8Array | Uint16Array | Uint32Array>(array: T, need: number, make: (n: number) => T): T => {
      if (need <= array.length) return array;
      const next = make(need);
      next.set(array);
      return next;
    };
    this.codes = fit(this.codes, this.used + tokens, (k) => new Uint16Array(k));
    this.residuals = fit(this.residuals, (this.used + tokens) * this.bytesPerToken, (k) => new Uint8Array(k));
    this.starts = fit(this.starts, this.ids.length + documents, (k) => new Uint32Array(k));
    this.counts = fit(this.counts, this.ids.length + documents, (k) => new Uint32Array(k));
  }

  /** Stores a document's codes and residuals (`codes.length * bytesPerToken` bytes); an existing id is replaced. */
  add(id: string, codes: Uint16Array, residuals: Uint8Array): void {
    this.remove(id);
    const n = codes.length;
    this.codes = grow(this.codes, this.used + n, (k) => new Uint16Array(k));
    this.residuals = grow(this.residuals, (this.used + n) * this.bytesPerToken, (k) => new Uint8Array(k));
    this.codes.set(codes, this.used);
    this.residuals.set(residuals.subarray(0, n * this.bytesPerToken), this.used * this.bytesPerToken);
    const slot = this.ids.length;
    this.starts = grow(this.starts, slot + 1, (k) => new Uint32Array(k));
    this.counts = grow(this.counts, slot + 1, (k) => new Uint32Array(k));
    this.starts[slot] = this.used;
    this.counts[slot] = n;
    this.ids.push(id);
    this.slotOf.set(id, slot);
    this.used += n;
    this.lists = null;
  }

  /** Removes a document; false when it was not stored. */
  remove(id: string): boolean {
    const slot = this.slotOf.get(id);
    if (slot === undefined) return false;
    this.slotOf.delete(id);
    this.ids[slot] = null;
    this.dead += this.counts[slot]!;
    this.counts[slot] = 0;
    this.lists = null;
    if (this.dead > 1024 && this.dead > this.used - this.dead) this.compact();
    return true;
  }

  clear(): void {
    this.ids = [];
    this.slotOf.clear();
    this.starts = new Uint32Array(0);
    this.counts = new Uint32Array(0);
    this.codes = new Uint16Array(0);
    this.residuals = new Uint8Array(0);
    this.used = 0;
    this.dead = 0;
    this.lists = null;
    // Slots start again from 0: a mirror of the old ones no longer matches.
    this.rewrites++;
  }

  /**
   * Drops dead slots now, whatever their number (renumbers slots, sizes the arrays exactly). For a
   * set about to replace another (a re-training's swap): the documents it encoded and then saw
   * change or go while it trained would otherwise stay resident as dead tokens until the next
   * compaction (once they outnumber the live ones).
   */
  pack(): void {
    if (this.dead > 0) this.compact();
  }

  /** Rewrites the arrays without dead slots (renumbers slots). */
  private compact(): void {
    const live = this.ids.flatMap((id, slot) => (id === null ? [] : [slot]));
    const tokens = this.used - this.dead;
    const codes = new Uint16Array(tokens);
    const residuals = new Uint8Array(tokens * this.bytesPerToken);
    const starts = new Uint32Array(live.length);
    const counts = new Uint32Array(live.length);
    const ids: string[] = [];
    let at = 0;
    live.forEach((slot, k) => {
      const s = this.starts[slot]!;
      const n = this.counts[slot]!;
      codes.set(this.codes.subarray(s, s + n), at);
      residuals.set(this.residuals.subarray(s * this.bytesPerToken, (s + n) * this.bytesPerToken), at * this.bytesPerToken);
      starts[k] = at;
      counts[k] = n;
      const id = this.ids[slot]!;
      ids.push(id);
      this.slotOf.set(id, k);
      at += n;
    });
    Object.assign(this, { codes, residuals, starts, counts, ids, used: tokens, dead: 0, lists: null, rewrites: this.rewrites + 1 });
  }

  /** The tokens for scoring (valid until the next change). */
  view(): CodeView {
    return { codes: this.codes, residuals: this.residuals, starts: this.starts, counts: this.counts };
  }

  /** The codes and residual bytes of one stored document. */
  document(id: string): { codes: Uint16Array; residuals: Uint8Array } | undefined {
    const slot = this.slotOf.get(id);
    if (slot === undefined) return undefined;
    const s = this.starts[slot]!;
    const n = this.counts[slot]!;
    return { codes: this.codes.slice(s, s + n), residuals: this.residuals.slice(s * this.bytesPerToken, (s + n) * this.bytesPerToken) };
  }

  /** The inverted lists (built once after each change). */
  invertedLists(): InvertedLists {
    if (this.lists) return this.lists;
    const c = this.centroids;
    const last = new Int32Array(c).fill(-1);
    const sizes = new Uint32Array(c + 1);
    const slots = this.ids.length;
    for (let slot = 0; slot < slots; slot++) {
      const s = this.starts[slot]!;
      for (let j = s; j < s + this.counts[slot]!; j++) {
        const code = this.codes[j]!;
        if (last[code] !== slot) {
          last[code] = slot;
          sizes[code + 1]!++;
        }
      }
    }
    for (let k = 0; k < c; k++) sizes[k + 1]! += sizes[k]!;
    const flat = new Uint32Array(sizes[c]!);
    const fill = sizes.slice(0, c);
    last.fill(-1);
    for (let slot = 0; slot < slots; slot++) {
      const s = this.starts[slot]!;
      for (let j = s; j < s + this.counts[slot]!; j++) {
        const code = this.codes[j]!;
        if (last[code] !== slot) {
          last[code] = slot;
          flat[fill[code]!++] = slot;
        }
      }
    }
    // One list after another, each in the smaller of two codes (./lists.ts), sized exactly.
    const offsets = new Uint32Array(c + 1);
    let longest = 0;
    for (let k = 0; k < c; k++) {
      offsets[k + 1] = offsets[k]! + listBytes(flat, sizes[k]!, sizes[k + 1]!);
      longest = Math.max(longest, sizes[k + 1]! - sizes[k]!);
    }
    // LIST_PADDING: a decoder's last three-byte window may reach past the last list.
    const bytes = new Uint8Array(offsets[c]! + LIST_PADDING);
    for (let k = 0; k < c; k++) encodeList(flat, sizes[k]!, sizes[k + 1]!, bytes, offsets[k]!, offsets[k + 1]! - offsets[k]!);
    this.lists = { offsets, bytes, longest };
    return this.lists;
  }

  /**
   * Resident bytes of the codes: 2-byte codes and residuals of every stored token (dead ones
   * until compaction), 8 bytes per slot, and the inverted lists (built on demand). Ids excluded.
   */
  bytes(): number {
    const b = this.breakdown();
    return b.codes + b.residuals + b.slots + b.lists;
  }

  /** {@link bytes} by part: codes, residuals, slots (start + count) and inverted lists (bytes + offsets). */
  breakdown(): { codes: number; residuals: number; slots: number; lists: number } {
    const lists = this.invertedLists();
    return { codes: this.used * 2, residuals: this.used * this.bytesPerToken, slots: this.ids.length * 8, lists: lists.bytes.length + lists.offsets.length * 4 };
  }
}
