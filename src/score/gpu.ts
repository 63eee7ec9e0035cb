/**
 * MaxSim on the GPU: a WebGPU compute shader (./maxsim.wgsl) over shards that stay resident in GPU
 * buffers between queries. The scorer owns its own `GPUDevice` (never onnxruntime's).
 *
 * Residency (./gpu-pages.ts): the rows of every shard live in pages, GPU buffers of at most
 * `maxPageBytes` (the device's `maxStorageBufferBindingSize` and `maxBufferSize`, or less when
 * asked) that hold documents of any number of shards. Rows are uploaded once; new documents are
 * appended; deletions flip live flags; shards that are gone are freed and mostly-freed pages are
 * repacked.
 *
 * One query, whatever the number of shards ({@link GpuScorer.rank}): one dispatch per page (and
 * query pass) writes ONE scores buffer (page after page, one f32 per entry), then the top-k
 * passes of ./topk.wgsl run on the GPU and a single read-back brings the answer (shards the store
 * reads for one scan only, `transient`, go in batches of `streamBatchBytes` instead, one
 * submission and read-back each, every batch replacing the one before in the pages):
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
import type { ShardView } from '../store/types.ts';
import type { TokenMatrix } from '../types.ts';
import { scoreInBatches } from './batches.ts';
import { createBuffer, ResidentPages, type PageLayout } from './gpu-pages.ts';
import shaderSource from './maxsim.wgsl?raw';
import { TopK, type Scored } from './topk.ts';
import topkSource from './topk.wgsl?raw';

const PRECISION_CODE = { fp32: 0, fp16: 1, int8: 2 } as const;
/** Threads per workgroup. */
const WG = 64;
/** Document rows decoded per tile. */
const TILE = 8;
/** Most workgroups per dispatch dimension (WebGPU's default limit). */
const GRID_X = 65535;
/** Uniform buffer offsets must be multiples of this (the default `minUniformBufferOffsetAlignment`). */
const UNIFORM_STRIDE = 256;
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
   * Largest page buffer in bytes (default: the device's storage binding and buffer limits).
   * Tests set a tiny value to force an index across many pages.
   */
  maxPageBytes?: number;
  /** Indexes of at most this many document slots read back every score (default 4096: 16 KB). */
  fullReadbackSlots?: number;
  /** Most slots per block of the block-maximum pass (default 256; fewer when k needs 2k blocks). */
  blockSlots?: number;
  /**
   * Candidate (slot, score) pairs the candidate buffer holds (default: the larger of 1024 and 8k);
   * more candidates than this make that query read every score. Tests force a tiny value.
   */
  candidateCapacity?: number;
  /**
   * Bytes of rows of transient shards (read for one scan only: rows on demand) scored per
   * submission (default {@link STREAM_BATCH_BYTES}); tests force 1, one shard per batch.
   */
  streamBatchBytes?: number;
}

/** Default {@link GpuScorerOptions.streamBatchBytes}: 64 MiB, 32 segments of fp16 rows at dim 128. */
export const STREAM_BATCH_BYTES = 64 << 20;

/** What {@link GpuScorer.residency} reports. */
export interface GpuResidency {
  /** Pages (buffer sets) resident: one MaxSim dispatch each per query pass. */
  pages: number;
  /** Bytes of stored rows resident (vectors plus int8 scales). */
  rowBytes: number;
  /** Bytes of rows of shards that are gone, still in pages until those are repacked. */
  freedBytes: number;
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
  private readonly pages: ResidentPages;
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
  private readonly streamBatchBytes: number;
  /** Read-back counters (see {@link GpuResidency}). */
  private readBack = 0;
  private readBacks = 0;
  private candidateReads = 0;
  private candidatesFound = 0;
  private fullReads = 0;
  /** Largest page in bytes. */
  readonly maxPageBytes: number;
  /** Largest buffer one binding may name (the device's storage binding and buffer limits). */
  private readonly bindLimit: number;
  /** Serialises scoring calls: they share the per-query buffers. */
  private queue: Promise<unknown> = Promise.resolve();

  private constructor(
    readonly device: GPUDevice,
    options: GpuScorerOptions,
    private readonly ownsDevice: boolean,
  ) {
    const { limits } = device;
    this.bindLimit = Math.min(limits.maxStorageBufferBindingSize, limits.maxBufferSize);
    this.maxPageBytes = Math.max(4, Math.floor(Math.min(options.maxPageBytes ?? this.bindLimit, this.bindLimit) / 4) * 4);
    this.fullReadbackSlots = Math.max(0, Math.floor(options.fullReadbackSlots ?? 4096));
    this.blockSlots = Math.max(1, Math.floor(options.blockSlots ?? 256));
    this.candidateCapacity = options.candidateCapacity === undefined ? undefined : Math.max(1, Math.floor(options.candidateCapacity));
    this.streamBatchBytes = Math.max(1, Math.floor(options.streamBatchBytes ?? STREAM_BATCH_BYTES));
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
        { binding: 4, visibility: GPUShaderStage.COMPUTE, buffer: { type: 'storage' } },
        // Each dispatch's parameters sit at its own offset of one buffer, so a page's bind group is
        // made once and reused by every query (see Page.group).
        { binding: 5, visibility: GPUShaderStage.COMPUTE, buffer: { type: 'uniform', hasDynamicOffset: true } },
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
    this.topkParams = this.buffer('top-k params', TOPK_PARAMS_BYTES, GPUBufferUsage.UNIFORM | GPUBufferUsage.COPY_DST);
    this.pages = new ResidentPages(device, this.maxPageBytes);
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
    return createBuffer(this.device, `colbert-web ${label}`, size, usage);
  }

  /**
   * `current` when it holds `size` bytes, else a new buffer of `size * slack` bytes, the slack
   * never past the binding limit (the old one destroyed; MaxSim bind groups made for it are stale
   * from then on).
   */
  private grown(current: GPUBuffer | undefined, label: string, size: number, usage: number, slack = 1.5): GPUBuffer {
    if (current && current.size >= size) return current;
    current?.destroy();
    this.generation++;
    return this.buffer(label, Math.max(size, Math.min(this.bindLimit, Math.ceil(size * slack))), usage);
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


  private async rankNow(query: TokenMatrix, shards: AsyncIterable<ShardView> | Iterable<ShardView>, k: number): Promise<Scored[]> {
    if (this.lostReason) throw new GpuScoringError(this.lostReason);
    const top = new TopK(k);
    // The shards the store holds are scored in one submission; those it read for this scan only
    // (rows on demand) in batches of about `streamBatchBytes` as they come, each batch replacing
    // the one before in the pages, so that neither this page nor the GPU holds them all.
    await scoreInBatches(shards, this.streamBatchBytes, (shard) => shard.vectors.byteLength + (shard.scales?.byteLength ?? 0), (views) => this.scoreInto(query, views, k, top));
    return top.sorted();
  }

  /** Places `views` in the pages (freeing every other shard's rows) and offers their documents' scores to `top` (see the header). */
  private async scoreInto(query: TokenMatrix, views: readonly ShardView[], k: number, top: TopK): Promise<void> {
    if (this.lostReason) throw new GpuScoringError(this.lostReason);
    const { device } = this;
    device.pushErrorScope('out-of-memory');
    device.pushErrorScope('validation');
    const mapped = new Set<GPUBuffer>();
    try {
      const layout = this.pages.place(views);
      const { slots } = layout;
      if (slots === 0 || k < 1) return;
      if (slots * 4 > this.bindLimit) throw new GpuScoringError(`the index has ${slots} document slots; one scores buffer holds at most ${Math.floor(this.bindLimit / 4)}`);

      // At least 2k blocks, so that the k-th block maximum sits near the k-th best score (about
      // 1.4k candidates on random scores); blocks of fewer than 4 slots would read back as much as
      // every score, and small indexes are cheap to read whole.
      const block = Math.min(this.blockSlots, Math.floor(slots / (2 * k)));
      const useCandidates = slots > this.fullReadbackSlots && block >= Math.min(4, this.blockSlots);
      const encoder = device.createCommandEncoder({ label: 'colbert-web maxsim commands' });
      await this.encodeMaxSim(encoder, query, layout);

      const offer = (slot: number, score: number): void => {
        const id = layout.idAt(slot);
        if (id !== undefined) top.push(id, score);
      };
      const readAll = async (enc: GPUCommandEncoder): Promise<void> => {
        this.scoresReadback = this.grown(this.scoresReadback, 'scores read-back', slots * 4, GPUBufferUsage.MAP_READ | GPUBufferUsage.COPY_DST);
        enc.copyBufferToBuffer(this.scores!, 0, this.scoresReadback, 0, slots * 4);
        device.queue.submit([enc.finish({ label: 'colbert-web scores read-back command buffer' })]);
        mapped.add(this.scoresReadback);
        const scores = new Float32Array(await this.mapCopy(this.scoresReadback, 0, slots * 4));
        this.fullReads++;
        layout.forEachLive((id, slot) => top.push(id, scores[slot]!));
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
    } catch (err) {
      for (const b of mapped) if (b.mapState === 'mapped') b.unmap();
      throw new GpuScoringError(this.lostReason ?? `GPU scoring failed: ${(err as Error).message}`);
    } finally {
      const [validation, memory] = await Promise.all([device.popErrorScope(), device.popErrorScope()]).catch(() => [null, null]);
      const error = validation ?? memory;
      // An error scope caught a GPU error: this call's result cannot be trusted.
      if (error) throw new GpuScoringError(`GPU scoring raised a ${validation ? 'validation' : 'out-of-memory'} error: ${error.message}`);
    }
  }

  /**
   * Records the MaxSim dispatches of every page into `encoder`: one per page and query pass, each
   * writing its entries' scores at the page's base in the scores buffer.
   */
  private async encodeMaxSim(encoder: GPUCommandEncoder, query: TokenMatrix, layout: PageLayout): Promise<void> {
    const { device } = this;
    const { pages, bases, slots } = layout;
    const qRows = this.rowsPerPass(query.dim);
    const passes = Math.max(1, Math.ceil(query.tokens / qRows));
    const pipelines = new Map<string, GPUComputePipeline>();
    for (const page of pages) {
      const key = `${page.precision}:${page.dim}`;
      if (!pipelines.has(key)) pipelines.set(key, await this.pipeline(page.precision, page.dim, qRows));
    }
    const qBytes = Math.max(4, query.tokens) * query.dim * 4;
    this.queryBuffer = this.grown(this.queryBuffer, 'query', Math.max(qBytes, 32 * query.dim * 4), GPUBufferUsage.STORAGE | GPUBufferUsage.COPY_DST, 1);
    if (query.tokens > 0) device.queue.writeBuffer(this.queryBuffer, 0, query.data as Float32Array<ArrayBuffer>);
    this.scores = this.grown(this.scores, 'scores', Math.max(4096, slots * 4), GPUBufferUsage.STORAGE | GPUBufferUsage.COPY_SRC);
    const dispatches = pages.length * passes;
    this.params = this.grown(this.params, 'maxsim params', dispatches * UNIFORM_STRIDE, GPUBufferUsage.UNIFORM | GPUBufferUsage.COPY_DST);
    const params = new Uint32Array((dispatches * UNIFORM_STRIDE) / 4);
    const pass = encoder.beginComputePass({ label: 'colbert-web maxsim pass' });
    let at = 0;
    pages.forEach((page, i) => {
      const count = page.entriesUsed;
      pass.setPipeline(pipelines.get(`${page.precision}:${page.dim}`)!);
      if (page.groupOf !== this.generation) {
        page.group = device.createBindGroup({
          label: `${page.label} maxsim bind group`,
          layout: this.layout,
          entries: [
            { binding: 0, resource: { buffer: this.queryBuffer! } },
            { binding: 1, resource: { buffer: page.rows } },
            { binding: 2, resource: { buffer: page.scales } },
            { binding: 3, resource: { buffer: page.entries } },
            { binding: 4, resource: { buffer: this.scores! } },
            { binding: 5, resource: { buffer: this.params!, size: 32 } },
          ],
        });
        page.groupOf = this.generation;
      }
      for (let p = 0; p < passes; p++, at++) {
        const gridX = Math.min(count, GRID_X);
        params.set([count, bases[i]!, Math.min(qRows, Math.max(0, query.tokens - p * qRows)), p * qRows, p > 0 ? 1 : 0, gridX], (at * UNIFORM_STRIDE) / 4);
        pass.setBindGroup(0, page.group!, [at * UNIFORM_STRIDE]);
        pass.dispatchWorkgroups(gridX, Math.ceil(count / GRID_X));
      }
    });
    pass.end();
    device.queue.writeBuffer(this.params, 0, params.subarray(0, (at * UNIFORM_STRIDE) / 4));
  }

  /** Pages, bytes of rows resident, bytes uploaded and read back so far, and how queries were read (for tests and diagnostics). */
  residency(): GpuResidency {
    const { pages, rowBytes, freedBytes } = this.pages.stats();
    return { pages, rowBytes, freedBytes, uploadedBytes: this.pages.uploadedBytes, readBackBytes: this.readBack, readBacks: this.readBacks, candidateReads: this.candidateReads, fullReads: this.fullReads, candidates: this.candidatesFound };
  }

  /** Frees every buffer; destroys the device when the scorer created it. */
  destroy(): void {
    this.pages.destroy();
    for (const b of [this.queryBuffer, this.params, this.scores, this.scoresReadback, this.blockMax, this.candidates, this.candidateReadback]) b?.destroy();
    this.topkParams.destroy();
    this.lostReason ??= 'the GPU scorer was destroyed';
    if (this.ownsDevice) this.device.destroy();
  }
}
