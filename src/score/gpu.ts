/**
 * MaxSim on the GPU: a WebGPU compute shader (./maxsim.wgsl) over shards that stay resident in GPU
 * buffers between queries. The scorer owns its own `GPUDevice` (never onnxruntime's).
 *
 * Residency (see ShardView in ../store/types.ts): per shard `key` the scorer keeps the rows it has
 * uploaded, in segments of whole documents, each at most `maxSegmentBytes` (the device's
 * `maxStorageBufferBindingSize` and `maxBufferSize`, or less when asked) and no larger than the
 * shard can grow to (`ShardView.maxRows`). New documents are appended to the last segment or to a
 * new one; nothing uploaded is sent again. Deletions are masked by a small per-document live
 * buffer. A shard whose rows shrink (its key would change after compaction, but a shorter view
 * under the same key is also handled) is uploaded afresh; shards that are gone are freed.
 *
 * One query, whatever the number of shards ({@link GpuScorer.rank}): every segment of every shard
 * is dispatched into ONE scores buffer (shard after shard, one f32 per document slot), then the
 * top-k passes of ./topk.wgsl run on the GPU and a single read-back brings the answer:
 * - an index of at most `fullReadbackSlots` slots (or a k so large that blocks would hold fewer
 *   than 4 slots) reads back every score, and the CPU picks the top k;
 * - a larger one reads back only a candidate list: the maximum of every block of slots
 *   (`blockSlots`, fewer when k needs at least 2k blocks), then T, the k-th largest block maximum,
 *   selected on the GPU, then every live slot scoring >= T, as (slot, score) pairs. Each block
 *   maximum is a live document's score, so at least k documents score >= T and every document
 *   tying the k-th best score is a candidate: the CPU's top-k (ties by id) is the same as over all
 *   scores. The read-back holds the count, T and the first max(64, 4k) candidates; a longer list
 *   (many ties at T) brings the rest in a second read-back, and one that overflows its buffer
 *   (`candidateCapacity`) reads every score instead.
 */
import { bytesPerToken } from '../store/precision.ts';
import type { ShardView } from '../store/types.ts';
import type { TokenMatrix } from '../types.ts';
import shaderSource from './maxsim.wgsl?raw';
import { TopK, type Scored } from './topk.ts';
import topkSource from './topk.wgsl?raw';

const PRECISION_CODE = { fp32: 0, fp16: 1, int8: 2 } as const;
/** Bytes per stored element. */
const ELEM_BYTES = { fp32: 4, fp16: 2, int8: 1 } as const;
/** Threads per workgroup. */
const WG = 64;
/** Document rows decoded per tile. */
const TILE = 8;
/** Most workgroups per dispatch dimension (WebGPU's default limit). */
const GRID_X = 65535;
/** Uniform buffer offsets must be multiples of this (the default `minUniformBufferOffsetAlignment`). */
const UNIFORM_STRIDE = 256;
/**
 * Smallest segment allocated (unless the shard cannot grow that large), so that one-at-a-time
 * appends do not make one buffer per document.
 */
const MIN_SEGMENT_BYTES = 4 << 20;
/** Threads per workgroup of the top-k passes (a power of two: block_max reduces by halving). */
const TOPK_WG = 64;
/** Bytes of the top-k pass parameters. */
const TOPK_PARAMS_BYTES = 32;
/** The passes of ./topk.wgsl, in the order they run. */
const TOPK_ENTRIES = ['block_max', 'select', 'compact'] as const;

/** Options of {@link GpuScorer.create}. */
export interface GpuScorerOptions {
  /** A device to use instead of requesting one. */
  device?: GPUDevice;
  /** Whether {@link GpuScorer.destroy} destroys the device too. Default: only when the scorer requested it. */
  ownsDevice?: boolean;
  /**
   * Largest buffer segment in bytes (default: the device's storage binding and buffer limits).
   * Tests set a tiny value to force an index across many buffers.
   */
  maxSegmentBytes?: number;
  /** Indexes of at most this many document slots read back every score (default 4096: 16 KB). */
  fullReadbackSlots?: number;
  /** Most slots per block of the block-maximum pass (default 256; fewer when k needs 2k blocks). */
  blockSlots?: number;
  /**
   * Candidate (slot, score) pairs the candidate buffer holds (default: the larger of 1024 and 8k);
   * more candidates than this make that query read every score. Tests force a tiny value.
   */
  candidateCapacity?: number;
}

interface Segment {
  /** Shard document slots [docStart, docEnd) and rows [rowStart, rowEnd) held here. */
  docStart: number;
  docEnd: number;
  rowStart: number;
  rowEnd: number;
  /** Capacity in rows and documents. */
  rowCap: number;
  docCap: number;
  /** Stored elements before rowStart in `rows` (fp16/int8 uploads start at a 4-byte boundary). */
  elemShift: number;
  rows: GPUBuffer;
  scales: GPUBuffer;
  offsets: GPUBuffer;
  live: GPUBuffer;
  /** The live mask last uploaded, to upload only when it changes. */
  liveMask: Uint32Array;
  /** Its bind group, made for the per-query buffers of {@link GpuScorer.generation} `groupOf`. */
  group?: GPUBindGroup;
  groupOf?: number;
}

interface Resident {
  /** For GPU object labels: the shard's key. */
  label: string;
  precision: ShardView['precision'];
  dim: number;
  segments: Segment[];
  /** Document slots uploaded so far. */
  docs: number;
}

/** A shard as one query sees it: its slots start at `base` in the index-wide scores buffer. */
interface Placed {
  resident: Resident;
  docIds: ShardView['docIds'];
  base: number;
}

/** What {@link GpuScorer.residency} reports. */
export interface GpuResidency {
  segments: number;
  /** Bytes of stored rows resident (vectors plus int8 scales). */
  rowBytes: number;
  /** Row and scale bytes written so far, alignment slack included. */
  uploadedBytes: number;
  /** Bytes mapped back from the GPU so far (candidate lists, scores). */
  readBackBytes: number;
  /** Read-backs (buffer maps) so far: one per query, two when the candidate list overflowed. */
  readBacks: number;
  /** Queries answered from a candidate list, and those that read every score. */
  candidateReads: number;
  fullReads: number;
  /** Candidates those lists held, in all (tests check T through it: every live slot scoring >= T). */
  candidates: number;
}

/** Pipelines per device (a lost device takes its pipelines with it). */
const pipelineCache = new WeakMap<GPUDevice, Map<string, Promise<GPUComputePipeline>>>();

/** Why a GPU scoring call failed; the caller falls back to the CPU. */
export class GpuScoringError extends Error {
  override name = 'GpuScoringError';
}

/** Requests a device with the limits the scorer wants, as far as the adapter allows (any adapter when none is given). */
export async function requestScoringDevice(adapter?: GPUAdapter): Promise<GPUDevice> {
  if (!adapter) {
    const gpu = (globalThis.navigator as Navigator | undefined)?.gpu;
    if (!gpu) throw new GpuScoringError('navigator.gpu is not defined (this browser or context has no WebGPU)');
    const found = await gpu.requestAdapter();
    if (!found) throw new GpuScoringError('navigator.gpu.requestAdapter() returned null (no usable GPU adapter)');
    adapter = found;
  }
  const { limits } = adapter;
  return adapter.requestDevice({
    label: 'colbert-web scoring device',
    requiredLimits: {
      maxComputeWorkgroupStorageSize: limits.maxComputeWorkgroupStorageSize,
      maxStorageBufferBindingSize: limits.maxStorageBufferBindingSize,
      maxBufferSize: limits.maxBufferSize,
    },
  });
}

/**
 * Scores a whole index held resident on one GPU device, one read-back per query. Create with
 * {@link GpuScorer.create}.
 */
export class GpuScorer {
  private readonly resident = new Map<string, Resident>();
  private lostReason: string | undefined;
  /** Per-query buffers, shared by every shard and grown as needed (see {@link grown}). */
  private queryBuffer: GPUBuffer | undefined;
  private params: GPUBuffer | undefined;
  private scores: GPUBuffer | undefined;
  private scoresReadback: GPUBuffer | undefined;
  private blockMax: GPUBuffer | undefined;
  private candidates: GPUBuffer | undefined;
  private candidateReadback: GPUBuffer | undefined;
  private readonly topkParams: GPUBuffer;
  /** Bumped whenever a per-query buffer that the MaxSim bind groups name is replaced. */
  private generation = 0;
  private readonly layout: GPUBindGroupLayout;
  private readonly topkLayout: GPUBindGroupLayout;
  private readonly fullReadbackSlots: number;
  private readonly blockSlots: number;
  private readonly candidateCapacity: number | undefined;
  /** Read-back counters (see {@link GpuResidency}). */
  private readBack = 0;
  private readBacks = 0;
  private candidateReads = 0;
  private candidatesFound = 0;
  private fullReads = 0;
  private readonly dummyScales: GPUBuffer;
  /** Largest segment in bytes. */
  readonly maxSegmentBytes: number;
  /** Largest buffer one binding may name (the device's storage binding and buffer limits). */
  private readonly bindLimit: number;
  /** Row and scale bytes written to the GPU so far (residency tests check appends send only new rows). */
  private uploaded = 0;
  /** Serialises scoring calls: they share the per-query buffers. */
  private queue: Promise<unknown> = Promise.resolve();

  private constructor(
    readonly device: GPUDevice,
    options: GpuScorerOptions,
    private readonly ownsDevice: boolean,
  ) {
    const { limits } = device;
    this.bindLimit = Math.min(limits.maxStorageBufferBindingSize, limits.maxBufferSize);
    this.maxSegmentBytes = Math.max(4, Math.floor(Math.min(options.maxSegmentBytes ?? this.bindLimit, this.bindLimit) / 4) * 4);
    this.fullReadbackSlots = Math.max(0, Math.floor(options.fullReadbackSlots ?? 4096));
    this.blockSlots = Math.max(1, Math.floor(options.blockSlots ?? 256));
    this.candidateCapacity = options.candidateCapacity === undefined ? undefined : Math.max(1, Math.floor(options.candidateCapacity));
    void device.lost.then((info) => {
      this.lostReason ??= `the GPU device was lost (${info.reason}${info.message ? `: ${info.message}` : ''})`;
    });
    this.layout = device.createBindGroupLayout({
      label: 'colbert-web maxsim bind group layout',
      entries: [
        { binding: 0, visibility: GPUShaderStage.COMPUTE, buffer: { type: 'read-only-storage' } },
        { binding: 1, visibility: GPUShaderStage.COMPUTE, buffer: { type: 'read-only-storage' } },
        { binding: 2, visibility: GPUShaderStage.COMPUTE, buffer: { type: 'read-only-storage' } },
        { binding: 3, visibility: GPUShaderStage.COMPUTE, buffer: { type: 'read-only-storage' } },
        { binding: 4, visibility: GPUShaderStage.COMPUTE, buffer: { type: 'read-only-storage' } },
        { binding: 5, visibility: GPUShaderStage.COMPUTE, buffer: { type: 'storage' } },
        // Each dispatch's parameters sit at its own offset of one buffer, so a segment's bind group
        // is made once and reused by every query (see Segment.group).
        { binding: 6, visibility: GPUShaderStage.COMPUTE, buffer: { type: 'uniform', hasDynamicOffset: true } },
      ],
    });
    this.topkLayout = device.createBindGroupLayout({
      label: 'colbert-web top-k bind group layout',
      entries: [
        { binding: 0, visibility: GPUShaderStage.COMPUTE, buffer: { type: 'read-only-storage' } },
        { binding: 1, visibility: GPUShaderStage.COMPUTE, buffer: { type: 'storage' } },
        { binding: 2, visibility: GPUShaderStage.COMPUTE, buffer: { type: 'storage' } },
        { binding: 3, visibility: GPUShaderStage.COMPUTE, buffer: { type: 'uniform' } },
      ],
    });
    this.dummyScales = device.createBuffer({ label: 'colbert-web maxsim unused scales', size: 16, usage: GPUBufferUsage.STORAGE });
    this.topkParams = this.buffer('top-k params', TOPK_PARAMS_BYTES, GPUBufferUsage.UNIFORM | GPUBufferUsage.COPY_DST);
  }

  /** A scorer on the given device, or on a new device of its own. Throws when there is no adapter. */
  static async create(options: GpuScorerOptions = {}): Promise<GpuScorer> {
    const device = options.device ?? (await requestScoringDevice());
    return new GpuScorer(device, options, options.ownsDevice ?? options.device === undefined);
  }

  /** Why this scorer cannot run any more (device lost or destroyed), or undefined while it can. */
  get unusableReason(): string | undefined {
    return this.lostReason;
  }

  /** Query rows that fit workgroup memory beside a tile of document rows and the partial maxima. */
  private rowsPerPass(dim: number): number {
    const budget = this.device.limits.maxComputeWorkgroupStorageSize - TILE * dim * 4 - WG * 4;
    return Math.max(1, Math.min(32, WG, Math.floor(budget / (dim * 4))));
  }

  private pipeline(precision: ShardView['precision'], dim: number, qRows: number): Promise<GPUComputePipeline> {
    let perDevice = pipelineCache.get(this.device);
    if (!perDevice) pipelineCache.set(this.device, (perDevice = new Map()));
    const key = `${precision}:${dim}:${qRows}`;
    let pipeline = perDevice.get(key);
    if (!pipeline) {
      const module = this.device.createShaderModule({ label: 'colbert-web maxsim.wgsl', code: shaderSource });
      pipeline = this.device.createComputePipelineAsync({
        label: `colbert-web maxsim ${key}`,
        layout: this.device.createPipelineLayout({ label: 'colbert-web maxsim pipeline layout', bindGroupLayouts: [this.layout] }),
        compute: { module, entryPoint: 'main', constants: { DIM: dim, Q_ROWS: qRows, WG, TILE, PRECISION: PRECISION_CODE[precision] } },
      });
      perDevice.set(key, pipeline);
      // A failed compile must not stay cached: the next attempt (e.g. on a new device) retries.
      pipeline.catch(() => perDevice.delete(key));
    }
    return pipeline;
  }

  /** A top-k pipeline (an entry point of ./topk.wgsl), cached per device. */
  private topkPipeline(entry: 'block_max' | 'select' | 'compact'): Promise<GPUComputePipeline> {
    let perDevice = pipelineCache.get(this.device);
    if (!perDevice) pipelineCache.set(this.device, (perDevice = new Map()));
    const key = `topk:${entry}`;
    let pipeline = perDevice.get(key);
    if (!pipeline) {
      const module = this.device.createShaderModule({ label: 'colbert-web topk.wgsl', code: topkSource });
      pipeline = this.device.createComputePipelineAsync({
        label: `colbert-web top-k ${entry}`,
        layout: this.device.createPipelineLayout({ label: 'colbert-web top-k pipeline layout', bindGroupLayouts: [this.topkLayout] }),
        compute: { module, entryPoint: `${entry}_main`, constants: { WG: TOPK_WG } },
      });
      perDevice.set(key, pipeline);
      pipeline.catch(() => perDevice.delete(key));
    }
    return pipeline;
  }

  /** Compiles the pipelines for a precision and dim ahead of the first query. */
  async prepare(precision: ShardView['precision'], dim: number): Promise<void> {
    await Promise.all([this.pipeline(precision, dim, this.rowsPerPass(dim)), ...TOPK_ENTRIES.map((entry) => this.topkPipeline(entry))]);
  }

  private buffer(label: string, size: number, usage: number): GPUBuffer {
    return this.device.createBuffer({ label: `colbert-web ${label}`, size: Math.max(16, Math.ceil(size / 4) * 4), usage });
  }

  /**
   * `current` when it holds `size` bytes, else a new buffer of `size * slack` bytes, at most `cap`
   * (the old one destroyed; MaxSim bind groups made for it are stale from then on).
   */
  private grown(current: GPUBuffer | undefined, label: string, size: number, usage: number, slack = 1.5, cap = Infinity): GPUBuffer {
    if (current && current.size >= size) return current;
    current?.destroy();
    this.generation++;
    return this.buffer(label, Math.max(size, Math.min(cap, Math.ceil(size * slack))), usage);
  }

  private freeResident(r: Resident): void {
    for (const s of r.segments) for (const b of [s.rows, s.scales, s.offsets, s.live]) if (b !== this.dummyScales) b.destroy();
  }

  /** Uploads whatever the view holds beyond what is resident; returns the resident state. */
  private sync(shard: ShardView): Resident {
    const { key, dim, precision, offsets, docIds } = shard;
    let r = this.resident.get(key);
    const docCount = docIds.length;
    if (r && (r.precision !== precision || r.dim !== dim || r.docs > docCount || offsets[r.docs] !== (r.segments.at(-1)?.rowEnd ?? 0))) {
      this.freeResident(r);
      r = undefined;
    }
    if (!r) {
      r = { label: `shard ${key}`, precision, dim, segments: [], docs: 0 };
      this.resident.set(key, r);
    }
    const elem = ELEM_BYTES[precision];
    const rowBytes = dim * elem;
    const maxRows = Math.floor((this.maxSegmentBytes - 4) / rowBytes);
    const maxDocs = Math.floor(this.maxSegmentBytes / 4) - 1;
    const bytes = new Uint8Array(shard.vectors.buffer, shard.vectors.byteOffset, shard.vectors.byteLength);
    while (r.docs < docCount) {
      let seg = r.segments.at(-1);
      const docRows = offsets[r.docs + 1]! - offsets[r.docs]!;
      if (docRows > maxRows) {
        throw new GpuScoringError(`document slot ${r.docs} has ${docRows} rows, more than one ${this.maxSegmentBytes}-byte buffer holds`);
      }
      if (!seg || seg.docEnd - seg.docStart >= seg.docCap || seg.rowEnd - seg.rowStart + docRows > seg.rowCap) {
        // Take as many following documents as fit one segment, and room to grow.
        let end = r.docs;
        while (end < docCount && end - r.docs < maxDocs && offsets[end + 1]! - offsets[r.docs]! <= maxRows) end++;
        const rowsNow = offsets[end]! - offsets[r.docs]!;
        const room = (shard.maxRows ?? Infinity) - offsets[r.docs]!;
        const rowCap = Math.min(maxRows, Math.max(rowsNow, Math.min(room, Math.floor(MIN_SEGMENT_BYTES / rowBytes))));
        const docCap = Math.min(maxDocs, Math.max(end - r.docs, 1024));
        const rowStart = offsets[r.docs]!;
        const elemShift = ((rowStart * rowBytes) % 4) / elem;
        const usage = GPUBufferUsage.STORAGE | GPUBufferUsage.COPY_DST;
        const n = r.segments.length;
        seg = {
          docStart: r.docs,
          docEnd: r.docs,
          rowStart,
          rowEnd: rowStart,
          rowCap,
          docCap,
          elemShift,
          rows: this.buffer(`shard ${key} segment ${n} rows`, rowCap * rowBytes + 4, usage),
          scales: precision === 'int8' ? this.buffer(`shard ${key} segment ${n} scales`, rowCap * 4, usage) : this.dummyScales,
          offsets: this.buffer(`shard ${key} segment ${n} offsets`, (docCap + 1) * 4, usage),
          live: this.buffer(`shard ${key} segment ${n} live mask`, docCap * 4, usage),
          liveMask: new Uint32Array(0),
        };
        r.segments.push(seg);
      }
      // Append as many documents as fit the current segment, in one write per buffer.
      let end = r.docs;
      while (end < docCount && end - seg.docStart < seg.docCap && offsets[end + 1]! - seg.rowStart <= seg.rowCap) end++;
      const fromRow = seg.rowEnd;
      const toRow = offsets[end]!;
      if (toRow > fromRow) {
        const at = (fromRow - seg.rowStart) * rowBytes + seg.elemShift * elem;
        const from = fromRow * rowBytes;
        const start = Math.floor(from / 4) * 4;
        this.write(seg.rows, at - (from - start), bytes, start, toRow * rowBytes);
        if (precision === 'int8') this.write(seg.scales, (fromRow - seg.rowStart) * 4, shard.scales!, fromRow * 4, toRow * 4);
      }
      const rel = new Uint32Array(end - seg.docStart + 1);
      for (let d = seg.docStart; d <= end; d++) rel[d - seg.docStart] = offsets[d]! - seg.rowStart;
      this.device.queue.writeBuffer(seg.offsets, 0, rel);
      seg.docEnd = end;
      seg.rowEnd = toRow;
      r.docs = end;
    }
    // Deletions: re-read docIds and upload a segment's mask only when it changed.
    for (const seg of r.segments) {
      const mask = new Uint32Array(seg.docEnd - seg.docStart);
      for (let d = seg.docStart; d < seg.docEnd; d++) mask[d - seg.docStart] = docIds[d] === null ? 0 : 1;
      if (mask.length !== seg.liveMask.length || mask.some((v, i) => v !== seg.liveMask[i])) {
        if (mask.length) this.device.queue.writeBuffer(seg.live, 0, mask);
        seg.liveMask = mask;
      }
    }
    return r;
  }

  /** Writes bytes [from, to) of `source` at byte `at` of `buffer`, padding the length to 4 bytes. */
  private write(buffer: GPUBuffer, at: number, source: ArrayBufferView, from: number, to: number): void {
    const view = new Uint8Array(source.buffer, source.byteOffset, source.byteLength);
    let data = view.subarray(from, Math.min(to, view.byteLength));
    if (data.byteLength % 4 !== 0 || (source.byteOffset + from) % 4 !== 0) {
      const padded = new Uint8Array(Math.ceil(data.byteLength / 4) * 4);
      padded.set(data);
      data = padded;
    }
    this.device.queue.writeBuffer(buffer, at, data as Uint8Array<ArrayBuffer>);
    this.uploaded += data.byteLength;
  }

  /**
   * The `k` best live documents of every shard `shards` yields, best first (ties by id): uploads
   * what is new, frees shards that are gone, scores the whole index in one submission and reads
   * back once (see the header). Rejects with {@link GpuScoringError} on a lost device or any GPU
   * error; errors of the store's iteration pass through unchanged.
   */
  rank(query: TokenMatrix, shards: AsyncIterable<ShardView> | Iterable<ShardView>, k: number): Promise<Scored[]> {
    const run = this.queue.then(() => this.rankNow(query, shards, k));
    this.queue = run.catch(() => undefined);
    return run;
  }

  /** Maps `size` bytes of `buffer` from `offset`, copies them out and unmaps; counts the read-back. */
  private async mapCopy(buffer: GPUBuffer, offset: number, size: number): Promise<ArrayBuffer> {
    await buffer.mapAsync(GPUMapMode.READ, offset, size);
    try {
      return buffer.getMappedRange(offset, size).slice(0);
    } finally {
      buffer.unmap();
      this.readBack += size;
      this.readBacks++;
    }
  }

  /** Uploads and places every shard: its resident rows, and where its slots start in the scores buffer. */
  private async place(shards: AsyncIterable<ShardView> | Iterable<ShardView>): Promise<{ placed: Placed[]; slots: number }> {
    const placed: Placed[] = [];
    const keys = new Set<string>();
    let slots = 0;
    for await (const shard of shards) {
      keys.add(shard.key);
      if (shard.docIds.length === 0) continue;
      placed.push({ resident: this.sync(shard), docIds: shard.docIds, base: slots });
      slots += shard.docIds.length;
    }
    this.retain(keys);
    return { placed, slots };
  }

  private async rankNow(query: TokenMatrix, shards: AsyncIterable<ShardView> | Iterable<ShardView>, k: number): Promise<Scored[]> {
    if (this.lostReason) throw new GpuScoringError(this.lostReason);
    const { device } = this;
    device.pushErrorScope('out-of-memory');
    device.pushErrorScope('validation');
    const mapped = new Set<GPUBuffer>();
    let storeError: unknown;
    try {
      let layout: { placed: Placed[]; slots: number };
      try {
        layout = await this.place(shards);
      } catch (err) {
        // The store's own failure is the caller's to see, not a reason to leave the GPU.
        if ((err as Error).name !== 'GpuScoringError') storeError = err;
        throw err;
      }
      const { placed, slots } = layout;
      if (slots === 0 || k < 1) return [];
      if (slots * 4 > this.bindLimit) throw new GpuScoringError(`the index has ${slots} document slots; one scores buffer holds at most ${Math.floor(this.bindLimit / 4)}`);

      // At least 2k blocks, so that the k-th block maximum sits near the k-th best score (about
      // 1.4k candidates on random scores); blocks of fewer than 4 slots would read back as much as
      // every score, and small indexes are cheap to read whole.
      const block = Math.min(this.blockSlots, Math.floor(slots / (2 * k)));
      const useCandidates = slots > this.fullReadbackSlots && block >= Math.min(4, this.blockSlots);
      const encoder = device.createCommandEncoder({ label: 'colbert-web maxsim commands' });
      await this.encodeMaxSim(encoder, query, placed, slots);

      const top = new TopK(k);
      const offer = (slot: number, score: number): void => {
        // The shard holding `slot`: the last one whose base is <= slot.
        let lo = 0;
        let hi = placed.length - 1;
        while (lo < hi) {
          const mid = (lo + hi + 1) >> 1;
          if (placed[mid]!.base <= slot) lo = mid;
          else hi = mid - 1;
        }
        const id = placed[lo]!.docIds[slot - placed[lo]!.base];
        if (id !== null && id !== undefined) top.push(id, score);
      };
      const readAll = async (enc: GPUCommandEncoder): Promise<Scored[]> => {
        this.scoresReadback = this.grown(this.scoresReadback, 'scores read-back', slots * 4, GPUBufferUsage.MAP_READ | GPUBufferUsage.COPY_DST);
        enc.copyBufferToBuffer(this.scores!, 0, this.scoresReadback, 0, slots * 4);
        device.queue.submit([enc.finish({ label: 'colbert-web scores read-back command buffer' })]);
        mapped.add(this.scoresReadback);
        const scores = new Float32Array(await this.mapCopy(this.scoresReadback, 0, slots * 4));
        this.fullReads++;
        for (const { docIds, base } of placed) {
          for (let slot = 0; slot < docIds.length; slot++) {
            const id = docIds[slot];
            if (id !== null && id !== undefined) top.push(id, scores[base + slot]!);
          }
        }
        return top.sorted();
      };
      if (!useCandidates) return await readAll(encoder);

      // Block maxima, T on the GPU, then the candidates: one submission, one read-back.
      const blocks = Math.ceil(slots / block);
      const capacity = this.candidateCapacity ?? Math.max(1024, 8 * k);
      const listBytes = 8 + capacity * 8;
      this.blockMax = this.grown(this.blockMax, 'top-k block maxima', blocks * 4, GPUBufferUsage.STORAGE);
      this.candidates = this.grown(this.candidates, 'top-k candidates', listBytes, GPUBufferUsage.STORAGE | GPUBufferUsage.COPY_SRC, 1);
      this.candidateReadback = this.grown(this.candidateReadback, 'top-k candidates read-back', listBytes, GPUBufferUsage.MAP_READ | GPUBufferUsage.COPY_DST, 1);
      const [blockMaxPipeline, selectPipeline, compactPipeline] = await Promise.all(TOPK_ENTRIES.map((entry) => this.topkPipeline(entry)));
      const blockGridX = Math.min(blocks, GRID_X);
      const compactGroups = Math.ceil(slots / TOPK_WG);
      const compactGridX = Math.min(compactGroups, GRID_X);
      device.queue.writeBuffer(this.topkParams, 0, new Uint32Array([slots, block, blocks, k, capacity, blockGridX, compactGridX, 0]));
      const group = device.createBindGroup({
        label: 'colbert-web top-k bind group',
        layout: this.topkLayout,
        entries: [
          { binding: 0, resource: { buffer: this.scores! } },
          { binding: 1, resource: { buffer: this.blockMax } },
          { binding: 2, resource: { buffer: this.candidates, size: listBytes } },
          { binding: 3, resource: { buffer: this.topkParams } },
        ],
      });
      const topkPass = encoder.beginComputePass({ label: 'colbert-web top-k pass' });
      topkPass.setBindGroup(0, group);
      topkPass.setPipeline(blockMaxPipeline!);
      topkPass.dispatchWorkgroups(blockGridX, Math.ceil(blocks / GRID_X));
      topkPass.setPipeline(selectPipeline!);
      topkPass.dispatchWorkgroups(1);
      topkPass.setPipeline(compactPipeline!);
      topkPass.dispatchWorkgroups(compactGridX, Math.ceil(compactGroups / GRID_X));
      topkPass.end();
      // The counter, T and room for the candidates a query usually has (about 1.4k on random
      // scores); the rest of a longer list comes in a second read-back.
      const first = Math.min(capacity, Math.max(64, 4 * k));
      encoder.copyBufferToBuffer(this.candidates, 0, this.candidateReadback, 0, 8 + first * 8);
      device.queue.submit([encoder.finish({ label: 'colbert-web maxsim and top-k command buffer' })]);
      mapped.add(this.candidateReadback);
      const head = await this.mapCopy(this.candidateReadback, 0, 8 + first * 8);
      const found = new Uint32Array(head, 0, 1)[0]!;
      // More candidates than the buffer holds (many ties at T): this query reads every score too.
      if (found > capacity) return await readAll(device.createCommandEncoder({ label: 'colbert-web scores read-back commands' }));
      const offerAll = (list: ArrayBuffer, byteOffset: number, count: number): void => {
        const slotsOf = new Uint32Array(list, byteOffset, 2 * count);
        const scoresOf = new Float32Array(list, byteOffset, 2 * count);
        for (let i = 0; i < count; i++) offer(slotsOf[2 * i]!, scoresOf[2 * i + 1]!);
      };
      offerAll(head, 8, Math.min(found, first));
      if (found > first) {
        const rest = device.createCommandEncoder({ label: 'colbert-web top-k candidates read-back commands' });
        rest.copyBufferToBuffer(this.candidates, 8 + first * 8, this.candidateReadback, 8 + first * 8, (found - first) * 8);
        device.queue.submit([rest.finish({ label: 'colbert-web top-k candidates read-back command buffer' })]);
        offerAll(await this.mapCopy(this.candidateReadback, 8 + first * 8, (found - first) * 8), 0, found - first);
      }
      this.candidateReads++;
      this.candidatesFound += found;
      return top.sorted();
    } catch (err) {
      for (const b of mapped) if (b.mapState === 'mapped') b.unmap();
      if (storeError !== undefined) throw storeError;
      throw new GpuScoringError(this.lostReason ?? `GPU scoring failed: ${(err as Error).message}`);
    } finally {
      const [validation, memory] = await Promise.all([device.popErrorScope(), device.popErrorScope()]).catch(() => [null, null]);
      const error = validation ?? memory;
      // An error scope caught a GPU error: this call's result cannot be trusted.
      if (error && storeError === undefined) throw new GpuScoringError(`GPU scoring raised a ${validation ? 'validation' : 'out-of-memory'} error: ${error.message}`);
    }
  }

  /**
   * Records the MaxSim dispatches of every segment of every placed shard into `encoder`: one per
   * segment and query pass, each writing its documents' scores at their index-wide slots.
   */
  private async encodeMaxSim(encoder: GPUCommandEncoder, query: TokenMatrix, placed: readonly Placed[], slots: number): Promise<void> {
    const { device } = this;
    const qRows = this.rowsPerPass(query.dim);
    const passes = Math.max(1, Math.ceil(query.tokens / qRows));
    const pipelines = new Map<string, GPUComputePipeline>();
    for (const { resident } of placed) {
      const key = `${resident.precision}:${resident.dim}`;
      if (!pipelines.has(key)) pipelines.set(key, await this.pipeline(resident.precision, resident.dim, qRows));
    }
    const qBytes = Math.max(4, query.tokens) * query.dim * 4;
    this.queryBuffer = this.grown(this.queryBuffer, 'query', Math.max(qBytes, 32 * query.dim * 4), GPUBufferUsage.STORAGE | GPUBufferUsage.COPY_DST, 1);
    if (query.tokens > 0) device.queue.writeBuffer(this.queryBuffer, 0, query.data as Float32Array<ArrayBuffer>);
    this.scores = this.grown(this.scores, 'scores', Math.max(4096, slots * 4), GPUBufferUsage.STORAGE | GPUBufferUsage.COPY_SRC, 1.5, this.bindLimit);
    let dispatches = 0;
    for (const { resident } of placed) dispatches += resident.segments.length * passes;
    this.params = this.grown(this.params, 'maxsim params', dispatches * UNIFORM_STRIDE, GPUBufferUsage.UNIFORM | GPUBufferUsage.COPY_DST);
    const params = new Uint32Array((dispatches * UNIFORM_STRIDE) / 4);
    const pass = encoder.beginComputePass({ label: 'colbert-web maxsim pass' });
    let at = 0;
    for (const { resident, base } of placed) {
      pass.setPipeline(pipelines.get(`${resident.precision}:${resident.dim}`)!);
      for (const [s, seg] of resident.segments.entries()) {
        const count = seg.docEnd - seg.docStart;
        if (count === 0) continue;
        for (let p = 0; p < passes; p++, at++) {
          const gridX = Math.min(count, GRID_X);
          params.set([count, base + seg.docStart, Math.min(qRows, Math.max(0, query.tokens - p * qRows)), p * qRows, p > 0 ? 1 : 0, seg.elemShift, gridX], (at * UNIFORM_STRIDE) / 4);
          if (seg.groupOf !== this.generation) {
            seg.group = device.createBindGroup({
              label: `colbert-web maxsim bind group segment ${s} of ${resident.label}`,
              layout: this.layout,
              entries: [
                { binding: 0, resource: { buffer: this.queryBuffer } },
                { binding: 1, resource: { buffer: seg.rows } },
                { binding: 2, resource: { buffer: seg.scales } },
                { binding: 3, resource: { buffer: seg.offsets } },
                { binding: 4, resource: { buffer: seg.live } },
                { binding: 5, resource: { buffer: this.scores } },
                { binding: 6, resource: { buffer: this.params, size: 32 } },
              ],
            });
            seg.groupOf = this.generation;
          }
          pass.setBindGroup(0, seg.group!, [at * UNIFORM_STRIDE]);
          pass.dispatchWorkgroups(gridX, Math.ceil(count / GRID_X));
        }
      }
    }
    pass.end();
    device.queue.writeBuffer(this.params, 0, params.subarray(0, (at * UNIFORM_STRIDE) / 4));
  }

  /** Drops resident shards whose keys are not in `keep`. */
  retain(keep: ReadonlySet<string>): void {
    for (const [key, r] of this.resident) {
      if (!keep.has(key)) {
        this.freeResident(r);
        this.resident.delete(key);
      }
    }
  }

  /** Buffer segments, bytes of rows resident, bytes uploaded and read back so far, and how shards were read (for tests and diagnostics). */
  residency(): GpuResidency {
    let segments = 0;
    let rowBytes = 0;
    for (const r of this.resident.values()) {
      segments += r.segments.length;
      for (const s of r.segments) rowBytes += (s.rowEnd - s.rowStart) * bytesPerToken(r.precision, r.dim);
    }
    return { segments, rowBytes, uploadedBytes: this.uploaded, readBackBytes: this.readBack, readBacks: this.readBacks, candidateReads: this.candidateReads, fullReads: this.fullReads, candidates: this.candidatesFound };
  }

  /** Frees every buffer; destroys the device when the scorer created it. */
  destroy(): void {
    for (const r of this.resident.values()) this.freeResident(r);
    this.resident.clear();
    for (const b of [this.queryBuffer, this.params, this.scores, this.scoresReadback, this.blockMax, this.candidates, this.candidateReadback]) b?.destroy();
    this.topkParams.destroy();
    this.dummyScales.destroy();
    this.lostReason ??= 'the GPU scorer was destroyed';
    if (this.ownsDevice) this.device.destroy();
  }
}
