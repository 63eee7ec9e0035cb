/**
 * Choosing and running the MaxSim scorer: WebGPU (./gpu.ts) where asked for or worthwhile, else the
 * CPU kernels (./simd.ts), which are also the fallback. A GPU failure (lost device, failed
 * pipeline, GPU error) switches this scorer to the CPU for the current and every later query and
 * records why; no query fails because of it.
 */
import { canShareMemoryWithWorkers, defaultScoringThreads } from '../capabilities.ts';
import { ColbertError } from '../errors.ts';
import { isShared } from '../store/precision.ts';
import type { ShardView } from '../store/types.ts';
import type { TokenMatrix } from '../types.ts';
import type { GpuResidency, GpuScorer, GpuScorerOptions } from './gpu.ts';
import { scoreInBatches } from './batches.ts';
import { MaxSimPool, PoolFailure } from './pool.ts';
import { loadMaxSimKernel, type KernelOptions, type MaxSimKernel } from './simd.ts';
import { TopK, type Scored } from './topk.ts';

/**
 * Where MaxSim runs. 'auto' (default): WebGPU on a hardware adapter, the CPU otherwise (a software
 * adapter such as SwiftShader is slower than the CPU kernel); 'webgpu': WebGPU whenever an adapter
 * exists (falls back to the CPU only if the device is lost or fails); 'cpu': never the GPU.
 */
export type ScoringOption = 'auto' | 'webgpu' | 'cpu';

/** Every scoring option, for validation. */
export const SCORING_OPTIONS: readonly ScoringOption[] = Object.freeze(['auto', 'webgpu', 'cpu']);

/** Where MaxSim runs now. */
export type ScoringDevice = 'webgpu' | 'cpu';

/** What a scorer reports about itself. */
export interface ScoringStatus {
  device: ScoringDevice;
  /** Why the GPU is not used, when it is not (absent when 'cpu' was asked for). */
  fallbackReason?: string;
  /**
   * On the CPU: threads that score a large enough index (the calling thread included); 1 where the
   * page is not cross-origin isolated, or after a sub-worker failed.
   */
  threads?: number;
  /** Why CPU scoring runs on fewer threads than asked for, when it does. */
  threadsFallbackReason?: string;
  /** With `compression`: where the compressed index's search stages run, and why not on the GPU when they do not. */
  compressed?: { device: ScoringDevice; fallbackReason?: string };
}

/** A MaxSim scorer over a store's shards, returning the top k. */
export interface Scorer {
  /** Where scoring runs now (may change from 'webgpu' to 'cpu' once, on a GPU failure). */
  readonly device: ScoringDevice;
  /** Why the GPU is not used, when it is not. */
  readonly fallbackReason: string | undefined;
  /** CPU threads that score (see {@link ScoringStatus.threads}); absent means 1. */
  readonly threads?: number | undefined;
  /** Why the CPU scores on fewer threads than asked for. */
  readonly threadsFallbackReason?: string | undefined;
  /**
   * The k best live documents of every shard `shards()` yields, best first (ties by id).
   * `shards` is a function because a GPU failure midway re-reads the shards on the CPU. With
   * `allowed`, only those documents are scored (the others cost nothing and are never returned).
   */
  rank(query: TokenMatrix, shards: () => AsyncIterable<ShardView>, k: number, allowed?: ReadonlySet<string>): Promise<Scored[]>;
  /** Compiles what the first query needs (GPU pipeline, CPU kernel) ahead of time. */
  prepare(precision: ShardView['precision'], dim: number): Promise<void>;
  /** GPU residency while scoring runs on the GPU (for tests and diagnostics). */
  residency?(): GpuResidency | undefined;
  /** The scoring device while scoring runs on the GPU (the compressed index's GPU stages share it). */
  gpuDevice?(): GPUDevice | undefined;
  /** Frees GPU buffers and the scorer's own device. */
  dispose(): void;
}

/** Options of {@link createScorer}. */
export interface ScorerOptions {
  scoring?: ScoringOption;
  /**
   * CPU threads (the calling thread plus sub-workers): a positive integer. Default
   * `min(navigator.hardwareConcurrency, 8)` where the realm is cross-origin isolated, else 1.
   */
  threads?: number;
  /** GPU scorer options (tests force small buffer segments and the top-k read-back path here). */
  gpu?: GpuScorerOptions;
  /** CPU kernel and thread options (benchmarks compare kernels here, tests inject workers). */
  cpu?: CpuScorerOptions;
}

/**
 * Below this many stored rows (all shards of a query together) the calling thread scores alone:
 * posting a query to the workers and waiting for them costs more than the split saves. Measured
 * by `npm run bench -- maxsim` (see the README's Scoring section).
 */
export const PARALLEL_MIN_ROWS = 32_768;

/** Options of {@link CpuScorer}: the kernel's, plus threads. */
export interface CpuScorerOptions extends KernelOptions {
  /**
   * Threads that score: the calling thread plus `threads - 1` sub-workers, started on the first
   * query of at least `parallelMinRows` rows whose shards are all in SharedArrayBuffers. Needs a
   * cross-origin isolated realm; elsewhere the scorer keeps to one thread and says why. Default 1.
   */
  threads?: number;
  /** Fewest stored rows a query needs to use the sub-workers. Default {@link PARALLEL_MIN_ROWS}. */
  parallelMinRows?: number;
  /** Starts sub-worker `index` (tests inject failing or killable workers). Default workers/maxsim.worker.ts. */
  spawnWorker?: (index: number) => Worker;
  /** How long sub-workers may lag behind the calling thread before they count as dead (see PoolOptions.stallMs). */
  stallMs?: number;
}

/** Checks a thread count: a positive integer. */
export function checkThreads(threads: unknown): number {
  if (typeof threads !== 'number' || !Number.isInteger(threads) || threads < 1) {
    throw new ColbertError('INVALID_ARGUMENT', `scoringThreads must be a positive integer; got ${JSON.stringify(threads)}.`, { threads });
  }
  return threads;
}

/**
 * A shard's view restricted to the documents of `allowed`: the others read as deleted slots
 * (null ids), which every kernel skips without touching their rows. Same key and rows, so GPU
 * residency and shared-memory shards stay as they are; the GPU scorer flips live flags only.
 */
export function restrictView(shard: ShardView, allowed: ReadonlySet<string>): ShardView {
  const docIds = shard.docIds.map((id) => (id !== null && allowed.has(id) ? id : null));
  return { ...shard, docIds };
}

/** The shards of `shards`, restricted to `allowed` when given. */
export function restrictShards(shards: () => AsyncIterable<ShardView>, allowed: ReadonlySet<string> | undefined): () => AsyncIterable<ShardView> {
  if (!allowed) return shards;
  return async function* () {
    for await (const shard of shards()) yield restrictView(shard, allowed);
  };
}

function pushLive(top: TopK, shard: ShardView, scores: Float32Array): void {
  const ids = shard.docIds;
  for (let slot = 0; slot < ids.length; slot++) {
    const id = ids[slot];
    if (id !== null && id !== undefined) top.push(id, scores[slot]!);
  }
}

/**
 * The CPU scorer: the fastest kernel this realm has. On one thread it streams shard by shard; with
 * several threads (./pool.ts) an index of at least `parallelMinRows` rows in shared memory is
 * split by rows between this thread and the sub-workers, with bit-identical scores: the shards
 * the store holds in one split, those it reads for the scan only (`transient`, rows on demand)
 * in batches of at least `parallelMinRows` rows as they come. A sub-worker
 * failure never fails a query: that query and every later one run on this thread, and
 * `threadsFallbackReason` says why. Queries run one at a time.
 */
export class CpuScorer implements Scorer {
  readonly device = 'cpu' as const;
  private scratch = new Float32Array(0);
  private pool: MaxSimPool | undefined;
  private queue: Promise<unknown> = Promise.resolve();
  private readonly kernelOptions: KernelOptions;
  /** The kernel of the last query ('wasm-relaxed-simd', 'wasm-simd' or 'js'). */
  kernel: MaxSimKernel['name'] | undefined;
  /** Why scoring runs on fewer threads than asked for. */
  threadsFallbackReason: string | undefined;
  /** Whether the last query was split across threads (for tests and benchmarks). */
  lastParallel = false;

  constructor(
    readonly fallbackReason: string | undefined,
    private readonly options: CpuScorerOptions = {},
  ) {
    this.kernelOptions = {};
    if (options.relaxed !== undefined) this.kernelOptions.relaxed = options.relaxed;
    if (options.wasm !== undefined) this.kernelOptions.wasm = options.wasm;
    const threads = checkThreads(options.threads ?? 1);
    if (threads > 1 && !canShareMemoryWithWorkers()) {
      this.threadsFallbackReason = `${threads} threads were asked for but this page is not cross-origin isolated (SharedArrayBuffer and workers need COOP/COEP headers), so scoring runs on one thread`;
    } else if (threads > 1) {
      const pool: ConstructorParameters<typeof MaxSimPool>[0] = { workers: threads - 1, kernel: this.kernelOptions };
      if (options.spawnWorker) pool.spawn = options.spawnWorker;
      if (options.stallMs !== undefined) pool.stallMs = options.stallMs;
      this.pool = new MaxSimPool(pool);
    }
  }

  /** Threads that score a large enough index (this one included). */
  get threads(): number {
    return this.pool ? this.pool.size + 1 : 1;
  }

  rank(query: TokenMatrix, shards: () => AsyncIterable<ShardView>, k: number, allowed?: ReadonlySet<string>): Promise<Scored[]> {
    const only = restrictShards(shards, allowed);
    const run = this.queue.then(() => this.rankNow(query, only, k));
    this.queue = run.catch(() => undefined);
    return run;
  }

  private async rankNow(query: TokenMatrix, shards: () => AsyncIterable<ShardView>, k: number): Promise<Scored[]> {
    this.lastParallel = false;
    if (!this.pool) return this.rankHere(query, shards(), k);
    const minRows = this.options.parallelMinRows ?? PARALLEL_MIN_ROWS;
    const top = new TopK(k);
    // The shards the store holds are gathered (views only, no copies) to be split at once; those
    // read for this scan only (rows on demand) in batches of at least `minRows` rows as they come.
    await scoreInBatches(shards(), minRows, (shard) => shard.offsets[shard.docIds.length]!, (views) => this.scoreInto(query, views, top, minRows));
    return top.sorted();
  }

  /**
   * Scores `views` into `top`: split across the threads when they hold at least `minRows` rows,
   * all in shared memory; else, or after a sub-worker failure, on this thread.
   */
  private async scoreInto(query: TokenMatrix, all: readonly ShardView[], top: TopK, minRows: number): Promise<void> {
    const views = all.filter((shard) => shard.docIds.length > 0);
    if (!views.length) return;
    let rows = 0;
    let shared = true;
    for (const shard of views) {
      rows += shard.offsets[shard.docIds.length]!;
      shared &&= isShared(shard.vectors) && (!shard.scales || isShared(shard.scales));
    }
    const pool = this.pool;
    if (pool && rows >= minRows && shared) {
      const kernel = await loadMaxSimKernel(views[0]!.dim, this.kernelOptions);
      this.kernel = kernel.name;
      try {
        const scores = await pool.score(query, views, kernel);
        this.lastParallel = true;
        views.forEach((shard, i) => pushLive(top, shard, scores[i]!));
        return;
      } catch (err) {
        if (!(err instanceof PoolFailure)) throw err;
        this.pool = undefined;
        this.threadsFallbackReason = `${err.message}; scoring runs on one thread from now on`;
      }
    }
    await this.scoreHere(query, views, top);
  }

  /** Scores on this thread, shard by shard. */
  private async rankHere(query: TokenMatrix, shards: AsyncIterable<ShardView> | Iterable<ShardView>, k: number): Promise<Scored[]> {
    const top = new TopK(k);
    await this.scoreHere(query, shards, top);
    return top.sorted();
  }

  /** Scores every shard of `shards` into `top` on this thread, one at a time. */
  private async scoreHere(query: TokenMatrix, shards: AsyncIterable<ShardView> | Iterable<ShardView>, top: TopK): Promise<void> {
    for await (const shard of shards) {
      const n = shard.docIds.length;
      if (n === 0) continue;
      const kernel = await loadMaxSimKernel(shard.dim, this.kernelOptions);
      this.kernel = kernel.name;
      if (this.scratch.length < n) this.scratch = new Float32Array(n * 2);
      pushLive(top, shard, kernel.scoreShard(query, shard, this.scratch.subarray(0, n)));
    }
  }

  async prepare(_precision: ShardView['precision'], dim: number): Promise<void> {
    await loadMaxSimKernel(dim, this.kernelOptions);
  }

  dispose(): void {
    this.pool?.close();
    this.pool = undefined;
  }
}

/** WebGPU first, the CPU after any GPU failure. */
class GpuFirstScorer implements Scorer {
  private gpu: GpuScorer | undefined;
  private cpu: CpuScorer | undefined;

  constructor(
    gpu: GpuScorer,
    private readonly cpuOptions: CpuScorerOptions,
  ) {
    this.gpu = gpu;
  }

  get device(): ScoringDevice {
    return this.gpu ? 'webgpu' : 'cpu';
  }

  get fallbackReason(): string | undefined {
    return this.cpu?.fallbackReason;
  }

  get threads(): number | undefined {
    return this.cpu?.threads;
  }

  /** The index was laid out for the GPU (not in shared memory), so the CPU fallback keeps to one thread. */
  get threadsFallbackReason(): string | undefined {
    if (!this.cpu || (this.cpuOptions.threads ?? 1) <= 1) return undefined;
    return `${this.cpuOptions.threads} threads were asked for, but after the GPU fallback the index is not in shared memory, so scoring runs on one thread`;
  }

  private fallBack(reason: string): CpuScorer {
    this.gpu?.destroy();
    this.gpu = undefined;
    this.cpu ??= new CpuScorer(reason, { ...this.cpuOptions, threads: 1 });
    return this.cpu;
  }

  async rank(query: TokenMatrix, all: () => AsyncIterable<ShardView>, k: number, allowed?: ReadonlySet<string>): Promise<Scored[]> {
    const shards = restrictShards(all, allowed);
    const gpu = this.gpu;
    if (gpu) {
      try {
        return await gpu.rank(query, shards(), k);
      } catch (err) {
        // Only GPU failures fall back; anything else (a store error) is the caller's to see.
        if ((err as Error).name !== 'GpuScoringError') throw err;
        this.fallBack(gpu.unusableReason ?? (err as Error).message);
      }
    }
    return this.fallBack('the GPU scorer was disposed').rank(query, shards, k);
  }

  async prepare(precision: ShardView['precision'], dim: number): Promise<void> {
    try {
      await this.gpu?.prepare(precision, dim);
    } catch (err) {
      this.fallBack(`the MaxSim pipeline failed to compile: ${(err as Error).message}`);
    }
    await loadMaxSimKernel(dim, this.cpuOptions);
  }

  residency(): GpuResidency | undefined {
    return this.gpu?.residency();
  }

  gpuDevice(): GPUDevice | undefined {
    return this.gpu?.device;
  }

  dispose(): void {
    this.gpu?.destroy();
    this.gpu = undefined;
  }
}

/** Whether an adapter is a software fallback (SwiftShader, WARP, llvmpipe). */
function isSoftwareAdapter(adapter: GPUAdapter): boolean {
  const info = adapter.info as GPUAdapterInfo & { isFallbackAdapter?: boolean };
  const legacy = (adapter as GPUAdapter & { isFallbackAdapter?: boolean }).isFallbackAdapter;
  return Boolean(info?.isFallbackAdapter ?? legacy) || /swiftshader|llvmpipe|lavapipe/i.test(`${info?.architecture ?? ''} ${info?.description ?? ''}`);
}

/**
 * Resolves the scoring option into a scorer. 'webgpu' without an adapter fails with
 * DEVICE_UNAVAILABLE (like the model's `device: 'webgpu'`); 'auto' falls back with a reason.
 */
export async function createScorer(options: ScorerOptions = {}): Promise<Scorer> {
  const scoring = options.scoring ?? 'auto';
  if (!SCORING_OPTIONS.includes(scoring)) {
    throw new ColbertError('INVALID_ARGUMENT', `Unknown scoring ${JSON.stringify(scoring)}; use 'auto', 'webgpu' or 'cpu'.`, { scoring });
  }
  const cpuOptions: CpuScorerOptions = { ...options.cpu, threads: checkThreads(options.threads ?? options.cpu?.threads ?? defaultScoringThreads()) };
  if (scoring === 'cpu') return new CpuScorer(undefined, cpuOptions);
  const unavailable = (reason: string): Scorer => {
    if (scoring === 'webgpu') {
      throw new ColbertError('DEVICE_UNAVAILABLE', `scoring 'webgpu' was requested but ${reason}. Use scoring: 'auto' to fall back to the CPU.`, { reason });
    }
    return new CpuScorer(reason, cpuOptions);
  };
  const gpuApi = (globalThis.navigator as Navigator | undefined)?.gpu;
  if (!gpuApi) return unavailable('navigator.gpu is not defined (this browser or context has no WebGPU)');
  let device = options.gpu?.device;
  if (!device) {
    let adapter: GPUAdapter | null;
    try {
      adapter = await gpuApi.requestAdapter();
    } catch (err) {
      return unavailable(`requestAdapter() failed: ${(err as Error).message}`);
    }
    if (!adapter) return unavailable('navigator.gpu.requestAdapter() returned null (no usable GPU adapter)');
    if (scoring === 'auto' && isSoftwareAdapter(adapter)) {
      return new CpuScorer('the only WebGPU adapter is a software one (e.g. SwiftShader), slower than the CPU kernel', cpuOptions);
    }
    try {
      device = await (await import('./gpu.ts')).requestScoringDevice(adapter);
    } catch (err) {
      return unavailable(`requestDevice() failed: ${(err as Error).message}`);
    }
  }
  // Loaded on demand: hosts without WebGPU (Node) never load the shader module.
  const { GpuScorer } = await import('./gpu.ts');
  const gpu = await GpuScorer.create({ ...options.gpu, device, ownsDevice: options.gpu?.device === undefined });
  return new GpuFirstScorer(gpu, cpuOptions);
}
