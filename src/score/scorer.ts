/**
 * Choosing and running the MaxSim scorer: WebGPU (./gpu.ts) where asked for or worthwhile, else the
 * CPU kernels (./simd.ts), which are also the fallback. A GPU failure (lost device, failed
 * pipeline, GPU error) switches this scorer to the CPU for the current and every later query and
 * records why; no query fails because of it.
 */
import { ColbertError } from '../errors.ts';
import type { ShardView } from '../store/types.ts';
import type { TokenMatrix } from '../types.ts';
import type { GpuResidency, GpuScorer, GpuScorerOptions } from './gpu.ts';
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
}

/** A MaxSim scorer over a store's shards, returning the top k. */
export interface Scorer {
  /** Where scoring runs now (may change from 'webgpu' to 'cpu' once, on a GPU failure). */
  readonly device: ScoringDevice;
  /** Why the GPU is not used, when it is not. */
  readonly fallbackReason: string | undefined;
  /**
   * The k best live documents of every shard `shards()` yields, best first (ties by id).
   * `shards` is a function because a GPU failure midway re-reads the shards on the CPU.
   */
  rank(query: TokenMatrix, shards: () => AsyncIterable<ShardView>, k: number): Promise<Scored[]>;
  /** Compiles what the first query needs (GPU pipeline, CPU kernel) ahead of time. */
  prepare(precision: ShardView['precision'], dim: number): Promise<void>;
  /** GPU residency while scoring runs on the GPU (for tests and diagnostics). */
  residency?(): GpuResidency | undefined;
  /** Frees GPU buffers and the scorer's own device. */
  dispose(): void;
}

/** Options of {@link createScorer}. */
export interface ScorerOptions {
  scoring?: ScoringOption;
  /** GPU scorer options (tests force small buffer segments and the top-k read-back path here). */
  gpu?: GpuScorerOptions;
  /** CPU kernel options (benchmarks compare kernels here). */
  cpu?: KernelOptions;
}

function pushLive(top: TopK, shard: ShardView, scores: Float32Array): void {
  const ids = shard.docIds;
  for (let slot = 0; slot < ids.length; slot++) {
    const id = ids[slot];
    if (id !== null && id !== undefined) top.push(id, scores[slot]!);
  }
}

/** The CPU scorer: the fastest kernel this realm has, streaming shard by shard. */
export class CpuScorer implements Scorer {
  readonly device = 'cpu' as const;
  private scratch = new Float32Array(0);
  /** The kernel of the last query ('wasm-relaxed-simd', 'wasm-simd' or 'js'). */
  kernel: MaxSimKernel['name'] | undefined;

  constructor(
    readonly fallbackReason: string | undefined,
    private readonly options: KernelOptions = {},
  ) {}

  async rank(query: TokenMatrix, shards: () => AsyncIterable<ShardView>, k: number): Promise<Scored[]> {
    const top = new TopK(k);
    for await (const shard of shards()) {
      const n = shard.docIds.length;
      if (n === 0) continue;
      const kernel = await loadMaxSimKernel(shard.dim, this.options);
      this.kernel = kernel.name;
      if (this.scratch.length < n) this.scratch = new Float32Array(n * 2);
      pushLive(top, shard, kernel.scoreShard(query, shard, this.scratch.subarray(0, n)));
    }
    return top.sorted();
  }

  async prepare(_precision: ShardView['precision'], dim: number): Promise<void> {
    await loadMaxSimKernel(dim, this.options);
  }

  dispose(): void {}
}

/** WebGPU first, the CPU after any GPU failure. */
class GpuFirstScorer implements Scorer {
  private gpu: GpuScorer | undefined;
  private cpu: CpuScorer | undefined;

  constructor(
    gpu: GpuScorer,
    private readonly cpuOptions: KernelOptions,
  ) {
    this.gpu = gpu;
  }

  get device(): ScoringDevice {
    return this.gpu ? 'webgpu' : 'cpu';
  }

  get fallbackReason(): string | undefined {
    return this.cpu?.fallbackReason;
  }

  private fallBack(reason: string): CpuScorer {
    this.gpu?.destroy();
    this.gpu = undefined;
    this.cpu ??= new CpuScorer(reason, this.cpuOptions);
    return this.cpu;
  }

  async rank(query: TokenMatrix, shards: () => AsyncIterable<ShardView>, k: number): Promise<Scored[]> {
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
  const cpuOptions = options.cpu ?? {};
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
