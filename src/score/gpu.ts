/**
 * MaxSim on the GPU: a WebGPU compute shader (./maxsim.wgsl) over shards that stay resident in GPU
 * buffers between queries. The scorer owns its own `GPUDevice` (never onnxruntime's).
 *
 * Residency (see ShardView in ../store/types.ts): per shard `key` the scorer keeps the rows it has
 * uploaded, in segments of whole documents, each at most `maxSegmentBytes` (the device's
 * `maxStorageBufferBindingSize` and `maxBufferSize`, or less when asked). New documents are
 * appended to the last segment or to a new one; nothing uploaded is sent again. Deletions are
 * masked by a small per-document live buffer. A shard whose rows shrink (its key would change
 * after compaction, but a shorter view under the same key is also handled) is uploaded afresh.
 *
 * Read-back ({@link GpuScorer.rankShard}): a shard of at most `fullReadbackSlots` slots sends back
 * one float per slot and the CPU picks the top k. A larger one sends back only a candidate set
 * (./topk.wgsl): first the maximum of every block of slots (`blockSlots`, fewer when k needs at
 * least 2k blocks), from which the CPU takes T, the k-th largest; then every slot scoring >= T, as
 * (slot, score) pairs. Each block maximum is a live document's score, so at least k documents
 * score >= T and every document tying the k-th best score is a candidate: the CPU's top-k (ties by
 * id) is the same as over all scores. When the candidates overflow their buffer, or fewer than k
 * blocks hold a live document, or k is so large that blocks would hold fewer than 4 slots, that
 * query reads every score instead.
 */
import { bytesPerToken } from '../store/precision.ts';
import type { ShardView } from '../store/types.ts';
import type { TokenMatrix } from '../types.ts';
import shaderSource from './maxsim.wgsl?raw';
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
/** Smallest segment allocated, so that one-at-a-time appends do not make one buffer per document. */
const MIN_SEGMENT_BYTES = 4 << 20;
/** Threads per workgroup of the top-k passes (a power of two: block_max reduces by halving). */
const TOPK_WG = 64;
/** Bytes of the top-k pass parameters. */
const TOPK_PARAMS_BYTES = 32;

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
  /** Shards of at most this many document slots read back every score (default 4096: 16 KB). */
  fullReadbackSlots?: number;
  /** Most slots per block of the block-maximum pass (default 256; fewer when k needs 2k blocks). */
  blockSlots?: number;
  /**
   * Candidate (slot, score) pairs the candidate buffer holds (default: the larger of 1024 and 8k);
   * more candidates than this make that query read every score. Tests force a tiny value.
   */
  candidateCapacity?: number;
}

/** What {@link GpuScorer.rankShard} returns: scores of every slot, or of the listed slots only. */
export interface ShardScores {
  /** Slots the scores belong to; absent when `scores` holds every slot in order. */
  slots?: Uint32Array;
  scores: Float32Array;
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
}

interface Resident {
  precision: ShardView['precision'];
  dim: number;
  segments: Segment[];
  /** Document slots uploaded so far. */
  docs: number;
  scores: GPUBuffer | undefined;
  readback: GPUBuffer | undefined;
  /** Candidate path: block maxima, candidate list (counter first) and its read-back. */
  blockMax: GPUBuffer | undefined;
  candidates: GPUBuffer | undefined;
  candidateReadback: GPUBuffer | undefined;
}

/** What {@link GpuScorer.residency} reports. */
export interface GpuResidency {
  segments: number;
  /** Bytes of stored rows resident (vectors plus int8 scales). */
  rowBytes: number;
  /** Row and scale bytes written so far, alignment slack included. */
  uploadedBytes: number;
  /** Bytes mapped back from the GPU so far (scores, block maxima, candidate lists). */
  readBackBytes: number;
  /** Shard scorings answered from a candidate set, and those that read every score. */
  candidateReads: number;
  fullReads: number;
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

/** Scores shards held resident on one GPU device. Create with {@link GpuScorer.create}. */
export class GpuScorer {
  private readonly resident = new Map<string, Resident>();
  private lostReason: string | undefined;
  private queryBuffer: GPUBuffer | undefined;
  private readonly layout: GPUBindGroupLayout;
  private readonly topkLayout: GPUBindGroupLayout;
  private readonly fullReadbackSlots: number;
  private readonly blockSlots: number;
  private readonly candidateCapacity: number | undefined;
  /** Read-back counters (see {@link GpuResidency}). */
  private readBack = 0;
  private candidateReads = 0;
  private fullReads = 0;
  private readonly dummyScales: GPUBuffer;
  /** Largest segment in bytes. */
  readonly maxSegmentBytes: number;
  /** Row and scale bytes written to the GPU so far (residency tests check appends send only new rows). */
  private uploaded = 0;
  /** Serialises scoring calls: they share per-shard score and read-back buffers. */
  private queue: Promise<unknown> = Promise.resolve();

  private constructor(
    readonly device: GPUDevice,
    options: GpuScorerOptions,
    private readonly ownsDevice: boolean,
  ) {
    const { limits } = device;
    const bindLimit = Math.min(limits.maxStorageBufferBindingSize, limits.maxBufferSize);
    this.maxSegmentBytes = Math.max(4, Math.floor(Math.min(options.maxSegmentBytes ?? bindLimit, bindLimit) / 4) * 4);
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
        { binding: 6, visibility: GPUShaderStage.COMPUTE, buffer: { type: 'uniform' } },
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

  /** A top-k pipeline ('block_max' or 'compact' entry point of ./topk.wgsl), cached per device. */
  private topkPipeline(entry: 'block_max' | 'compact'): Promise<GPUComputePipeline> {
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
    await Promise.all([this.pipeline(precision, dim, this.rowsPerPass(dim)), this.topkPipeline('block_max'), this.topkPipeline('compact')]);
  }

  private buffer(label: string, size: number, usage: number): GPUBuffer {
    return this.device.createBuffer({ label: `colbert-web ${label}`, size: Math.max(16, Math.ceil(size / 4) * 4), usage });
  }

  private freeResident(r: Resident): void {
    for (const s of r.segments) for (const b of [s.rows, s.scales, s.offsets, s.live]) if (b !== this.dummyScales) b.destroy();
    for (const b of [r.scores, r.readback, r.blockMax, r.candidates, r.candidateReadback]) b?.destroy();
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
      r = { precision, dim, segments: [], docs: 0, scores: undefined, readback: undefined, blockMax: undefined, candidates: undefined, candidateReadback: undefined };
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
        const rowCap = Math.min(maxRows, Math.max(rowsNow, Math.floor(MIN_SEGMENT_BYTES / rowBytes)));
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
    if (!r.scores || r.scores.size < docCount * 4) {
      r.scores?.destroy();
      r.readback?.destroy();
      const size = Math.max(1024, docCount * 2) * 4;
      r.scores = this.buffer(`shard ${key} scores`, size, GPUBufferUsage.STORAGE | GPUBufferUsage.COPY_SRC);
      r.readback = this.buffer(`shard ${key} scores readback`, size, GPUBufferUsage.MAP_READ | GPUBufferUsage.COPY_DST);
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
   * Scores every slot of `shard` (deleted -Infinity, zero-token 0), uploading only what is new, and
   * reads back every score. Rejects with {@link GpuScoringError} on a lost device or any GPU error.
   */
  async scoreShard(query: TokenMatrix, shard: ShardView): Promise<Float32Array> {
    return (await this.rankShard(query, shard, Infinity)).scores;
  }

  /**
   * Scores `shard` and reads back what the top `k` of it needs: every score for a small shard (or
   * when k is not below the slot count), else a candidate set holding every slot that scores at
   * least the k-th best live score (ties included). Rejects with {@link GpuScoringError} on a lost
   * device or any GPU error.
   */
  rankShard(query: TokenMatrix, shard: ShardView, k: number): Promise<ShardScores> {
    const run = this.queue.then(() => this.scoreNow(query, shard, k));
    this.queue = run.catch(() => undefined);
    return run;
  }

  /** Maps `size` bytes of `buffer` from `offset`, copies them out and unmaps; counts the bytes. */
  private async mapCopy(buffer: GPUBuffer, offset: number, size: number): Promise<ArrayBuffer> {
    await buffer.mapAsync(GPUMapMode.READ, offset, size);
    try {
      return buffer.getMappedRange(offset, size).slice(0);
    } finally {
      buffer.unmap();
      this.readBack += size;
    }
  }

  private async scoreNow(query: TokenMatrix, shard: ShardView, k: number): Promise<ShardScores> {
    if (this.lostReason) throw new GpuScoringError(this.lostReason);
    const { device } = this;
    const { dim, precision } = shard;
    const docCount = shard.docIds.length;
    if (docCount === 0) return { scores: new Float32Array(0) };
    device.pushErrorScope('out-of-memory');
    device.pushErrorScope('validation');
    const made: GPUBuffer[] = [];
    const mapped = new Set<GPUBuffer>();
    try {
      const qRows = this.rowsPerPass(dim);
      const pipeline = await this.pipeline(precision, dim, qRows);
      // At least 2k blocks, so that the k-th block maximum sits near the k-th best score (about
      // 1.4k candidates on random scores); blocks of fewer than 4 slots would read back as much as
      // every score, and small shards are cheap to read whole.
      const block = Math.min(this.blockSlots, Math.floor(docCount / (2 * k)));
      const blocks = block > 0 ? Math.ceil(docCount / block) : 0;
      const candidates = docCount > this.fullReadbackSlots && k >= 1 && block >= Math.min(4, this.blockSlots);
      const [blockMaxPipeline, compactPipeline] = candidates ? await Promise.all([this.topkPipeline('block_max'), this.topkPipeline('compact')]) : [];
      const r = this.sync(shard);
      const qBytes = Math.max(4, query.tokens) * dim * 4;
      if (!this.queryBuffer || this.queryBuffer.size < qBytes) {
        this.queryBuffer?.destroy();
        this.queryBuffer = this.buffer('query', Math.max(qBytes, 32 * dim * 4), GPUBufferUsage.STORAGE | GPUBufferUsage.COPY_DST);
      }
      if (query.tokens > 0) device.queue.writeBuffer(this.queryBuffer, 0, query.data as Float32Array<ArrayBuffer>);
      const passes = Math.max(1, Math.ceil(query.tokens / qRows));
      const dispatches = r.segments.length * passes;
      const uniforms = this.buffer('maxsim params', dispatches * UNIFORM_STRIDE, GPUBufferUsage.UNIFORM | GPUBufferUsage.COPY_DST);
      made.push(uniforms);
      const params = new Uint32Array((dispatches * UNIFORM_STRIDE) / 4);
      const encoder = device.createCommandEncoder({ label: 'colbert-web maxsim commands' });
      const pass = encoder.beginComputePass({ label: 'colbert-web maxsim pass' });
      pass.setPipeline(pipeline);
      let slot = 0;
      for (const [s, seg] of r.segments.entries()) {
        const count = seg.docEnd - seg.docStart;
        if (count === 0) continue;
        for (let p = 0; p < passes; p++, slot++) {
          const o = (slot * UNIFORM_STRIDE) / 4;
          const gridX = Math.min(count, GRID_X);
          params.set([count, seg.docStart, Math.min(qRows, Math.max(0, query.tokens - p * qRows)), p * qRows, p > 0 ? 1 : 0, seg.elemShift, gridX], o);
          const group = device.createBindGroup({
            label: `colbert-web maxsim bind group segment ${s} pass ${p}`,
            layout: this.layout,
            entries: [
              { binding: 0, resource: { buffer: this.queryBuffer } },
              { binding: 1, resource: { buffer: seg.rows } },
              { binding: 2, resource: { buffer: seg.scales } },
              { binding: 3, resource: { buffer: seg.offsets } },
              { binding: 4, resource: { buffer: seg.live } },
              { binding: 5, resource: { buffer: r.scores! } },
              { binding: 6, resource: { buffer: uniforms, offset: slot * UNIFORM_STRIDE, size: 32 } },
            ],
          });
          pass.setBindGroup(0, group);
          pass.dispatchWorkgroups(gridX, Math.ceil(count / GRID_X));
        }
      }
      pass.end();
      device.queue.writeBuffer(uniforms, 0, params);
      const readAll = async (enc: GPUCommandEncoder): Promise<ShardScores> => {
        enc.copyBufferToBuffer(r.scores!, 0, r.readback!, 0, docCount * 4);
        device.queue.submit([enc.finish({ label: 'colbert-web scores read-back command buffer' })]);
        mapped.add(r.readback!);
        const scores = new Float32Array(await this.mapCopy(r.readback!, 0, docCount * 4));
        this.fullReads++;
        return { scores };
      };
      if (!candidates) return await readAll(encoder);

      // Block maxima, read back (4 bytes per block).
      const capacity = this.candidateCapacity ?? Math.max(1024, 8 * k);
      const listBytes = 8 + capacity * 8;
      if (!r.blockMax || r.blockMax.size < blocks * 4) {
        r.blockMax?.destroy();
        r.blockMax = this.buffer(`shard ${shard.key} block maxima`, Math.ceil(r.scores!.size / 4 / block) * 4, GPUBufferUsage.STORAGE | GPUBufferUsage.COPY_SRC);
      }
      if (!r.candidates || r.candidates.size < listBytes) {
        r.candidates?.destroy();
        r.candidateReadback?.destroy();
        r.candidates = this.buffer(`shard ${shard.key} top-k candidates`, listBytes, GPUBufferUsage.STORAGE | GPUBufferUsage.COPY_SRC | GPUBufferUsage.COPY_DST);
        r.candidateReadback = this.buffer(`shard ${shard.key} top-k candidates read-back`, listBytes, GPUBufferUsage.MAP_READ | GPUBufferUsage.COPY_DST);
      }
      const topkParams = this.buffer('top-k params', TOPK_PARAMS_BYTES, GPUBufferUsage.UNIFORM | GPUBufferUsage.COPY_DST);
      made.push(topkParams);
      const blockGridX = Math.min(blocks, GRID_X);
      const compactGroups = Math.ceil(docCount / TOPK_WG);
      const compactGridX = Math.min(compactGroups, GRID_X);
      const packed = new ArrayBuffer(TOPK_PARAMS_BYTES);
      const asU32 = new Uint32Array(packed);
      asU32.set([docCount, block, 0, capacity, blockGridX, compactGridX]);
      device.queue.writeBuffer(topkParams, 0, packed);
      const topkGroup = device.createBindGroup({
        label: `colbert-web top-k bind group shard ${shard.key}`,
        layout: this.topkLayout,
        entries: [
          { binding: 0, resource: { buffer: r.scores! } },
          { binding: 1, resource: { buffer: r.blockMax } },
          { binding: 2, resource: { buffer: r.candidates } },
          { binding: 3, resource: { buffer: topkParams } },
        ],
      });
      const blockPass = encoder.beginComputePass({ label: 'colbert-web top-k block maxima pass' });
      blockPass.setPipeline(blockMaxPipeline!);
      blockPass.setBindGroup(0, topkGroup);
      blockPass.dispatchWorkgroups(blockGridX, Math.ceil(blocks / GRID_X));
      blockPass.end();
      encoder.copyBufferToBuffer(r.blockMax, 0, r.readback!, 0, blocks * 4);
      device.queue.submit([encoder.finish({ label: 'colbert-web maxsim and block maxima command buffer' })]);
      mapped.add(r.readback!);
      const maxima = new Float32Array(await this.mapCopy(r.readback!, 0, blocks * 4));
      // T: the k-th largest block maximum. Not a finite score: fewer than k blocks hold a live document.
      const threshold = maxima.sort().reverse()[k - 1]!;
      if (!Number.isFinite(threshold)) return await readAll(device.createCommandEncoder({ label: 'colbert-web scores read-back commands' }));

      // Every slot scoring >= T, read back with its counter (an 8-byte header: map offsets are multiples of 8), with room for 2k.
      new Float32Array(packed, 8, 1)[0] = threshold;
      device.queue.writeBuffer(topkParams, 0, packed);
      const first = Math.min(capacity, 2 * k);
      const compact = device.createCommandEncoder({ label: 'colbert-web top-k compaction commands' });
      compact.clearBuffer(r.candidates, 0, 8);
      const compactPass = compact.beginComputePass({ label: 'colbert-web top-k compaction pass' });
      compactPass.setPipeline(compactPipeline!);
      compactPass.setBindGroup(0, topkGroup);
      compactPass.dispatchWorkgroups(compactGridX, Math.ceil(compactGroups / GRID_X));
      compactPass.end();
      compact.copyBufferToBuffer(r.candidates, 0, r.candidateReadback!, 0, 8 + first * 8);
      device.queue.submit([compact.finish({ label: 'colbert-web top-k compaction command buffer' })]);
      mapped.add(r.candidateReadback!);
      const list = await this.mapCopy(r.candidateReadback!, 0, 8 + first * 8);
      const found = new Uint32Array(list, 0, 1)[0]!;
      // More candidates than the buffer holds (many ties at T): this query reads every score.
      if (found > capacity) return await readAll(device.createCommandEncoder({ label: 'colbert-web scores read-back commands' }));
      let entries = new Uint32Array(list, 8, 2 * Math.min(found, first));
      if (found > first) {
        const rest = device.createCommandEncoder({ label: 'colbert-web top-k candidates read-back commands' });
        rest.copyBufferToBuffer(r.candidates, 8 + first * 8, r.candidateReadback!, 8 + first * 8, (found - first) * 8);
        device.queue.submit([rest.finish({ label: 'colbert-web top-k candidates read-back command buffer' })]);
        const more = new Uint32Array(await this.mapCopy(r.candidateReadback!, 8 + first * 8, (found - first) * 8));
        const all = new Uint32Array(2 * found);
        all.set(entries);
        all.set(more, entries.length);
        entries = all;
      }
      const slots = new Uint32Array(found);
      const bits = new Uint32Array(found);
      for (let i = 0; i < found; i++) {
        slots[i] = entries[2 * i]!;
        bits[i] = entries[2 * i + 1]!;
      }
      this.candidateReads++;
      return { slots, scores: new Float32Array(bits.buffer) };
    } catch (err) {
      for (const b of mapped) if (b.mapState === 'mapped') b.unmap();
      throw new GpuScoringError(this.lostReason ?? `GPU scoring failed: ${(err as Error).message}`);
    } finally {
      for (const b of made) b.destroy();
      const [validation, memory] = await Promise.all([device.popErrorScope(), device.popErrorScope()]).catch(() => [null, null]);
      const error = validation ?? memory;
      // An error scope caught a GPU error: this call's result cannot be trusted.
      if (error) throw new GpuScoringError(`GPU scoring raised a ${validation ? 'validation' : 'out-of-memory'} error: ${error.message}`);
    }
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
    return { segments, rowBytes, uploadedBytes: this.uploaded, readBackBytes: this.readBack, candidateReads: this.candidateReads, fullReads: this.fullReads };
  }

  /** Frees every buffer; destroys the device when the scorer created it. */
  destroy(): void {
    for (const r of this.resident.values()) this.freeResident(r);
    this.resident.clear();
    this.queryBuffer?.destroy();
    this.dummyScales.destroy();
    this.lostReason ??= 'the GPU scorer was destroyed';
    if (this.ownsDevice) this.device.destroy();
  }
}
