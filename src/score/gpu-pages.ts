/**
 * Where the GPU scorer (./gpu.ts) keeps an index's token vectors: in pages, each a set of GPU
 * buffers holding documents of any number of shards, so that one dispatch scores a whole page and
 * a query costs one dispatch per page rather than one per store shard (an IndexedDB index has one
 * shard per 2 MiB; every dispatch that writes the shared scores buffer waits for the one before).
 *
 * A page holds the stored rows as they are (fp32, fp16 or int8 bytes, plus int8 scales) and one
 * entry per document: its first element, its first scale row, its row count and a live flag
 * (`Entry` in ./maxsim.wgsl). A shard's documents lie in runs: consecutive slots of the shard,
 * consecutive entries and rows of one page. Residency follows the rules on ShardView
 * (../store/types.ts): per shard key the rows uploaded so far stay; new documents extend the
 * shard's last run in place while nothing else was written to its page since, else start a new run
 * in the open page (or a new page); deletions rewrite live flags; a shard that shrinks, or changes
 * precision or dim, is uploaded afresh. A shard that is gone frees its runs. A page whose freed
 * rows outnumber its live ones is dropped and its live runs are uploaded again into the open page,
 * so churn (compaction gives rewritten shards new keys) never leaks GPU memory.
 *
 * Rows are written at a 4-byte boundary with the few bytes before them in their shard's array, so
 * any element size and dimension works: an entry names its first element, not its first row.
 */
import { bytesPerToken, type VectorPrecision } from '../store/precision.ts';
import type { ShardView } from '../store/types.ts';

/** Bytes per stored element. */
const ELEM_BYTES = { fp32: 4, fp16: 2, int8: 1 } as const;
/** u32 words per entry (first element, first scale row, rows, live). */
const ENTRY_WORDS = 4;
/**
 * Smallest page allocated (unless `maxPageBytes` is smaller), so that one-at-a-time appends do not
 * make one buffer per document; later pages grow with the index, up to `maxPageBytes`.
 */
const MIN_PAGE_BYTES = 4 << 20;

/** A buffer of at least `size` bytes (a multiple of 4, 16 at least, as bindings need). */
export function createBuffer(device: GPUDevice, label: string, size: number, usage: number): GPUBuffer {
  return device.createBuffer({ label, size: Math.max(16, Math.ceil(size / 4) * 4), usage });
}

/** One set of buffers holding runs of documents of one precision and dim. */
export interface Page {
  readonly label: string;
  readonly precision: VectorPrecision;
  readonly dim: number;
  readonly rows: GPUBuffer;
  /** int8: one f32 per row; else a small unused buffer. */
  readonly scales: GPUBuffer;
  readonly entries: GPUBuffer;
  /** Entries written so far (the page's document slots; the shader scores every one of them). */
  entriesUsed: number;
  /** Its MaxSim bind group and the scorer generation it was made for (kept by ./gpu.ts). */
  group?: GPUBindGroup;
  groupOf?: number;
}

interface PageState extends Page {
  byteCap: number;
  scaleCap: number;
  entryCap: number;
  /** Next free byte of `rows` (a new run starts at the next multiple of 4) and next free scale row. */
  bytesUsed: number;
  scalesUsed: number;
  /** CPU copy of the entries, ENTRY_WORDS words each. */
  table: Uint32Array<ArrayBuffer>;
  /** Runs held here, in entry order. */
  runs: Run[];
  /** Rows of `runs` (bytesPerToken each) and rows written in all (freed ones included). */
  liveRows: number;
  writtenRows: number;
  /** The run written last: only it may grow in place. */
  tail: Run | undefined;
}

/** Consecutive slots of one shard in consecutive entries of one page. */
interface Run {
  owner: Resident;
  page: PageState;
  entryStart: number;
  slotStart: number;
  count: number;
  /** Byte of `rows` minus byte of the shard's packed array (a multiple of 4): same for every row of the run. */
  delta: number;
  /** Shard row of the run's first document, and rows written so far. */
  rowStart: number;
  rowCount: number;
  scaleStart: number;
}

interface Resident {
  key: string;
  precision: VectorPrecision;
  dim: number;
  /** The shard's ids as of this query (entries map back to them). */
  docIds: ShardView['docIds'];
  runs: Run[];
  /** Slots [0, docs) were uploaded; `pending` ranges among them must be uploaded again (evicted pages). */
  docs: number;
  pending: [number, number][];
  /** Shard rows uploaded (the view's offsets[docs] must still say so). */
  rows: number;
}

/** The pages of one query, in score order: page `i`'s entries score at `bases[i]`.. of the scores buffer. */
export interface PageLayout {
  pages: readonly Page[];
  bases: readonly number[];
  /** Score slots in all (every page's entries). */
  slots: number;
  /** The live document id at a score slot, or undefined (deleted, freed, or no document). */
  idAt(slot: number): string | undefined;
  /** Every live document with its score slot. */
  forEachLive(fn: (id: string, slot: number) => void): void;
}

/** Index of the last element of `sorted` whose `key` is <= `at` (sorted ascending by key; non-empty). */
function lastAtOrBefore<T>(sorted: readonly T[], at: number, key: (item: T) => number): number {
  let lo = 0;
  let hi = sorted.length - 1;
  while (lo < hi) {
    const mid = (lo + hi + 1) >> 1;
    if (key(sorted[mid]!) <= at) lo = mid;
    else hi = mid - 1;
  }
  return lo;
}

/** The resident copy of the shards of one or more indexes on one device. */
export class ResidentPages {
  private readonly residents = new Map<string, Resident>();
  private readonly pages: PageState[] = [];
  private pageCounter = 0;
  /** The scales binding of pages that have none (fp32, fp16). */
  private readonly noScales: GPUBuffer;
  /** Row and scale bytes written so far, alignment slack included. */
  uploadedBytes = 0;

  constructor(
    private readonly device: GPUDevice,
    /** Largest page buffer in bytes. */
    private readonly maxPageBytes: number,
  ) {
    this.noScales = createBuffer(device, 'colbert-web maxsim unused scales', 16, GPUBufferUsage.STORAGE);
  }

  /**
   * Makes `shards` (one query's view of the index) resident: frees shards that are gone, drops
   * pages that are mostly freed rows, uploads what is new or evicted, refreshes live flags.
   * Throws when a document does not fit one page (the scorer then falls back to the CPU).
   */
  place(shards: readonly ShardView[]): PageLayout {
    const present = new Set(shards.map((s) => s.key));
    for (const [key, r] of this.residents) {
      if (!present.has(key)) this.release(r);
    }
    for (const page of [...this.pages]) {
      if (page.liveRows * 2 < page.writtenRows && page !== this.openPage(page.precision, page.dim)) this.evict(page);
    }
    for (const shard of shards) if (shard.docIds.length) this.sync(shard);
    const pages = this.pages.filter((p) => p.entriesUsed > 0);
    const bases: number[] = [];
    let slots = 0;
    for (const p of pages) {
      bases.push(slots);
      slots += p.entriesUsed;
    }
    const idOf = (page: PageState, entry: number): string | undefined => {
      if (!page.runs.length || page.table[entry * ENTRY_WORDS + 3] === 0) return undefined;
      const run = page.runs[lastAtOrBefore(page.runs, entry, (r) => r.entryStart)]!;
      if (entry >= run.entryStart + run.count || entry < run.entryStart) return undefined;
      return run.owner.docIds[run.slotStart + entry - run.entryStart] ?? undefined;
    };
    return {
      pages,
      bases,
      slots,
      idAt: (slot) => {
        const i = lastAtOrBefore(bases, slot, (b) => b);
        return idOf(pages[i]!, slot - bases[i]!);
      },
      forEachLive: (fn) => {
        pages.forEach((page, i) => {
          for (const run of page.runs) {
            for (let j = 0; j < run.count; j++) {
              const id = page.table[(run.entryStart + j) * ENTRY_WORDS + 3] ? run.owner.docIds[run.slotStart + j] : null;
              if (id !== null && id !== undefined) fn(id, bases[i]! + run.entryStart + j);
            }
          }
        });
      },
    };
  }

  /** Pages held, and bytes of stored rows (vectors plus int8 scales) in them: live, and freed but not yet reclaimed. */
  stats(): { pages: number; rowBytes: number; freedBytes: number } {
    let rowBytes = 0;
    let freedBytes = 0;
    for (const p of this.pages) {
      rowBytes += p.liveRows * bytesPerToken(p.precision, p.dim);
      freedBytes += (p.writtenRows - p.liveRows) * bytesPerToken(p.precision, p.dim);
    }
    return { pages: this.pages.length, rowBytes, freedBytes };
  }

  /** Frees every page. */
  destroy(): void {
    for (const p of this.pages) this.destroyPage(p);
    this.pages.length = 0;
    this.residents.clear();
    this.noScales.destroy();
  }

  private destroyPage(p: PageState): void {
    p.rows.destroy();
    p.entries.destroy();
    if (p.scales !== this.noScales) p.scales.destroy();
  }

  /** The page new runs of this precision and dim go to: the newest one. */
  private openPage(precision: VectorPrecision, dim: number): PageState | undefined {
    for (let i = this.pages.length - 1; i >= 0; i--) {
      const p = this.pages[i]!;
      if (p.precision === precision && p.dim === dim) return p;
    }
    return undefined;
  }

  /** Forgets a shard: its runs' entries are marked dead, and pages left empty are freed. */
  private release(r: Resident): void {
    for (const run of r.runs) this.dropRun(run);
    this.residents.delete(r.key);
  }

  private dropRun(run: Run): void {
    const page = run.page;
    page.runs.splice(page.runs.indexOf(run), 1);
    page.liveRows -= run.rowCount;
    if (page.tail === run) page.tail = undefined;
    if (!page.runs.length) {
      this.destroyPage(page);
      this.pages.splice(this.pages.indexOf(page), 1);
      return;
    }
    const from = run.entryStart * ENTRY_WORDS;
    for (let j = 0; j < run.count; j++) page.table[from + j * ENTRY_WORDS + 3] = 0;
    this.device.queue.writeBuffer(page.entries, from * 4, page.table, from, run.count * ENTRY_WORDS);
  }

  /** Drops a page; the shards that had runs in it upload those slots again. */
  private evict(page: PageState): void {
    for (const run of [...page.runs]) {
      const owner = run.owner;
      owner.runs.splice(owner.runs.indexOf(run), 1);
      owner.pending.push([run.slotStart, run.slotStart + run.count]);
      this.dropRun(run);
    }
  }

  private sync(shard: ShardView): void {
    const { key, dim, precision, offsets, docIds } = shard;
    let r = this.residents.get(key);
    if (r && (r.precision !== precision || r.dim !== dim || r.docs > docIds.length || offsets[r.docs] !== r.rows)) {
      this.release(r);
      r = undefined;
    }
    if (!r) {
      r = { key, precision, dim, docIds, runs: [], docs: 0, pending: [], rows: 0 };
      this.residents.set(key, r);
    }
    r.docIds = docIds;
    for (const [from, to] of r.pending.splice(0)) this.upload(shard, r, from, to);
    if (r.docs < docIds.length) {
      this.upload(shard, r, r.docs, docIds.length);
      r.docs = docIds.length;
      r.rows = offsets[r.docs]!;
    }
    // Deletions: rewrite a run's entries when one of its live flags changed.
    for (const run of r.runs) {
      const table = run.page.table;
      let changed = false;
      for (let j = 0; j < run.count; j++) {
        const at = (run.entryStart + j) * ENTRY_WORDS + 3;
        const live = docIds[run.slotStart + j] === null ? 0 : 1;
        if (table[at] !== live) {
          table[at] = live;
          changed = true;
        }
      }
      if (changed) this.device.queue.writeBuffer(run.page.entries, run.entryStart * ENTRY_WORDS * 4, table, run.entryStart * ENTRY_WORDS, run.count * ENTRY_WORDS);
    }
  }

  /** Uploads slots [from, to) of `shard` as runs of `r`: extending its last run in place where it can. */
  private upload(shard: ShardView, r: Resident, from: number, to: number): void {
    const { dim, precision, offsets, docIds } = shard;
    const elem = ELEM_BYTES[precision];
    const rowBytes = dim * elem;
    const source = new Uint8Array(shard.vectors.buffer, shard.vectors.byteOffset, shard.vectors.byteLength);
    let d = from;
    while (d < to) {
      const docRows = offsets[d + 1]! - offsets[d]!;
      if (docRows * rowBytes + 8 > this.maxPageBytes) {
        throw new Error(`document slot ${d} has ${docRows} rows, more than one ${this.maxPageBytes}-byte buffer holds`);
      }
      let page = this.openPage(precision, dim);
      const last = r.runs.at(-1);
      let run = last && page && page.tail === last && last.slotStart + last.count === d ? last : undefined;
      // Where the next row goes, and whether one more document fits there.
      const fits = (p: PageState, byte: number, scale: number): boolean => byte + docRows * rowBytes <= p.byteCap && scale + docRows <= p.scaleCap && p.entriesUsed < p.entryCap;
      const runEnd = (x: Run): number => offsets[x.slotStart + x.count]! * rowBytes + x.delta;
      if (run && !fits(page!, runEnd(run), page!.scalesUsed)) run = undefined;
      if (!run) {
        const lead = (offsets[d]! * rowBytes) % 4;
        if (!page || !fits(page, Math.ceil(page.bytesUsed / 4) * 4 + lead, page.scalesUsed)) page = this.newPage(precision, dim, docRows);
        const byteStart = Math.ceil(page.bytesUsed / 4) * 4 + lead;
        run = { owner: r, page, entryStart: page.entriesUsed, slotStart: d, count: 0, delta: byteStart - offsets[d]! * rowBytes, rowStart: offsets[d]!, rowCount: 0, scaleStart: page.scalesUsed };
        page.runs.push(run);
        r.runs.push(run);
        page.tail = run;
      }
      const p = run.page;
      // Take as many following documents as fit the page.
      let end = d;
      while (end < to && end - d < p.entryCap - p.entriesUsed && offsets[end + 1]! * rowBytes + run.delta <= p.byteCap && offsets[end + 1]! - run.rowStart <= p.scaleCap - run.scaleStart) end++;
      const rowFrom = offsets[d]!;
      const rowTo = offsets[end]!;
      if (rowTo > rowFrom) {
        this.write(p.rows, source, rowFrom * rowBytes, rowTo * rowBytes, run.delta);
        if (precision === 'int8') {
          const scales = shard.scales!;
          this.write(p.scales, new Uint8Array(scales.buffer, scales.byteOffset, scales.byteLength), rowFrom * 4, rowTo * 4, (run.scaleStart - run.rowStart) * 4);
        }
      }
      const firstEntry = p.entriesUsed;
      for (let s = d; s < end; s++) {
        const at = p.entriesUsed++ * ENTRY_WORDS;
        p.table[at] = (offsets[s]! * rowBytes + run.delta) / elem;
        p.table[at + 1] = run.scaleStart + offsets[s]! - run.rowStart;
        p.table[at + 2] = offsets[s + 1]! - offsets[s]!;
        p.table[at + 3] = docIds[s] === null ? 0 : 1;
      }
      this.device.queue.writeBuffer(p.entries, firstEntry * ENTRY_WORDS * 4, p.table, firstEntry * ENTRY_WORDS, (end - d) * ENTRY_WORDS);
      run.count += end - d;
      run.rowCount += rowTo - rowFrom;
      p.liveRows += rowTo - rowFrom;
      p.writtenRows += rowTo - rowFrom;
      p.bytesUsed = rowTo * rowBytes + run.delta;
      p.scalesUsed = run.scaleStart + rowTo - run.rowStart;
      d = end;
    }
  }

  /**
   * Writes bytes [from, to) of `source` at byte `from + delta` of `buffer` (`delta` a multiple of 4),
   * starting at the 4-byte boundary before `from` and padding the length to 4 bytes. The bytes
   * pulled in before `from` are the same shard's, where the buffer holds that shard's rows already
   * or nothing yet, so nothing of another document is overwritten.
   */
  private write(buffer: GPUBuffer, source: Uint8Array, from: number, to: number, delta: number): void {
    const start = from - (from % 4);
    let data = source.subarray(start, to);
    if (data.byteLength % 4 !== 0 || data.byteOffset % 4 !== 0) {
      const padded = new Uint8Array(Math.ceil(data.byteLength / 4) * 4);
      padded.set(data);
      data = padded;
    }
    this.device.queue.writeBuffer(buffer, start + delta, data as Uint8Array<ArrayBuffer>);
    this.uploadedBytes += data.byteLength;
  }

  /** A new page for at least one document of `docRows` rows, sized to the index so far (doubling) within the limit. */
  private newPage(precision: VectorPrecision, dim: number, docRows: number): PageState {
    const rowBytes = dim * ELEM_BYTES[precision];
    let written = 0;
    for (const p of this.pages) if (p.precision === precision && p.dim === dim) written += p.writtenRows * rowBytes;
    const byteCap = Math.min(this.maxPageBytes, Math.max(docRows * rowBytes + 8, MIN_PAGE_BYTES, written));
    const scaleCap = Math.floor(byteCap / rowBytes) + 1;
    // Entries at 16 bytes each: room for documents of 4 rows on average, within the binding limit.
    const entryCap = Math.max(1, Math.min(Math.floor(this.maxPageBytes / (ENTRY_WORDS * 4)), Math.max(1024, Math.ceil(scaleCap / 4))));
    const usage = GPUBufferUsage.STORAGE | GPUBufferUsage.COPY_DST;
    const label = `colbert-web ${precision} page ${this.pageCounter++}`;
    const buffer = (what: string, size: number): GPUBuffer => createBuffer(this.device, `${label} ${what}`, size, usage);
    const page: PageState = {
      label,
      precision,
      dim,
      rows: buffer('rows', byteCap + 4),
      scales: precision === 'int8' ? buffer('scales', scaleCap * 4) : this.noScales,
      entries: buffer('entries', entryCap * ENTRY_WORDS * 4),
      entriesUsed: 0,
      byteCap,
      scaleCap,
      entryCap,
      bytesUsed: 0,
      scalesUsed: 0,
      table: new Uint32Array(entryCap * ENTRY_WORDS),
      runs: [],
      liveRows: 0,
      writtenRows: 0,
      tail: undefined,
    };
    this.pages.push(page);
    return page;
  }
}
