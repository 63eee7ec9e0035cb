/**
 * Text in, token matrices out: loads a PyLate checkpoint's ONNX export and runs the encoding
 * recipe end to end. The graph runs through @huggingface/transformers (runtime.ts): onnxruntime-node
 * under Node (native CPU kernels), onnxruntime-web elsewhere (WebGPU with a WASM fallback).
 */
import { Tokenizer } from '@huggingface/tokenizers';
import { bytesOf, crc32 } from '../checksum.ts';
import { ColbertError, toColbertError } from '../errors.ts';
import type { Device, DeviceOption, Dtype, ExpansionMode, ProgressCallback, TokenMatrix } from '../types.ts';
import { detectCapabilities, type Capabilities } from '../capabilities.ts';
import { detectLayout, resolveEncodingConfig, type EncodingConfig, type EncodingOverrides, type ModelLayout } from './config.ts';
import { fetchModelFile, fetchModelJSON, fileLocation, getCachedBytes, putCachedBytes, resolveModelSource, type FetchOptions, type ModelSource, type SourceOptions } from './files.ts';
import { CONVERTER_VERSION, convertFromSource, isConvertDtype, isConvertible } from './convert/convert.ts';
import type { ConvertDtype } from './convert/quantize.ts';
import { loadDenseHead, projectAndNormalize, type DenseLayer } from './head.ts';
import { ColbertTokenizer, type EncodedText } from './tokenize.ts';
import { configureRuntime, hubLocation, runtimeName, startModel, transformersVersion, type ModelSession, type RuntimeTensor, type WasmPaths } from './runtime.ts';

/** Options for {@link loadEncoder}. */
export interface EncoderOptions extends EncodingOverrides {
  /** Hugging Face repo id, base URL, or local path/URL prefix. */
  model: string;
  /** Hub revision (branch, tag, commit). Default 'main'. */
  revision?: string;
  /** Hub host. Default: transformers.js's `env.remoteHost` ('https://huggingface.co/'), its `env.remotePathTemplate` after it. */
  hubUrl?: string;
  /** Where to run the model. Default 'auto' (WebGPU, then WASM). */
  device?: DeviceOption;
  /** Weight precision, one for all devices or per device. Defaults: WebGPU fp16 (with shader-f16) else fp32; WASM q8. */
  dtype?: Dtype | Partial<Record<Device, Dtype>>;
  /** Force an export layout instead of detecting it. */
  layout?: ModelLayout;
  /** Treatment of masked `[MASK]` expansion positions; see {@link ExpansionMode}. Default 'zero'. */
  expansion?: ExpansionMode;
  /** Keep downloads in Cache Storage. Default true. */
  cache?: boolean;
  /**
   * Convert a safetensors-only ModernBERT checkpoint to ONNX when the repository has no ONNX
   * export (in the worker; the result is kept in Cache Storage when `cache` is on, so later loads
   * skip the conversion). Default true; false raises MODEL_NO_ONNX instead.
   */
  convert?: boolean;
  /** Where onnxruntime-web finds its `.wasm`/`.mjs` files (a URL prefix or per-file URLs). Default: next to the bundled library. */
  wasmPaths?: WasmPaths;
  /** WASM threads. Default: min(4, cores) when cross-origin isolated, else 1. */
  numThreads?: number;
  /** Most tokens (batch x padded length) in one forward pass. Default 8192. */
  maxBatchTokens?: number;
  onProgress?: ProgressCallback | undefined;
}

/** What {@link Encoder.info} reports. */
export interface EncoderInfo {
  model: string;
  revision?: string;
  layout: ModelLayout;
  device: Device;
  dtype: Dtype;
  dim: number;
  /** The ONNX file that runs. */
  file: string;
  /** Why the preferred device was not used, when it was not. */
  fallbackReason?: string;
  /** The onnxruntime that transformers.js runs the graph on: native in Node, WebAssembly/WebGPU in browsers. */
  runtime: 'onnxruntime-node' | 'onnxruntime-web';
  /** The @huggingface/transformers version that starts and runs the graph on that onnxruntime. */
  transformers: string;
  /** Set when the ONNX graph was converted from the checkpoint's safetensors: `cached` when an earlier conversion was reused. */
  converted?: { cached: boolean };
  config: EncodingConfig;
  expansion: ExpansionMode;
  /**
   * CRC-32 (hex) of what decides the vectors besides the graph: the tokenizer and the Dense head
   * (colbert-export: the tokenizer and its config). The same for every dtype of one model, so an
   * index built on WASM/q8 opens on WebGPU/fp32.
   */
  contentHash: string;
}

const TJS_SUFFIX: Record<Dtype, string> = {
  fp32: '',
  fp16: '_fp16',
  q8: '_quantized',
  int8: '_int8',
  uint8: '_uint8',
  q4: '_q4',
  q4f16: '_q4f16',
  bnb4: '_bnb4',
};
const DTYPES = Object.keys(TJS_SUFFIX) as Dtype[];

/** The ONNX file of a dtype in a layout, or null when the layout has none. */
export function onnxFileFor(layout: ModelLayout, dtype: Dtype): string | null {
  if (layout === 'transformers.js') return `onnx/model${TJS_SUFFIX[dtype]}.onnx`;
  if (dtype === 'fp32') return 'model.onnx';
  if (dtype === 'int8' || dtype === 'q8') return 'model_int8.onnx';
  return null;
}

/** Candidate dtypes, best first, for a device when the caller chose none. */
function defaultDtypes(device: Device, caps: Capabilities): Dtype[] {
  // q8/q4 graphs have returned silently wrong embeddings on WebGPU and MatMulInteger falls off it:
  // float weights there. WASM runs int8 kernels well.
  if (device === 'webgpu') return caps.webgpuF16 ? ['fp16', 'fp32'] : ['fp32'];
  return ['q8', 'int8', 'fp32'];
}

/** Resolves the device option into an ordered list of devices to try, with the reason for skipping WebGPU. */
export function planDevices(option: DeviceOption, caps: Capabilities): { devices: Device[]; skipped?: string } {
  if (option !== 'auto' && option !== 'webgpu' && option !== 'wasm') {
    throw new ColbertError('INVALID_DEVICE', `Unknown device ${JSON.stringify(option)}; use 'auto', 'webgpu' or 'wasm'.`, { device: option });
  }
  if (option === 'wasm') return { devices: ['wasm'] };
  if (caps.webgpu) return { devices: option === 'auto' ? ['webgpu', 'wasm'] : ['webgpu'] };
  if (option === 'webgpu') {
    throw new ColbertError('DEVICE_UNAVAILABLE', `device 'webgpu' was requested but ${caps.webgpuReason ?? 'WebGPU is unavailable'}. Use device: 'auto' to fall back to WASM.`, { reason: caps.webgpuReason });
  }
  return { devices: ['wasm'], skipped: caps.webgpuReason ?? 'WebGPU is unavailable' };
}

/** Serialises work: onnxruntime sessions must not run concurrently. */
class Queue {
  private tail: Promise<unknown> = Promise.resolve();
  run<T>(fn: () => Promise<T>): Promise<T> {
    const result = this.tail.then(fn, fn);
    this.tail = result.catch(() => undefined);
    return result;
  }
}

/** A loaded model. Create with {@link loadEncoder}; call {@link dispose} when done. */
export class Encoder {
  private readonly queue = new Queue();
  private disposed = false;

  private constructor(
    private readonly session: ModelSession,
    readonly tokenizer: ColbertTokenizer,
    private readonly head: readonly DenseLayer[],
    private readonly outputName: string,
    private readonly hiddenDim: number,
    readonly info: EncoderInfo,
    private readonly maxBatchTokens: number,
  ) {}

  /** @internal */
  static async create(session: ModelSession, tokenizer: ColbertTokenizer, head: DenseLayer[], info: Omit<EncoderInfo, 'dim'>, maxBatchTokens: number): Promise<Encoder> {
    const outputName = session.outputNames.includes('output')
      ? 'output'
      : session.outputNames.includes('last_hidden_state')
        ? 'last_hidden_state'
        : session.outputNames[0];
    if (outputName === undefined) throw new ColbertError('MODEL_LOAD_FAILED', 'The ONNX graph has no outputs.');
    // A graph whose output is "output" holds the Dense head and the norm (colbert-export, or this
    // library's converter writing the transformers.js layout): the JS head must not run again.
    if (outputName === 'output') head = [];
    // One warm-up pass learns the hidden size (and compiles WebGPU kernels before the first real call).
    const probe = tokenizer.encodeDocument('warm up');
    const probeOut = await runSession(session, [probe], probe.inputIds.length, outputName);
    const hiddenDim = probeOut.dims[2];
    if (probeOut.dims.length !== 3 || hiddenDim === undefined) {
      throw new ColbertError('MODEL_LOAD_FAILED', `The ONNX output "${outputName}" has shape [${probeOut.dims.join(', ')}]; expected [batch, sequence, dim].`);
    }
    if (head.length && head[0]!.inFeatures !== hiddenDim) {
      throw new ColbertError('MODEL_CONFIG_INVALID', `The Dense head takes ${head[0]!.inFeatures} features but the ONNX graph outputs ${hiddenDim}.`, { hiddenDim, inFeatures: head[0]!.inFeatures });
    }
    const dim = head.length ? head[head.length - 1]!.outFeatures : hiddenDim;
    return new Encoder(session, tokenizer, head, outputName, hiddenDim, { ...info, dim }, maxBatchTokens);
  }

  /** Dimension of the token vectors. */
  get dim(): number {
    return this.info.dim;
  }

  /** Encodes queries (prompt, `[Q]`, `[MASK]` expansion). One matrix per text, in order. */
  async encodeQueries(texts: readonly string[]): Promise<TokenMatrix[]> {
    const keepExpansion = this.info.expansion === 'eager' || this.info.config.attendToExpansionTokens;
    const inputs = texts.map((text) => {
      const enc = this.tokenizer.encodeQuery(text);
      // 'zero': masked expansion positions would be zero vectors, adding nothing to any score;
      // they cannot influence the real tokens (masked out of attention), so they are not computed.
      return keepExpansion ? enc : sliceEncoded(enc, enc.realLength);
    });
    return this.encode(inputs, (enc) => allRows(enc));
  }

  /** Encodes documents (prompt, `[D]`, truncation, skiplist). One matrix per text, in order. */
  async encodeDocuments(texts: readonly string[], onProgress?: (done: number, tokens: number) => void): Promise<TokenMatrix[]> {
    const inputs = texts.map((text) => this.tokenizer.encodeDocument(text));
    return this.encode(inputs, (enc) => this.tokenizer.keptDocumentPositions(enc), onProgress);
  }

  private async encode(
    inputs: EncodedText[],
    keep: (enc: EncodedText) => number[],
    onProgress?: (done: number, tokens: number) => void,
  ): Promise<TokenMatrix[]> {
    if (this.disposed) throw new ColbertError('CLOSED', 'The encoder was disposed.');
    const results: (TokenMatrix | undefined)[] = new Array(inputs.length);
    // Longest first, batched under a token budget: little padding, bounded memory.
    const order = inputs.map((_, i) => i).sort((a, b) => inputs[b]!.inputIds.length - inputs[a]!.inputIds.length);
    let done = 0;
    let tokens = 0;
    for (let start = 0; start < order.length; ) {
      const seqLen = inputs[order[start]!]!.inputIds.length;
      const size = Math.max(1, Math.min(order.length - start, Math.floor(this.maxBatchTokens / Math.max(1, seqLen))));
      const batch = order.slice(start, start + size);
      start += size;
      const output = await this.queue.run(() => runSession(this.session, batch.map((i) => inputs[i]!), seqLen, this.outputName));
      const hidden = output.data as Float32Array;
      for (let b = 0; b < batch.length; b++) {
        const enc = inputs[batch[b]!]!;
        const rows = keep(enc).map((r) => b * seqLen + r);
        const data = this.head.length || this.info.layout === 'transformers.js'
          ? projectAndNormalize(hidden, this.hiddenDim, rows, this.head)
          : gatherRows(hidden, this.hiddenDim, rows);
        const ids = Int32Array.from(rows, (r) => enc.inputIds[r - b * seqLen]!);
        results[batch[b]!] = { data, tokens: rows.length, dim: this.dim, ids };
        tokens += rows.length;
      }
      output.dispose();
      done += batch.length;
      onProgress?.(done, tokens);
    }
    return results as TokenMatrix[];
  }

  /** Frees the ONNX session. */
  async dispose(): Promise<void> {
    if (this.disposed) return;
    this.disposed = true;
    await this.queue.run(() => this.session.release());
  }
}

function sliceEncoded(enc: EncodedText, length: number): EncodedText {
  return { inputIds: enc.inputIds.slice(0, length), attentionMask: enc.attentionMask.slice(0, length), realLength: Math.min(length, enc.realLength) };
}

function allRows(enc: EncodedText): number[] {
  return Array.from({ length: enc.inputIds.length }, (_, i) => i);
}

function gatherRows(data: Float32Array, dim: number, rows: readonly number[]): Float32Array {
  const out = new Float32Array(rows.length * dim);
  rows.forEach((r, i) => out.set(data.subarray(r * dim, (r + 1) * dim), i * dim));
  return out;
}

async function runSession(session: ModelSession, batch: EncodedText[], seqLen: number, outputName: string): Promise<RuntimeTensor> {
  const n = batch.length;
  const ids = new BigInt64Array(n * seqLen);
  const mask = new BigInt64Array(n * seqLen);
  const padId = 0n;
  batch.forEach((enc, b) => {
    for (let i = 0; i < seqLen; i++) {
      const inRange = i < enc.inputIds.length;
      ids[b * seqLen + i] = inRange ? BigInt(enc.inputIds[i]!) : padId;
      mask[b * seqLen + i] = inRange ? BigInt(enc.attentionMask[i]!) : 0n;
    }
  });
  const feeds: Record<string, BigInt64Array> = { input_ids: ids, attention_mask: mask };
  if (session.inputNames.includes('token_type_ids')) feeds['token_type_ids'] = new BigInt64Array(n * seqLen);
  for (const name of session.inputNames) {
    if (!(name in feeds)) throw new ColbertError('MODEL_LOAD_FAILED', `The ONNX graph needs an input "${name}" this library does not provide (it feeds input_ids, attention_mask, token_type_ids).`, { inputs: session.inputNames });
  }
  const out = await session.run(feeds, [n, seqLen], outputName);
  if (out.type !== 'float32') throw new ColbertError('ENCODE_FAILED', `The model returned ${out.type} for "${outputName}"; expected float32.`);
  return out;
}

/** The dtypes to try on a device, best first: the caller's choice alone, or the defaults. */
function dtypeChoices(option: EncoderOptions['dtype'], device: Device, caps: Capabilities): Dtype[] {
  const chosen = typeof option === 'string' ? option : option?.[device];
  if (chosen === undefined) return defaultDtypes(device, caps);
  if (!DTYPES.includes(chosen)) {
    throw new ColbertError('INVALID_ARGUMENT', `Unknown dtype ${JSON.stringify(chosen)}; use one of ${DTYPES.join(', ')}.`, { dtype: chosen });
  }
  return [chosen];
}

async function createSession(bytes: Uint8Array, device: Device, dtype: Dtype, caps: Capabilities, numThreads: number | undefined, config: Record<string, unknown> | null): Promise<ModelSession> {
  try {
    return await startModel(bytes, { device, dtype, node: caps.node, numThreads, config });
  } catch (err) {
    const failed = failedRuntimeFiles();
    if (!failed.length) throw err;
    // onnxruntime-web only says "previous call to 'initWasm()' failed" or "no available backend".
    throw new ColbertError(
      'MODEL_LOAD_FAILED',
      `onnxruntime-web could not load its runtime file${failed.length > 1 ? 's' : ''} ${failed.map((f) => `${f.url} (HTTP ${f.status})`).join(', ')}. ` +
        'Serve it where the page can fetch it (bundlers emit it beside the app) or point `wasmPaths` at a folder that has it.',
      { files: failed },
    );
  }
}

/**
 * onnxruntime-web's `.wasm`/`.mjs` files this realm failed to fetch, from the Resource Timing
 * entries (their HTTP status included), so a missing runtime file is reported with its URL.
 */
function failedRuntimeFiles(): { url: string; status: number }[] {
  const perf = (globalThis as { performance?: Performance }).performance;
  if (typeof perf?.getEntriesByType !== 'function') return [];
  const out: { url: string; status: number }[] = [];
  for (const entry of perf.getEntriesByType('resource') as (PerformanceResourceTiming & { responseStatus?: number })[]) {
    const status = entry.responseStatus ?? 0;
    if (status >= 400 && /\/ort[^/]*\.(wasm|mjs)(\?|#|$)/.test(entry.name)) out.push({ url: entry.name, status });
  }
  return out;
}

/** Explains what a location holds when no runnable ONNX file was found. */
async function noOnnxError(source: ModelSource, layout: ModelLayout, tried: string[], fetchOptions: FetchOptions): Promise<ColbertError> {
  const probes = ['model.safetensors', 'pytorch_model.bin', 'config.json', 'config_sentence_transformers.json'];
  const found: string[] = [];
  for (const file of probes) {
    if (await fetchModelFile(source, file, { ...fetchOptions, onProgress: undefined })) found.push(file);
  }
  const weights = found.filter((f) => f.endsWith('.safetensors') || f.endsWith('.bin'));
  const what = weights.length ? `It has ${weights.join(' and ')} but no ONNX export.` : 'It has no ONNX export.';
  return new ColbertError(
    'MODEL_NO_ONNX',
    `${source.model}: ${what} This library runs ONNX: tried ${tried.join(', ')} (${layout} layout). ` +
      'Export the checkpoint to ONNX (transformers.js layout onnx/model*.onnx with the 1_Dense head, or LightOn\'s colbert-export model.onnx), or use a repository that has one.',
    { model: source.model, found, tried, layout },
  );
}

/** See {@link EncoderInfo.contentHash}. */
function modelContentHash(tokenizerJson: Record<string, unknown>, rest: readonly DenseLayer[] | Record<string, unknown> | null): string {
  let crc = crc32(new TextEncoder().encode(JSON.stringify(tokenizerJson)));
  if (Array.isArray(rest)) {
    for (const layer of rest as readonly DenseLayer[]) {
      crc = crc32(bytesOf(layer.weight), crc);
      if (layer.bias) crc = crc32(bytesOf(layer.bias), crc);
    }
  } else if (rest) {
    crc = crc32(new TextEncoder().encode(JSON.stringify(rest)), crc);
  }
  return crc.toString(16).padStart(8, '0');
}

/**
 * Loads a model: configs, tokenizer, Dense head, and an ONNX session on the best available device.
 * Reports progress (downloads in bytes, then 'ready'); throws coded errors for every failure.
 */
export async function loadEncoder(options: EncoderOptions): Promise<Encoder> {
  const caps = await detectCapabilities();
  const expansion = options.expansion ?? 'zero';
  if (expansion !== 'zero' && expansion !== 'eager') {
    throw new ColbertError('INVALID_ARGUMENT', `Unknown expansion ${JSON.stringify(expansion)}; use 'zero' or 'eager'.`);
  }
  const plan = planDevices(options.device ?? 'auto', caps);
  // Hub ids resolve where transformers.js's env says (remoteHost, remotePathTemplate) unless hubUrl is given.
  const hub = hubLocation();
  const sourceOptions: SourceOptions = { hubUrl: options.hubUrl ?? hub.host, pathTemplate: hub.pathTemplate };
  if (options.revision !== undefined) sourceOptions.revision = options.revision;
  const source = resolveModelSource(options.model, sourceOptions);
  const fetchOptions: FetchOptions = { cache: options.cache ?? true, onProgress: options.onProgress, remote: hub.allowRemote };
  configureRuntime({ node: caps.node, numThreads: options.numThreads ?? (caps.crossOriginIsolated ? Math.min(4, caps.hardwareConcurrency) : 1), wasmPaths: options.wasmPaths });

  options.onProgress?.({ status: 'load', stage: 'config' });
  const [st, modelConfig, tokenizerJson, tokenizerConfig] = await Promise.all([
    fetchModelJSON(source, 'config_sentence_transformers.json', fetchOptions),
    fetchModelJSON(source, 'config.json', fetchOptions),
    fetchModelJSON(source, 'tokenizer.json', fetchOptions),
    fetchModelJSON(source, 'tokenizer_config.json', fetchOptions),
  ]);
  if (!tokenizerJson) {
    const nothing = !st && !modelConfig;
    throw new ColbertError(
      'MODEL_NOT_FOUND',
      nothing
        ? `No model found at ${source.base} (no tokenizer.json, config.json or config_sentence_transformers.json). ` +
          (hub.allowRemote || source.kind === 'path' ? 'Check the repo id, URL or path.' : "transformers.js's env.allowRemoteModels is false, so only cached files count and none is cached.")
        : `${fileLocation(source, 'tokenizer.json')} is missing; a PyLate checkpoint ships its tokenizer.json.`,
      { model: options.model, base: source.base },
    );
  }
  options.onProgress?.({ status: 'load', stage: 'tokenizer' });
  const layout = options.layout ?? detectLayout(st ?? undefined);
  let tokenizer: ColbertTokenizer;
  try {
    const hf = new Tokenizer(tokenizerJson, tokenizerConfig ?? {});
    const overrides: EncodingOverrides = {};
    if (options.prompts !== undefined) overrides.prompts = options.prompts;
    if (options.queryLength !== undefined) overrides.queryLength = options.queryLength;
    if (options.documentLength !== undefined) overrides.documentLength = options.documentLength;
    const config = resolveEncodingConfig({ sentenceTransformers: st ?? undefined, model: modelConfig ?? undefined, tokenizer: tokenizerConfig ?? undefined }, hf, overrides);
    tokenizer = new ColbertTokenizer(hf, config);
  } catch (err) {
    throw toColbertError(err, 'MODEL_CONFIG_INVALID', 'The tokenizer could not be built');
  }
  const head = layout === 'transformers.js' ? await loadDenseHead(source, fetchOptions) : [];
  const contentHash = modelContentHash(tokenizerJson, layout === 'transformers.js' ? head : st);

  let fallbackReason = plan.skipped;
  const tried: string[] = [];
  for (const device of plan.devices) {
    for (const dtype of dtypeChoices(options.dtype, device, caps)) {
      const file = onnxFileFor(layout, dtype);
      if (file === null) continue;
      if (!tried.includes(file)) tried.push(file);
      const bytes = await fetchModelFile(source, file, fetchOptions);
      if (!bytes) continue;
      options.onProgress?.({ status: 'load', stage: 'session', device, dtype });
      try {
        const session = await createSession(bytes, device, dtype, caps, options.numThreads, modelConfig);
        const info: Omit<EncoderInfo, 'dim'> = { model: options.model, layout, device, dtype, file, runtime: runtimeName(caps.node),
        transformers: transformersVersion(), config: tokenizer.config, expansion, contentHash };
        if (source.revision !== undefined) info.revision = source.revision;
        if (fallbackReason !== undefined) info.fallbackReason = fallbackReason;
        const encoder = await Encoder.create(session, tokenizer, head, info, options.maxBatchTokens ?? 8192);
        options.onProgress?.({ status: 'ready', device, dtype, ...(fallbackReason !== undefined ? { fallbackReason } : {}) });
        return encoder;
      } catch (err) {
        const error = toColbertError(err, 'MODEL_LOAD_FAILED', `Could not start ${file} on ${device}`);
        if (device === 'webgpu' && plan.devices.includes('wasm')) {
          fallbackReason = `WebGPU failed (${error.message}); using WASM`;
          break;
        }
        throw error;
      }
    }
  }
  if (options.convert !== false && isConvertible(modelConfig)) {
    const converted = await loadConverted(source, plan, caps, options, { tokenizer, modelConfig, layout, expansion, fetchOptions, fallbackReason, contentHash });
    if (converted) return converted;
  }
  if (options.dtype !== undefined) {
    throw new ColbertError(
      'MODEL_NOT_FOUND',
      `${options.model}: no ONNX file for the requested dtype (tried ${tried.join(', ') || 'nothing: the layout has no such dtype'}).`,
      { model: options.model, tried, dtype: options.dtype, layout },
    );
  }
  throw await noOnnxError(source, layout, tried, fetchOptions);
}

/** The converter dtype for a device: the caller's choice when the converter has it, else fp32 on WebGPU and q8 on WASM. */
function convertDtypeFor(option: EncoderOptions['dtype'], device: Device): ConvertDtype {
  const chosen = typeof option === 'string' ? option : option?.[device];
  if (chosen !== undefined && isConvertDtype(chosen)) return chosen;
  if (chosen !== undefined) {
    throw new ColbertError('INVALID_ARGUMENT', `The converter writes fp32, fp16, q8 or q4, not ${JSON.stringify(chosen)}.`, { dtype: chosen });
  }
  return device === 'webgpu' ? 'fp32' : 'q8';
}

/** Where a conversion is cached: the checkpoint's own URL (revision included) plus converter version and dtype. */
function conversionKey(source: ModelSource, dtype: ConvertDtype): string {
  return `${fileLocation(source, 'model.safetensors')}?colbert-web-converted=${encodeURIComponent(`${CONVERTER_VERSION}.${dtype}`)}`;
}

/**
 * Converts (or reuses a cached conversion of) a safetensors-only checkpoint and starts it on the
 * best device. The head is inside the converted graph. Resolves to null when the source has no
 * model.safetensors after all.
 */
async function loadConverted(
  source: ModelSource,
  plan: { devices: Device[] },
  caps: Capabilities,
  options: EncoderOptions,
  ctx: { tokenizer: ColbertTokenizer; modelConfig: Record<string, unknown> | null; layout: ModelLayout; expansion: ExpansionMode; fetchOptions: FetchOptions; fallbackReason: string | undefined; contentHash: string },
): Promise<Encoder | null> {
  let fallbackReason = ctx.fallbackReason;
  const useCache = (options.cache ?? true) && source.kind !== 'path';
  for (const device of plan.devices) {
    const dtype = convertDtypeFor(options.dtype, device);
    const key = conversionKey(source, dtype);
    let bytes = useCache ? await getCachedBytes(key) : null;
    const cached = bytes !== null;
    if (bytes) options.onProgress?.({ status: 'convert', stage: 'cached', dtype, bytes: bytes.byteLength });
    else {
      options.onProgress?.({ status: 'convert', stage: 'start', dtype });
      bytes = await convertFromSource(source, dtype, ctx.fetchOptions);
      if (!bytes) return null;
      options.onProgress?.({ status: 'convert', stage: 'done', dtype, bytes: bytes.byteLength });
      if (useCache) await putCachedBytes(key, bytes);
    }
    options.onProgress?.({ status: 'load', stage: 'session', device, dtype });
    try {
      const session = await createSession(bytes, device, dtype, caps, options.numThreads, ctx.modelConfig);
      bytes = null;
      const info: Omit<EncoderInfo, 'dim'> = {
        model: options.model,
        layout: ctx.layout,
        device,
        dtype,
        file: 'model.safetensors',
        runtime: runtimeName(caps.node),
        transformers: transformersVersion(),
        converted: { cached },
        config: ctx.tokenizer.config,
        expansion: ctx.expansion,
        contentHash: ctx.contentHash,
      };
      if (source.revision !== undefined) info.revision = source.revision;
      if (fallbackReason !== undefined) info.fallbackReason = fallbackReason;
      const encoder = await Encoder.create(session, ctx.tokenizer, [], info, options.maxBatchTokens ?? 8192);
      options.onProgress?.({ status: 'ready', device, dtype, ...(fallbackReason !== undefined ? { fallbackReason } : {}) });
      return encoder;
    } catch (err) {
      const error = toColbertError(err, 'MODEL_LOAD_FAILED', `Could not start the converted model on ${device}`);
      if (device === 'webgpu' && plan.devices.includes('wasm')) {
        fallbackReason = `WebGPU failed (${error.message}); using WASM`;
        continue;
      }
      throw error;
    }
  }
  return null;
}
