/**
 * What this host can do, detected once. Everything browser-only sits behind these checks.
 */

/** Frozen description of the host. */
export interface Capabilities {
  /** Running under Node.js (no DOM, no Worker global). */
  node: boolean;
  /** `new Worker(url, { type: 'module' })` is available. */
  worker: boolean;
  /** A WebGPU adapter was granted. */
  webgpu: boolean;
  /** The adapter supports `shader-f16` (needed for fp16 weights on WebGPU). */
  webgpuF16: boolean;
  /** Why WebGPU is unavailable, when it is. */
  webgpuReason?: string;
  /** SharedArrayBuffer is usable, so WASM can run on several threads (needs COOP/COEP headers). */
  crossOriginIsolated: boolean;
  /** Logical cores reported by the host. */
  hardwareConcurrency: number;
  /** IndexedDB exists. */
  indexedDB: boolean;
}

let detected: Promise<Readonly<Capabilities>> | undefined;

/** True under Node.js (also when a DOM shim is present but `window` is not). */
export function isNodeHost(): boolean {
  return (
    typeof process !== 'undefined' &&
    typeof process.versions === 'object' &&
    typeof process.versions.node === 'string' &&
    typeof (globalThis as { window?: unknown }).window === 'undefined' &&
    typeof (globalThis as { WorkerGlobalScope?: unknown }).WorkerGlobalScope === 'undefined'
  );
}

async function probeWebGPU(): Promise<{ ok: boolean; f16: boolean; reason?: string }> {
  const gpu = (globalThis.navigator as Navigator | undefined)?.gpu;
  if (!gpu) return { ok: false, f16: false, reason: 'navigator.gpu is not defined (this browser or context has no WebGPU)' };
  try {
    const adapter = await gpu.requestAdapter();
    if (!adapter) return { ok: false, f16: false, reason: 'navigator.gpu.requestAdapter() returned null (no usable GPU adapter)' };
    return { ok: true, f16: adapter.features.has('shader-f16') };
  } catch (err) {
    return { ok: false, f16: false, reason: `requestAdapter() failed: ${(err as Error).message}` };
  }
}

/** Detects the host's capabilities once; later calls return the same frozen object. */
export function detectCapabilities(): Promise<Readonly<Capabilities>> {
  detected ??= (async () => {
    const node = isNodeHost();
    const gpu = node ? { ok: false, f16: false, reason: 'WebGPU model execution is not available in Node.js' } : await probeWebGPU();
    const caps: Capabilities = {
      node,
      worker: typeof Worker !== 'undefined',
      webgpu: gpu.ok,
      webgpuF16: gpu.f16,
      crossOriginIsolated: Boolean((globalThis as { crossOriginIsolated?: boolean }).crossOriginIsolated),
      hardwareConcurrency: Math.max(1, globalThis.navigator?.hardwareConcurrency ?? 1),
      indexedDB: typeof indexedDB !== 'undefined',
    };
    if (gpu.reason !== undefined) caps.webgpuReason = gpu.reason;
    return Object.freeze(caps);
  })();
  return detected;
}

/**
 * Whether this realm can share memory with workers it starts: cross-origin isolated (COOP/COEP),
 * with SharedArrayBuffer and Worker. Synchronous, unlike {@link detectCapabilities}.
 */
export function canShareMemoryWithWorkers(): boolean {
  return (globalThis as { crossOriginIsolated?: boolean }).crossOriginIsolated === true && typeof SharedArrayBuffer === 'function' && typeof Worker === 'function';
}

/** Most CPU scoring threads chosen by default (more rarely pays: memory bandwidth runs out). */
export const MAX_DEFAULT_SCORING_THREADS = 8;

/**
 * CPU MaxSim threads by default: `min(hardwareConcurrency, 8)` where memory can be shared with
 * workers, else 1 (the calling thread only, no workers started).
 */
export function defaultScoringThreads(): number {
  if (!canShareMemoryWithWorkers()) return 1;
  return Math.max(1, Math.min(globalThis.navigator?.hardwareConcurrency ?? 1, MAX_DEFAULT_SCORING_THREADS));
}
