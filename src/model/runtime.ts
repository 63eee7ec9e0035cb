/**
 * The model runtime: @huggingface/transformers. Its `node` build runs graphs on onnxruntime-node
 * (native CPU kernels); its browser build on onnxruntime-web (WebGPU, or WASM). This file is the
 * only one that imports it, and hands the encoder a small session interface.
 *
 * colbert-web already holds the graph's bytes when it starts a session (fetched through its own
 * cache with its download progress, or converted from safetensors in the worker), so
 * `AutoModel.from_pretrained` receives them through transformers.js's custom-cache hook: for the
 * duration of one load, `env.customCache` answers the requests for one private model id with
 * those bytes, and nothing is fetched. Everything else (device and execution provider, dtype
 * checks, thread settings, the forward pass) is transformers.js's.
 */
import { AutoModel, env, Tensor, type PreTrainedModel } from '@huggingface/transformers';
import { ColbertError, toColbertError } from '../errors.ts';
import type { Device, Dtype } from '../types.ts';

/** Where the browser build of onnxruntime-web finds its `.wasm`/`.mjs` (asyncify build). */
export type WasmPaths = string | { wasm?: string; mjs?: string };

/** A float32 tensor the model returned. */
export interface RuntimeTensor {
  readonly dims: readonly number[];
  readonly type: string;
  readonly data: unknown;
  dispose(): void;
}

/** One started graph. */
export interface ModelSession {
  readonly inputNames: readonly string[];
  readonly outputNames: readonly string[];
  /** Runs the graph on int64 inputs of shape [batch, seqLen]; resolves to the named output. */
  run(inputs: Record<string, BigInt64Array>, dims: readonly [number, number], outputName: string): Promise<RuntimeTensor>;
  release(): Promise<void>;
}

/** Which onnxruntime transformers.js runs on this host. */
export function runtimeName(node: boolean): 'onnxruntime-node' | 'onnxruntime-web' {
  return node ? 'onnxruntime-node' : 'onnxruntime-web';
}

/**
 * Where Hub repo ids resolve: transformers.js's `env.remoteHost` and `env.remotePathTemplate`, so an
 * app that points transformers.js at a mirror points colbert-web there too; and whether anything
 * may be downloaded (`env.allowRemoteModels`).
 */
export function hubLocation(): { host: string; pathTemplate: string; allowRemote: boolean } {
  return { host: env.remoteHost, pathTemplate: env.remotePathTemplate, allowRemote: env.allowRemoteModels };
}

/** The @huggingface/transformers version in use. */
export function transformersVersion(): string {
  return env.version;
}

/**
 * transformers.js's device name for a library device: its Node build names the native CPU
 * provider 'cpu' (asking it for 'wasm' fails with "Unsupported device"); browsers say 'wasm'.
 */
export function runtimeDevice(device: Device, node: boolean): 'cpu' | 'wasm' | 'webgpu' {
  if (device === 'webgpu') return 'webgpu';
  return node ? 'cpu' : 'wasm';
}

let configured = false;
/**
 * Once per realm, before the first session: quiet logs, and in browsers the WASM thread count
 * and where the runtime files are. transformers.js points `wasmPaths` at a CDN when it is unset;
 * the library always passes its own (the files shipped beside it).
 */
export function configureRuntime(options: { node: boolean; numThreads: number; wasmPaths?: WasmPaths | undefined }): void {
  if (configured) return;
  configured = true;
  env.logLevel = 40; // LogLevel.ERROR: ORT's node-placement warnings (shape ops kept on the CPU) are expected noise.
  const onnx = env.backends.onnx as { wasm?: { numThreads?: number; wasmPaths?: WasmPaths } };
  if (!options.node && onnx.wasm) {
    onnx.wasm.numThreads = options.numThreads;
    if (options.wasmPaths !== undefined) onnx.wasm.wasmPaths = typeof options.wasmPaths === 'string' ? options.wasmPaths : { ...options.wasmPaths };
    else if (isTransformersCdnDefault(onnx.wasm.wasmPaths)) {
      // Nothing from a CDN: unset, onnxruntime-web's bundled entry finds its .wasm beside itself
      // (`new URL('ort-wasm-simd-threaded.asyncify.wasm', import.meta.url)`, which the app's
      // bundler emits). A path the app set itself is kept.
      delete onnx.wasm.wasmPaths;
    }
  }
}

/** Whether `wasmPaths` is the CDN default transformers.js sets at import time when it is unset. */
function isTransformersCdnDefault(paths: WasmPaths | undefined): boolean {
  const mjs = typeof paths === 'string' ? paths : paths?.mjs;
  return typeof mjs === 'string' && /^https:\/\/[^/]+\/npm\/onnxruntime-web@[^/]+\/dist\//.test(mjs);
}

/** Loads run one at a time: the custom cache below is global to transformers.js. */
let loadChain: Promise<unknown> = Promise.resolve();
let nextId = 0;

/**
 * Starts a graph held in memory on a device through `AutoModel.from_pretrained`.
 * `config` is the checkpoint's config.json when it has one (its `model_type` picks the model
 * class; an unknown or missing one runs as transformers.js's base encoder model).
 */
export function startModel(
  bytes: Uint8Array,
  options: { device: Device; dtype: Dtype; node: boolean; numThreads?: number | undefined; config?: Record<string, unknown> | null },
): Promise<ModelSession> {
  const run = loadChain.then(() => startModelNow(bytes, options));
  loadChain = run.catch(() => undefined);
  return run;
}

async function startModelNow(
  bytes: Uint8Array,
  options: { device: Device; dtype: Dtype; node: boolean; numThreads?: number | undefined; config?: Record<string, unknown> | null },
): Promise<ModelSession> {
  const id = `colbert-web/in-memory-${++nextId}`;
  const marker = `/${id}/`;
  const saved = { useCustomCache: env.useCustomCache, customCache: env.customCache };
  const served = (key: string): boolean => String(key).includes(marker) && String(key).endsWith('.onnx');
  env.customCache = {
    match: async (request: string) => {
      if (!served(request)) return undefined;
      return new Response(bytes as Uint8Array<ArrayBuffer>, { status: 200, headers: { 'content-length': String(bytes.byteLength), 'content-type': 'application/octet-stream' } });
    },
    put: async () => undefined,
  } as unknown as typeof env.customCache;
  env.useCustomCache = true;
  const sessionOptions: Record<string, unknown> = { graphOptimizationLevel: 'all', logSeverityLevel: 3 };
  if (options.node && options.numThreads !== undefined) sessionOptions['intraOpNumThreads'] = options.numThreads;
  // The "model_type" is all transformers.js reads from the config here; the graph has the rest.
  const config = { ...(options.config ?? {}), model_type: typeof options.config?.['model_type'] === 'string' ? options.config['model_type'] : 'colbert-web-encoder' };
  let model: PreTrainedModel;
  try {
    model = await AutoModel.from_pretrained(id, {
      config: config as never,
      subfolder: '',
      model_file_name: 'model',
      dtype: options.dtype,
      device: runtimeDevice(options.device, options.node),
      session_options: sessionOptions as never,
      use_external_data_format: false,
    });
  } catch (err) {
    throw toColbertError(err, 'MODEL_LOAD_FAILED', `transformers.js could not start the graph on ${runtimeDevice(options.device, options.node)}`);
  } finally {
    env.useCustomCache = saved.useCustomCache;
    env.customCache = saved.customCache;
  }
  return wrapModel(model);
}

interface OrtSessionLike {
  inputNames: readonly string[];
  outputNames: readonly string[];
}

function wrapModel(model: PreTrainedModel): ModelSession {
  const session = (model as unknown as { sessions: Record<string, OrtSessionLike> }).sessions['model'];
  if (!session) throw new ColbertError('MODEL_LOAD_FAILED', 'transformers.js started no "model" session.');
  return {
    inputNames: session.inputNames,
    outputNames: session.outputNames,
    async run(inputs, dims, outputName) {
      const feeds: Record<string, Tensor> = {};
      for (const [name, data] of Object.entries(inputs)) feeds[name] = new Tensor('int64', data, [dims[0], dims[1]]);
      let outputs: Record<string, Tensor>;
      try {
        outputs = (await (model as unknown as (x: Record<string, Tensor>) => Promise<Record<string, Tensor>>)(feeds));
      } catch (err) {
        throw toColbertError(err, 'ENCODE_FAILED', 'The model failed to run');
      }
      for (const [name, tensor] of Object.entries(outputs)) if (name !== outputName) tensor.dispose();
      const out = outputs[outputName];
      if (!out) throw new ColbertError('ENCODE_FAILED', `The model did not return "${outputName}".`);
      return out as unknown as RuntimeTensor;
    },
    async release() {
      await model.dispose();
    },
  };
}
