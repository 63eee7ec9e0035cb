/**
 * The compressed index's scoring stages on WebGPU (./compressed.wgsl), the GPU twins of
 * ./compressed-ref.ts, on a device the caller gives (as ./gpu.ts takes one).
 *
 * {@link CompressedGpuIndex} keeps one index's arrays resident: the codec's centroids (its IEEE
 * halves as they are, two per u32, read with unpack2x16float) and bucket weights, then per token its centroid code (two u16 per word when there are at most 65,536
 * centroids, else u32) and its residual bytes (back to back, as u32 words), and per document its
 * first token and token count. {@link CompressedGpuIndex.append} sends only the new documents (a
 * buffer that must grow is copied on the GPU, never re-sent); {@link CompressedGpuIndex.destroy}
 * frees everything. Documents are numbered in append order from 0: the candidates of the scoring
 * calls are those numbers.
 *
 * One query: {@link CompressedGpuIndex.centroidScores} computes S (query rows x centroids) into a
 * buffer that stays on the GPU in the returned {@link GpuCentroidScores}; then, each one dispatch
 * and one read-back:
 * - {@link CompressedGpuIndex.topCentroids}: the `nprobe` best centroids of every query row, best
 *   first, ties by centroid index (or {@link CompressedGpuIndex.readCentroidScores} for all of S);
 * - {@link CompressedGpuIndex.centroidInteraction}: per candidate, the sum over query rows of the
 *   best S[i, code] over its tokens;
 * - {@link CompressedGpuIndex.residualScores}: per candidate, MaxSim against its tokens decoded
 *   in the shader;
 * - {@link CompressedGpuIndex.rankCandidates}: either stage, then its top-k on the GPU
 *   (./topk.wgsl), so only a short candidate list comes back.
 * Scores match the references within 1e-4 (f32 sums in the same row order). Calls are serialised;
 * every one runs inside validation and out-of-memory error scopes, and any GPU failure (a lost
 * device, a pipeline that does not compile, a GPU error, a buffer past the device's limits)
 * rejects with {@link GpuScoringError}, so the caller can answer on the CPU instead. Argument
 * mistakes (a candidate that is not a document, a code past the centroids) reject with
 * `RangeError` and change nothing.
 */
import { centroidCount, residualBytes, type ResidualBits, type ResidualCodec } from '../store/residual.ts';
import type { TokenMatrix } from '../types.ts';
import { GpuScoringError } from './gpu.ts';
import { createBuffer } from './gpu-pages.ts';
import shaderSource from './compressed.wgsl?raw';
import topkSource from './topk.wgsl?raw';

export { GpuScoringError };

/** Threads per workgroup of every entry point. */
const WG = 64;
/** Document tokens decoded per tile (residual stage). */
const TILE = 8;
/** Most workgroups per dispatch dimension (WebGPU's default limit). */
const GRID_X = 65535;
/** Most centroids {@link CompressedGpuIndex.topCentroids} returns per query row (MAX_PROBE in the shader). */
export const MAX_GPU_PROBE = 64;
/** Bytes of the shader's Params. */
const PARAMS_BYTES = 32;
/** Smallest token / document buffer allocated, so that small appends do not reallocate each time. */
const MIN_STREAM_BYTES = 64 << 10;

type Entry = 'centroid_scores' | 'top_centroids' | 'interaction' | 'residual';
/** The two candidate stages. */
export type CompressedStage = 'interaction' | 'residual';
type Stage = CompressedStage;
const STAGE_NAME = { interaction: 'centroid interaction', residual: 'residual scoring' } as const;
/** The passes of ./topk.wgsl, in the order they run. */
const TOPK_ENTRIES = ['block_max', 'select', 'compact'] as const;
/** Most candidates per block of the block-maximum pass (fewer when k needs 2k blocks). */
const TOPK_BLOCK = 256;

/** What {@link CompressedGpuIndex.rankCandidates} returns: the k best, best first, ties by position. */
export interface RankedCandidates {
  /** Positions in the candidate list given. */
  positions: Uint32Array;
  scores: Float32Array;
}

/** The `n` best of (position, score) pairs: score descending, then position ascending. */
function best(positions: Uint32Array, scores: Float32Array, n: number): RankedCandidates {
  const order = Array.from({ length: positions.length }, (_, i) => i).sort((a, b) => scores[b]! - scores[a]! || positions[a]! - positions[b]!);
  const top = order.slice(0, n);
  return { positions: Uint32Array.from(top, (i) => positions[i]!), scores: Float32Array.from(top, (i) => scores[i]!) };
}

/** Options of {@link CompressedGpuIndex.create}. */
export interface CompressedGpuOptions {
  /**
   * First size in bytes of the code, residual and document buffers, which then grow by half on
   * demand (default 64 KiB). Tests set a tiny value to make appends grow them.
   */
  initialBufferBytes?: number;
  /**
   * Most workgroups per row of a candidate dispatch's grid (default 65,535, WebGPU's limit per
   * dimension); more candidates take more rows. Tests set a small value to use many rows.
   */
  maxGridX?: number;
  /**
   * Largest buffer in bytes (default, and at most: the device's storage binding and buffer
   * limits). Tests set a tiny value to reach the limit.
   */
  maxBufferBytes?: number;
  /** {@link CompressedGpuIndex.rankCandidates} reads every score for at most this many candidates (default 4096: 16 KB). */
  fullReadbackCandidates?: number;
  /**
   * (position, score) pairs the top-k list holds (default: the larger of 1024 and 8k); a longer
   * list makes that call read every score. Tests force a tiny value.
   */
  candidateCapacity?: number;
}

/** The documents of one {@link CompressedGpuIndex.append}, in the codec's layout. */
export interface CompressedDocuments {
  /** One centroid code per token, the documents' tokens back to back. */
  codes: ArrayLike<number>;
  /** `residualBytes(dim, nbits)` bytes per token, in the same order. */
  residuals: Uint8Array;
  /** Tokens of each document (zero allowed), in order; they add up to `codes.length`. */
  tokenCounts: ArrayLike<number>;
}

/** What {@link CompressedGpuIndex.residency} reports. */
export interface CompressedGpuResidency {
  documents: number;
  tokens: number;
  /** Bits per stored code on the GPU (16 or 32). */
  codeBits: 16 | 32;
  /** Bytes of index data resident: centroids, weights, codes, residuals, document table (capacity slack excluded). */
  residentBytes: number;
  /** Bytes written from the CPU so far (the codec once, then appends; a few bytes of word alignment each). */
  uploadedBytes: number;
  /** Bytes mapped back so far, and the number of read-backs (buffer maps). */
  readBackBytes: number;
  readBacks: number;
  /** {@link CompressedGpuIndex.rankCandidates} calls answered from a GPU top-k list rather than every score. */
  candidateReads: number;
}

/** Pipelines per device (a lost device takes its pipelines with it). */
const pipelineCache = new WeakMap<GPUDevice, Map<string, Promise<GPUComputePipeline>>>();

/**
 * A byte stream in one GPU buffer that only grows at its end: appends write the new bytes (plus
 * the few of the last partial word, as writes are whole words); a full buffer is replaced by a
 * larger one filled by a GPU copy.
 */
class Stream {
  buffer: GPUBuffer;
  bytes = 0;
  /** The bytes of the last, partial word (writes must start at a multiple of 4). */
  private readonly tail = new Uint8Array(4);

  constructor(
    private readonly owner: CompressedGpuIndex,
    readonly label: string,
    size: number,
  ) {
    this.buffer = owner.makeBuffer(label, size, GPUBufferUsage.STORAGE | GPUBufferUsage.COPY_DST | GPUBufferUsage.COPY_SRC);
  }

  /** Appends `data`; returns the bytes written from the CPU. */
  append(data: Uint8Array): number {
    if (data.length === 0) return 0;
    const start = this.bytes & ~3;
    const carried = this.bytes - start;
    const end = this.bytes + data.length;
    this.reserve(end);
    const chunk = new Uint8Array(Math.ceil((carried + data.length) / 4) * 4);
    chunk.set(this.tail.subarray(0, carried));
    chunk.set(data, carried);
    this.owner.device.queue.writeBuffer(this.buffer, start, chunk);
    this.bytes = end;
    const last = end & ~3;
    this.tail.fill(0).set(chunk.subarray(last - start, end - start));
    return chunk.length;
  }

  private reserve(size: number): void {
    if (size <= this.buffer.size) return;
    const limit = this.owner.bindLimit;
    if (size > limit) throw new GpuScoringError(`the compressed index's ${this.label} need ${size} bytes; one GPU binding holds at most ${limit}`);
    const grown = this.owner.makeBuffer(this.label, Math.min(limit, Math.max(size, Math.ceil(this.buffer.size * 1.5))), this.buffer.usage);
    const encoder = this.owner.device.createCommandEncoder({ label: `colbert-web compressed ${this.label} growth commands` });
    encoder.copyBufferToBuffer(this.buffer, 0, grown, 0, Math.ceil(this.bytes / 4) * 4);
    this.owner.device.queue.submit([encoder.finish()]);
    // Destroying waits for the copy submitted above.
    this.buffer.destroy();
    this.buffer = grown;
  }
}

/**
 * S, the query-centroid scores of one query, kept on the GPU for the later stages (with the query
 * rows). Give it back with {@link release} when the query is done.
 */
export class GpuCentroidScores {
  private released = false;

  /** @internal Made by {@link CompressedGpuIndex.centroidScores}. */
  constructor(
    readonly owner: CompressedGpuIndex,
    /** Query rows and centroids: S is `queryTokens x centroids`, row-major. */
    readonly queryTokens: number,
    readonly centroids: number,
    /** @internal */ readonly query: GPUBuffer,
    /** @internal */ readonly scores: GPUBuffer,
  ) {}

  /** @internal Throws unless this is a live S of `index`. */
  check(index: CompressedGpuIndex): void {
    if (this.owner !== index) throw new RangeError('these centroid scores belong to another compressed GPU index');
    if (this.released) throw new RangeError('these centroid scores were released');
  }

  /** Frees the GPU buffers of S and the query; the handle cannot be used afterwards. */
  release(): void {
    if (this.released) return;
    this.released = true;
    this.query.destroy();
    this.scores.destroy();
  }
}

/** One compressed index resident on a GPU device, scored stage by stage. Create with {@link CompressedGpuIndex.create}. */
export class CompressedGpuIndex {
  readonly dim: number;
  readonly nbits: ResidualBits;
  /** Centroids of the codec (C). */
  readonly centroids: number;
  readonly codeBits: 16 | 32;
  /** Largest buffer one binding may name (the device's storage binding and buffer limits). */
  readonly bindLimit: number;
  /** Query rows per pass in workgroup memory (with a tile of decoded tokens beside them). */
  private readonly qRows: number;
  private readonly bytesPerToken: number;
  private readonly centroidBuffer: GPUBuffer;
  private readonly weightBuffer: GPUBuffer;
  private codes!: Stream;
  private residuals!: Stream;
  private docs!: Stream;
  private docCount = 0;
  private tokenCount = 0;
  private readonly params: GPUBuffer;
  private candidateBuffer: GPUBuffer | undefined;
  private outBuffer: GPUBuffer | undefined;
  private readback: GPUBuffer | undefined;
  private lostReason: string | undefined;
  private uploaded = 0;
  private readBackBytes = 0;
  private readBacks = 0;
  private queue: Promise<unknown> = Promise.resolve();
  private readonly gridX: number;
  private readonly fullReadbackCandidates: number;
  private readonly candidateCapacity: number | undefined;
  private blockMax: GPUBuffer | undefined;
  private topList: GPUBuffer | undefined;
  private readonly topkParams: GPUBuffer;
  /** rankCandidates calls answered from a top-k list (the rest read every score). */
  private candidateReads = 0;

  private constructor(
    readonly device: GPUDevice,
    codec: ResidualCodec,
    options: CompressedGpuOptions,
  ) {
    this.gridX = Math.max(1, Math.min(GRID_X, Math.floor(options.maxGridX ?? GRID_X)));
    this.fullReadbackCandidates = Math.max(0, Math.floor(options.fullReadbackCandidates ?? 4096));
    this.candidateCapacity = options.candidateCapacity === undefined ? undefined : Math.max(1, Math.floor(options.candidateCapacity));
    const { limits } = device;
    this.bindLimit = Math.min(limits.maxStorageBufferBindingSize, limits.maxBufferSize, Math.max(16, Math.floor(options.maxBufferBytes ?? Infinity)));
    this.dim = codec.dim;
    this.nbits = codec.nbits;
    this.centroids = centroidCount(codec);
    this.codeBits = this.centroids <= 1 << 16 ? 16 : 32;
    this.bytesPerToken = residualBytes(codec.dim, codec.nbits);
    const budget = limits.maxComputeWorkgroupStorageSize - TILE * this.dim * 4 - TILE * 4 - WG * 4 * 3 - 16 - 2 * 64 * 4;
    this.qRows = Math.max(1, Math.min(32, WG, Math.floor(budget / (this.dim * 4))));
    void device.lost.then((info) => {
      this.lostReason ??= `the GPU device was lost (${info.reason}${info.message ? `: ${info.message}` : ''})`;
    });
    this.centroidBuffer = this.makeBuffer('centroids', codec.centroids.byteLength, GPUBufferUsage.STORAGE | GPUBufferUsage.COPY_DST);
    this.weightBuffer = this.makeBuffer('bucket weights', codec.weights.byteLength, GPUBufferUsage.STORAGE | GPUBufferUsage.COPY_DST);
    this.params = this.makeBuffer('params', PARAMS_BYTES, GPUBufferUsage.UNIFORM | GPUBufferUsage.COPY_DST);
    this.topkParams = this.makeBuffer('top-k params', 32, GPUBufferUsage.UNIFORM | GPUBufferUsage.COPY_DST);
  }

  /**
   * Uploads `codec` (centroids and bucket weights) to `device` and compiles the pipelines for its
   * dim and nbits. Rejects with {@link GpuScoringError} when the GPU cannot (then nothing stays
   * allocated); `RangeError` when the codec is malformed.
   */
  static async create(device: GPUDevice, codec: ResidualCodec, options: CompressedGpuOptions = {}): Promise<CompressedGpuIndex> {
    const { dim, nbits, centroids, weights } = codec;
    if (!Number.isInteger(dim) || dim < 8 || dim % 8 !== 0) throw new RangeError(`dim must be a positive multiple of 8, not ${dim}`);
    if (nbits !== 1 && nbits !== 2 && nbits !== 4) throw new RangeError(`nbits must be 1, 2 or 4, not ${String(nbits)}`);
    if (centroids.length === 0 || centroids.length % dim !== 0) throw new RangeError(`centroids hold ${centroids.length} halves: not a positive multiple of dim ${dim}`);
    if (weights.length !== 1 << nbits) throw new RangeError(`nbits ${nbits} needs ${1 << nbits} bucket weights, not ${weights.length}`);
    device.pushErrorScope('out-of-memory');
    device.pushErrorScope('validation');
    let index: CompressedGpuIndex | undefined;
    try {
      index = new CompressedGpuIndex(device, codec, options);
      if (centroids.byteLength > index.bindLimit) throw new GpuScoringError(`${index.centroids} centroids of dim ${dim} need ${centroids.byteLength} bytes; one GPU binding holds at most ${index.bindLimit}`);
      device.queue.writeBuffer(index.centroidBuffer, 0, centroids as Uint16Array<ArrayBuffer>);
      device.queue.writeBuffer(index.weightBuffer, 0, weights as Float32Array<ArrayBuffer>);
      index.uploaded += centroids.byteLength + weights.byteLength;
      const initial = Math.max(16, Math.floor(options.initialBufferBytes ?? MIN_STREAM_BYTES));
      index.codes = new Stream(index, 'codes', initial);
      index.residuals = new Stream(index, 'residuals', initial);
      index.docs = new Stream(index, 'document table', initial);
      await Promise.all((['centroid_scores', 'top_centroids', 'interaction', 'residual'] as const).map((entry) => index!.pipeline(entry)));
    } catch (err) {
      index?.destroy();
      await popScopes(device);
      throw err instanceof GpuScoringError || err instanceof RangeError ? err : new GpuScoringError(`the compressed GPU index could not be set up: ${(err as Error).message}`);
    }
    const error = await popScopes(device);
    if (error) {
      index.destroy();
      throw new GpuScoringError(`setting up the compressed GPU index raised a GPU error: ${error.message}`);
    }
    return index;
  }

  /** Why this index cannot run any more (device lost, or destroyed), or undefined while it can. */
  get unusableReason(): string | undefined {
    return this.lostReason;
  }

  /** Documents appended so far (the candidates are numbers below this). */
  get documents(): number {
    return this.docCount;
  }

  /** Tokens appended so far. */
  get tokens(): number {
    return this.tokenCount;
  }

  /** @internal A labelled buffer of at least `size` bytes. */
  makeBuffer(label: string, size: number, usage: number): GPUBuffer {
    return createBuffer(this.device, `colbert-web compressed ${label}`, size, usage);
  }

  private pipeline(entry: Entry): Promise<GPUComputePipeline> {
    let perDevice = pipelineCache.get(this.device);
    if (!perDevice) pipelineCache.set(this.device, (perDevice = new Map()));
    // Only the overrides the entry point uses, so stages that do not depend on nbits (or dim) share pipelines.
    const all = { DIM: this.dim, NBITS: this.nbits, CODE_BITS: this.codeBits, WG, Q_ROWS: this.qRows, TILE };
    const constants: Record<string, number> =
      entry === 'centroid_scores' ? { DIM: all.DIM, WG, Q_ROWS: all.Q_ROWS } : entry === 'top_centroids' ? { WG } : entry === 'interaction' ? { WG, CODE_BITS: all.CODE_BITS } : all;
    const key = `${entry}:${Object.entries(constants).map(([name, value]) => `${name}=${value}`).join(',')}`;
    let pipeline = perDevice.get(key);
    if (!pipeline) {
      const module = this.device.createShaderModule({ label: 'colbert-web compressed.wgsl', code: shaderSource });
      pipeline = this.device.createComputePipelineAsync({
        label: `colbert-web compressed ${key}`,
        layout: 'auto',
        compute: { module, entryPoint: `${entry}_main`, constants },
      });
      perDevice.set(key, pipeline);
      // A failed compile must not stay cached: the next attempt (e.g. on a new device) retries.
      pipeline.catch(() => perDevice.delete(key));
    }
    return pipeline;
  }

  /**
   * Runs `body` after every earlier call, inside error scopes: any failure that is not the
   * caller's (RangeError) becomes a {@link GpuScoringError}.
   */
  private run<T>(what: string, body: () => Promise<T>): Promise<T> {
    const call = this.queue.then(async () => {
      if (this.lostReason) throw new GpuScoringError(this.lostReason);
      const { device } = this;
      device.pushErrorScope('out-of-memory');
      device.pushErrorScope('validation');
      let result: T;
      try {
        result = await body();
      } catch (err) {
        await popScopes(device);
        if (err instanceof RangeError || err instanceof GpuScoringError) throw err;
        throw new GpuScoringError(this.lostReason ?? `GPU ${what} failed: ${(err as Error).message}`);
      }
      const error = await popScopes(device);
      if (error && result instanceof GpuCentroidScores) result.release();
      if (error) throw new GpuScoringError(`GPU ${what} raised a ${error instanceof GPUValidationError ? 'validation' : 'GPU'} error: ${error.message}`);
      if (this.lostReason) throw new GpuScoringError(this.lostReason);
      return result;
    });
    this.queue = call.catch(() => undefined);
    return call;
  }

  /**
   * Appends documents (see {@link CompressedDocuments}); resolves to the number of the first one.
   * Only the new tokens are sent. A batch that fails validation (RangeError) changes nothing; one
   * that fails on the GPU (GpuScoringError, e.g. past the binding limit) leaves the index unusable
   * ({@link unusableReason} says why), as a lost device does.
   */
  async append(docs: CompressedDocuments): Promise<number> {
    const { codes, residuals, tokenCounts } = docs;
    let tokens = 0;
    for (let i = 0; i < tokenCounts.length; i++) {
      const n = tokenCounts[i]!;
      if (!Number.isInteger(n) || n < 0) throw new RangeError(`document ${i} of the batch has ${n} tokens`);
      tokens += n;
    }
    if (codes.length !== tokens) throw new RangeError(`the batch's documents have ${tokens} tokens but ${codes.length} codes`);
    if (residuals.length !== tokens * this.bytesPerToken) throw new RangeError(`${tokens} tokens need ${tokens * this.bytesPerToken} residual bytes, not ${residuals.length}`);
    const packed = this.codeBits === 16 ? new Uint16Array(tokens) : new Uint32Array(tokens);
    for (let j = 0; j < tokens; j++) {
      const c = codes[j]!;
      if (!Number.isInteger(c) || c < 0 || c >= this.centroids) throw new RangeError(`code ${c} of token ${j} is not a centroid (there are ${this.centroids})`);
      packed[j] = c;
    }
    const counts = Uint32Array.from(tokenCounts);
    const appended = this.run('append', async () => {
      const first = this.docCount;
      // Built in the queue: an earlier append still waiting there moves the first token.
      const table = new Uint32Array(2 * counts.length);
      let at = this.tokenCount;
      for (let i = 0; i < counts.length; i++) {
        table[2 * i] = at;
        table[2 * i + 1] = counts[i]!;
        at += counts[i]!;
      }
      // Checked before anything is written, so that a batch goes in whole or not at all.
      for (const [stream, bytes] of [[this.codes, packed.byteLength], [this.residuals, residuals.length], [this.docs, table.byteLength]] as const) {
        if (stream.bytes + bytes > this.bindLimit) throw new GpuScoringError(`the compressed index's ${stream.label} would need ${stream.bytes + bytes} bytes; one GPU binding holds at most ${this.bindLimit}`);
      }
      this.uploaded += this.codes.append(new Uint8Array(packed.buffer));
      this.uploaded += this.residuals.append(residuals);
      this.uploaded += this.docs.append(new Uint8Array(table.buffer));
      this.docCount += counts.length;
      this.tokenCount += tokens;
      return first;
    });
    // Part of a batch may be on the GPU when it fails there: the index cannot be trusted after it.
    appended.catch((err: unknown) => {
      if (err instanceof GpuScoringError) this.lostReason ??= `an append failed on the GPU, so this index is incomplete (${err.message})`;
    });
    return appended;
  }

  /** S = query rows x centroids, computed on the GPU and kept there. `query.dim` must be the codec's. */
  async centroidScores(query: TokenMatrix): Promise<GpuCentroidScores> {
    if (query.dim !== this.dim) throw new RangeError(`the query has dim ${query.dim}; the index has ${this.dim}`);
    const rows = query.tokens;
    if (!Number.isInteger(rows) || rows < 0 || query.data.length < rows * this.dim) throw new RangeError(`the query claims ${rows} rows of dim ${this.dim} but holds ${query.data.length} values`);
    return this.run('centroid scores', async () => {
      const bytes = rows * this.centroids * 4;
      if (bytes > this.bindLimit) throw new GpuScoringError(`${rows} query rows x ${this.centroids} centroids need ${bytes} bytes of scores; one GPU binding holds at most ${this.bindLimit}`);
      if (Math.ceil(this.centroids / WG) > GRID_X || Math.ceil(rows / this.qRows) > GRID_X) throw new GpuScoringError(`${rows} query rows x ${this.centroids} centroids do not fit one dispatch grid`);
      const queryBuffer = this.makeBuffer('query', rows * this.dim * 4, GPUBufferUsage.STORAGE | GPUBufferUsage.COPY_DST);
      const scores = this.makeBuffer('centroid scores', bytes, GPUBufferUsage.STORAGE | GPUBufferUsage.COPY_SRC);
      const handle = new GpuCentroidScores(this, rows, this.centroids, queryBuffer, scores);
      try {
        if (rows === 0) return handle;
        this.device.queue.writeBuffer(queryBuffer, 0, query.data as Float32Array<ArrayBuffer>, 0, rows * this.dim);
        const pipeline = await this.pipeline('centroid_scores');
        this.writeParams(rows, 0, 0, 0);
        const encoder = this.device.createCommandEncoder({ label: 'colbert-web compressed centroid scores commands' });
        const pass = encoder.beginComputePass({ label: 'colbert-web compressed centroid scores pass' });
        pass.setPipeline(pipeline);
        pass.setBindGroup(0, this.group(pipeline, 'centroid scores', { 0: queryBuffer, 1: this.centroidBuffer, 2: scores, 10: this.params }));
        pass.dispatchWorkgroups(Math.ceil(this.centroids / WG), Math.ceil(rows / this.qRows));
        pass.end();
        this.device.queue.submit([encoder.finish()]);
        return handle;
      } catch (err) {
        handle.release();
        throw err;
      }
    });
  }

  /** All of S, read back (`queryTokens * centroids` floats, row-major). */
  async readCentroidScores(s: GpuCentroidScores): Promise<Float32Array> {
    s.check(this);
    return this.run('centroid scores read-back', async () => {
      const bytes = s.queryTokens * s.centroids * 4;
      if (bytes === 0) return new Float32Array(0);
      const encoder = this.device.createCommandEncoder({ label: 'colbert-web compressed centroid scores read-back commands' });
      return new Float32Array(await this.readBack(encoder, s.scores, bytes));
    });
  }

  /**
   * The `min(nprobe, centroids)` best centroids of every query row: `queryTokens * n` indexes,
   * row-major, each row best first, ties by lower index. `nprobe` is 1 to {@link MAX_GPU_PROBE}.
   */
  async topCentroids(s: GpuCentroidScores, nprobe: number): Promise<Uint32Array> {
    s.check(this);
    if (!Number.isInteger(nprobe) || nprobe < 1 || nprobe > MAX_GPU_PROBE) throw new RangeError(`nprobe must be an integer from 1 to ${MAX_GPU_PROBE}, not ${nprobe}`);
    const n = Math.min(nprobe, s.centroids);
    return this.run('top centroids', async () => {
      const rows = s.queryTokens;
      if (rows === 0) return new Uint32Array(0);
      if (rows > GRID_X) throw new GpuScoringError(`${rows} query rows: one dispatch selects centroids for at most ${GRID_X}`);
      const pipeline = await this.pipeline('top_centroids');
      const bytes = rows * n * 4;
      this.outBuffer = this.grown(this.outBuffer, 'stage output', bytes, GPUBufferUsage.STORAGE | GPUBufferUsage.COPY_SRC);
      this.writeParams(rows, 0, 0, n);
      const encoder = this.device.createCommandEncoder({ label: 'colbert-web compressed top centroids commands' });
      const pass = encoder.beginComputePass({ label: 'colbert-web compressed top centroids pass' });
      pass.setPipeline(pipeline);
      pass.setBindGroup(0, this.group(pipeline, 'top centroids', { 2: s.scores, 9: this.outBuffer, 10: this.params }));
      pass.dispatchWorkgroups(rows);
      pass.end();
      return new Uint32Array(await this.readBack(encoder, this.outBuffer, bytes));
    });
  }

  /**
   * Centroid interaction of every candidate (document numbers, any order, repeats allowed): one
   * score each, in candidate order, as `centroidInteractionRef` defines it.
   */
  centroidInteraction(s: GpuCentroidScores, candidates: ArrayLike<number>): Promise<Float32Array> {
    return this.scoreCandidates('interaction', s, candidates);
  }

  /** Residual MaxSim of every candidate (decoded tokens), in candidate order, as `residualMaxSimRef` defines it. */
  residualScores(s: GpuCentroidScores, candidates: ArrayLike<number>): Promise<Float32Array> {
    return this.scoreCandidates('residual', s, candidates);
  }

  private async scoreCandidates(entry: Stage, s: GpuCentroidScores, candidates: ArrayLike<number>): Promise<Float32Array> {
    s.check(this);
    const list = this.candidateList(candidates);
    return this.run(STAGE_NAME[entry], async () => {
      const count = list.length;
      if (count === 0) return new Float32Array(0);
      // No query rows: every sum is empty.
      if (s.queryTokens === 0) return new Float32Array(count);
      const encoder = await this.encodeStage(entry, s, list);
      return new Float32Array(await this.readBack(encoder, this.outBuffer!, count * 4));
    });
  }

  /**
   * The `k` best candidates of a stage (`'interaction'` or `'residual'`), best first, ties by
   * position in `candidates` (pass them in ascending document order for ties by document), as
   * `positions` into `candidates` and their `scores`: the same as sorting every score the stage
   * returns. The top-k runs on the GPU (./topk.wgsl, as ./gpu.ts ranks an index): block maxima of
   * the scores, T = the k-th largest of them, every candidate scoring >= T compacted into a list,
   * one small read-back. Up to `fullReadbackCandidates` candidates (or a k so large that blocks
   * would hold fewer than 4) read back every score instead, still once; a list longer than its
   * first read-back (many ties at T) costs a second, and one overflowing its buffer reads every score.
   */
  async rankCandidates(entry: Stage, s: GpuCentroidScores, candidates: ArrayLike<number>, k: number): Promise<RankedCandidates> {
    s.check(this);
    if (!Number.isInteger(k) || k < 0) throw new RangeError(`k must be a non-negative integer, not ${k}`);
    const list = this.candidateList(candidates);
    return this.run(`${STAGE_NAME[entry]} top-k`, async () => {
      const count = list.length;
      const n = Math.min(k, count);
      if (n === 0) return { positions: new Uint32Array(0), scores: new Float32Array(0) };
      if (s.queryTokens === 0) return { positions: Uint32Array.from({ length: n }, (_, i) => i), scores: new Float32Array(n) };
      const encoder = await this.encodeStage(entry, s, list);
      const out = this.outBuffer!;
      const readAll = async (enc: GPUCommandEncoder): Promise<RankedCandidates> => {
        const scores = new Float32Array(await this.readBack(enc, out, count * 4));
        return best(Uint32Array.from({ length: count }, (_, i) => i), scores, n);
      };
      const block = Math.min(TOPK_BLOCK, Math.floor(count / (2 * n)));
      if (count <= this.fullReadbackCandidates || block < 4) return await readAll(encoder);

      const blocks = Math.ceil(count / block);
      const capacity = this.candidateCapacity ?? Math.max(1024, 8 * n);
      const listBytes = 8 + capacity * 8;
      this.blockMax = this.grown(this.blockMax, 'top-k block maxima', blocks * 4, GPUBufferUsage.STORAGE);
      this.topList = this.grown(this.topList, 'top-k candidates', listBytes, GPUBufferUsage.STORAGE | GPUBufferUsage.COPY_SRC);
      const [blockMax, select, compact] = await Promise.all(TOPK_ENTRIES.map((e) => this.topkPipeline(e)));
      const blockGridX = Math.min(blocks, GRID_X);
      const compactGroups = Math.ceil(count / WG);
      const compactGridX = Math.min(compactGroups, GRID_X);
      this.device.queue.writeBuffer(this.topkParams, 0, new Uint32Array([count, block, blocks, n, capacity, blockGridX, compactGridX, 0]));
      const pass = encoder.beginComputePass({ label: 'colbert-web compressed top-k pass' });
      pass.setPipeline(blockMax!);
      pass.setBindGroup(0, this.group(blockMax!, 'top-k block maxima', { 0: out, 1: this.blockMax, 3: this.topkParams }));
      pass.dispatchWorkgroups(blockGridX, Math.ceil(blocks / GRID_X));
      pass.setPipeline(select!);
      pass.setBindGroup(0, this.group(select!, 'top-k select', { 1: this.blockMax, 2: this.topList, 3: this.topkParams }));
      pass.dispatchWorkgroups(1);
      pass.setPipeline(compact!);
      pass.setBindGroup(0, this.group(compact!, 'top-k compact', { 0: out, 2: this.topList, 3: this.topkParams }));
      pass.dispatchWorkgroups(compactGridX, Math.ceil(compactGroups / GRID_X));
      pass.end();
      const first = Math.min(capacity, Math.max(64, 4 * n));
      const head = await this.readBack(encoder, this.topList, 8 + first * 8);
      const found = new Uint32Array(head, 0, 1)[0]!;
      // More candidates than the list holds (many ties at T): read every score.
      if (found > capacity) return await readAll(this.device.createCommandEncoder({ label: 'colbert-web compressed scores read-back commands' }));
      const pairs = new Uint32Array(2 * found);
      pairs.set(new Uint32Array(head, 8, 2 * Math.min(found, first)));
      if (found > first) {
        const rest = this.device.createCommandEncoder({ label: 'colbert-web compressed top-k candidates read-back commands' });
        pairs.set(new Uint32Array(await this.readBack(rest, this.topList, (found - first) * 8, 8 + first * 8)), 2 * first);
      }
      const positions = new Uint32Array(found);
      const scores = new Float32Array(found);
      const bits = new Float32Array(pairs.buffer);
      for (let i = 0; i < found; i++) {
        positions[i] = pairs[2 * i]!;
        scores[i] = bits[2 * i + 1]!;
      }
      this.candidateReads++;
      return best(positions, scores, n);
    });
  }

  /** Checks and copies a candidate list (document numbers). */
  private candidateList(candidates: ArrayLike<number>): Uint32Array<ArrayBuffer> {
    const list = new Uint32Array(candidates.length);
    for (let i = 0; i < list.length; i++) {
      const c = candidates[i]!;
      if (!Number.isInteger(c) || c < 0 || c >= this.docCount) throw new RangeError(`candidate ${c} is not a document of this index (it has ${this.docCount})`);
      list[i] = c;
    }
    return list;
  }

  /** Uploads the candidates and records the stage's dispatch (scores into `outBuffer`) into a new encoder. */
  private async encodeStage(entry: Stage, s: GpuCentroidScores, list: Uint32Array<ArrayBuffer>): Promise<GPUCommandEncoder> {
    const count = list.length;
    const what = STAGE_NAME[entry];
    const pipeline = await this.pipeline(entry);
    this.candidateBuffer = this.grown(this.candidateBuffer, 'candidates', count * 4, GPUBufferUsage.STORAGE | GPUBufferUsage.COPY_DST);
    this.outBuffer = this.grown(this.outBuffer, 'stage output', count * 4, GPUBufferUsage.STORAGE | GPUBufferUsage.COPY_SRC);
    this.device.queue.writeBuffer(this.candidateBuffer, 0, list);
    const gridX = Math.min(count, this.gridX);
    if (Math.ceil(count / gridX) > GRID_X) throw new GpuScoringError(`${count} candidates: one dispatch scores at most ${GRID_X * gridX}`);
    this.writeParams(s.queryTokens, count, gridX, 0);
    const buffers: Record<number, GPUBuffer> =
      entry === 'interaction'
        ? { 2: s.scores, 3: this.codes.buffer, 6: this.docs.buffer, 7: this.candidateBuffer, 8: this.outBuffer, 10: this.params }
        : { 0: s.query, 1: this.centroidBuffer, 3: this.codes.buffer, 4: this.residuals.buffer, 5: this.weightBuffer, 6: this.docs.buffer, 7: this.candidateBuffer, 8: this.outBuffer, 10: this.params };
    const encoder = this.device.createCommandEncoder({ label: `colbert-web compressed ${what} commands` });
    const pass = encoder.beginComputePass({ label: `colbert-web compressed ${what} pass` });
    pass.setPipeline(pipeline);
    pass.setBindGroup(0, this.group(pipeline, what, buffers));
    pass.dispatchWorkgroups(gridX, Math.ceil(count / gridX));
    pass.end();
    return encoder;
  }

  /** A ./topk.wgsl pipeline (its own 'auto' layout), cached per device. */
  private topkPipeline(entry: (typeof TOPK_ENTRIES)[number]): Promise<GPUComputePipeline> {
    let perDevice = pipelineCache.get(this.device);
    if (!perDevice) pipelineCache.set(this.device, (perDevice = new Map()));
    const key = `topk:${entry}:WG=${WG}`;
    let pipeline = perDevice.get(key);
    if (!pipeline) {
      const module = this.device.createShaderModule({ label: 'colbert-web topk.wgsl', code: topkSource });
      pipeline = this.device.createComputePipelineAsync({
        label: `colbert-web compressed top-k ${entry}`,
        layout: 'auto',
        compute: { module, entryPoint: `${entry}_main`, constants: { WG } },
      });
      perDevice.set(key, pipeline);
      pipeline.catch(() => perDevice.delete(key));
    }
    return pipeline;
  }

  private writeParams(queryTokens: number, candidates: number, gridX: number, nprobe: number): void {
    this.device.queue.writeBuffer(this.params, 0, new Uint32Array([queryTokens, this.centroids, candidates, gridX, nprobe, 0, 0, 0]));
  }

  private group(pipeline: GPUComputePipeline, what: string, buffers: Record<number, GPUBuffer>): GPUBindGroup {
    return this.device.createBindGroup({
      label: `colbert-web compressed ${what} bind group`,
      layout: pipeline.getBindGroupLayout(0),
      entries: Object.entries(buffers).map(([binding, buffer]) => ({ binding: Number(binding), resource: { buffer } })),
    });
  }

  /** `current` when it holds `size` bytes, else a new buffer (1.5x, within the binding limit). */
  private grown(current: GPUBuffer | undefined, label: string, size: number, usage: number): GPUBuffer {
    if (current && current.size >= size) return current;
    if (size > this.bindLimit) throw new GpuScoringError(`the compressed ${label} need ${size} bytes; one GPU binding holds at most ${this.bindLimit}`);
    current?.destroy();
    return this.makeBuffer(label, Math.min(this.bindLimit, Math.max(4096, Math.ceil(size * 1.5))), usage);
  }

  /** Copies `bytes` of `source` into the read-back buffer, submits `encoder` and maps the copy once. */
  private async readBack(encoder: GPUCommandEncoder, source: GPUBuffer, bytes: number, sourceOffset = 0): Promise<ArrayBuffer> {
    this.readback = this.grown(this.readback, 'read-back', bytes, GPUBufferUsage.MAP_READ | GPUBufferUsage.COPY_DST);
    const target = this.readback;
    encoder.copyBufferToBuffer(source, sourceOffset, target, 0, Math.ceil(bytes / 4) * 4);
    this.device.queue.submit([encoder.finish()]);
    await target.mapAsync(GPUMapMode.READ, 0, Math.ceil(bytes / 4) * 4);
    try {
      return target.getMappedRange(0, Math.ceil(bytes / 4) * 4).slice(0, bytes);
    } finally {
      target.unmap();
      this.readBackBytes += bytes;
      this.readBacks++;
    }
  }

  /** What is resident and what has moved so far (for tests and diagnostics). */
  residency(): CompressedGpuResidency {
    const codeBytes = this.tokenCount * (this.codeBits / 8);
    return {
      documents: this.docCount,
      tokens: this.tokenCount,
      codeBits: this.codeBits,
      residentBytes: this.centroids * this.dim * 2 + (1 << this.nbits) * 4 + codeBytes + this.tokenCount * this.bytesPerToken + this.docCount * 8,
      uploadedBytes: this.uploaded,
      readBackBytes: this.readBackBytes,
      readBacks: this.readBacks,
      candidateReads: this.candidateReads,
    };
  }

  /** Frees every buffer of the index (never the device, which is the caller's). Later calls reject. */
  destroy(): void {
    this.lostReason ??= 'the compressed GPU index was destroyed';
    for (const b of [this.centroidBuffer, this.weightBuffer, this.params, this.topkParams, this.blockMax, this.topList, this.candidateBuffer, this.outBuffer, this.readback, this.codes?.buffer, this.residuals?.buffer, this.docs?.buffer]) b?.destroy();
  }
}

/** Pops the validation and out-of-memory scopes pushed by a call; the first error either caught. */
async function popScopes(device: GPUDevice): Promise<GPUError | null> {
  const [validation, memory] = await Promise.all([device.popErrorScope(), device.popErrorScope()]).catch(() => [null, null]);
  return validation ?? memory;
}
