/**
 * The public facade. `createSearch()` loads a model and returns a {@link ColbertSearch}; by default
 * the engine runs in a Web Worker (browsers) or in the calling thread (Node). Both implement the
 * same interface; comlink never leaks out of this file.
 */
import * as Comlink from 'comlink';
import type { AddResult, Engine, EngineInfo, EngineOptions, ExplainOptions, ImportResult, IndexChangeCallback, IndexStats, SearchOptions } from './engine.ts';
import { ColbertError, toColbertError } from './errors.ts';
import type { Device, DocumentInput, Dtype, EmbeddingInput, Explanation, ExplainTarget, Hit, ProgressCallback, TokenMatrix } from './types.ts';
import type { EngineHost } from './worker.ts';
import { installErrorTransfer } from './worker-protocol.ts';
import { isNodeHost } from './capabilities.ts';
import { checkInputMetadata } from './store/metadata.ts';
import type { ScoringDevice, ScoringStatus } from './score/scorer.ts';
import type { ExportOptions, ExportTarget, ServerExport } from './export/index.ts';

/**
 * Set by the library build (vite.config.ts) to where onnxruntime-web's runtime files sit next to
 * dist/index.js; undefined when this source is bundled by an app, whose bundler emits them itself.
 */
declare const __COLBERT_ORT_DIR__: string | undefined;

/** The default `wasmPaths`: onnxruntime-web's files shipped beside the built library, never a CDN. */
function defaultWasmPaths(): string | undefined {
  if (typeof __COLBERT_ORT_DIR__ === 'undefined') return undefined;
  // Through a variable: bundlers would take `new URL(<expression>, import.meta.url)` for an asset.
  const here = import.meta.url;
  return new URL(__COLBERT_ORT_DIR__, here).href;
}

/** The model used when none is named. */
export const DEFAULT_MODEL = 'lightonai/ColBERT-Zero-supervised';

/** Options for {@link createSearch}. */
export interface SearchConfig extends Omit<EngineOptions, 'model'> {
  /** Hugging Face repo id, base URL, or local path / URL prefix. Default {@link DEFAULT_MODEL}. */
  model?: string;
  /**
   * Where the engine runs. `true`: the library's own Web Worker (default in browsers);
   * `false`: the calling thread (default in Node); a `Worker`: your own worker that calls
   * `exposeEngine()` from 'colbert-web/worker'.
   */
  worker?: boolean | Worker;
  /** Loading progress: downloads in bytes, then 'ready' with the device. */
  onProgress?: ProgressCallback;
  /**
   * Called when another tab or worker changed this persistent index; by then this search
   * already sees the change (no reload needed).
   */
  onChange?: IndexChangeCallback;
  /**
   * For a persistent index, ask the browser not to evict this origin's storage under pressure
   * (`navigator.storage.persist()`; Firefox may ask the user). Default true.
   */
  persist?: boolean;
}

/** Per-call options of {@link ColbertSearch.add}. */
export interface AddOptions {
  /** Encoding and storing progress. */
  onProgress?: ProgressCallback;
}

/** A loaded model with its index. */
export interface ColbertSearch {
  /** What runs the model: 'webgpu' or 'wasm'. */
  readonly device: Device;
  /** The weight precision that runs. */
  readonly dtype: Dtype;
  /** Token vector dimension. */
  readonly dim: number;
  /** Why WebGPU is not used, when it is not (e.g. no adapter, or its session failed). */
  readonly fallbackReason: string | undefined;
  /** Everything about the model that runs. */
  readonly info: EngineInfo;
  /** Where MaxSim runs: 'webgpu' or 'cpu' (updated after each search; a failed GPU switches it to 'cpu'). */
  readonly scoringDevice: ScoringDevice;
  /** Why MaxSim does not run on the GPU, when it does not. */
  readonly scoringFallbackReason: string | undefined;
  /**
   * CPU threads MaxSim uses on a large enough index (the engine's thread included): 1 on the GPU,
   * where the page is not cross-origin isolated, or after a scoring sub-worker failed.
   */
  readonly scoringThreads: number;
  /** Why CPU scoring uses fewer threads than asked for, when it does. */
  readonly scoringThreadsFallbackReason: string | undefined;
  /** Encodes and indexes documents; an existing id is replaced. */
  add(docs: DocumentInput[], options?: AddOptions): Promise<AddResult>;
  /** Indexes precomputed document matrices (e.g. from PyLate). */
  addEmbeddings(items: EmbeddingInput[]): Promise<AddResult>;
  /** Removes documents; all ids must exist (else UNKNOWN_ID and nothing changes). Returns the count removed. */
  delete(ids: string[]): Promise<number>;
  /** The k best documents for a query, best first. */
  search(query: string, options?: SearchOptions): Promise<Hit[]>;
  /** The k best documents for a precomputed query matrix. */
  searchEmbedding(query: TokenMatrix, options?: SearchOptions): Promise<Hit[]>;
  /** A query's token matrix (prompt, [Q], expansion applied). */
  encodeQuery(text: string): Promise<TokenMatrix>;
  /** Documents' token matrices (prompt, [D], skiplist applied), not stored. */
  encodeDocuments(texts: string[]): Promise<TokenMatrix[]>;
  /** Index counts, precision, and for persistent indexes bytes on disk, usage, quota and persistence. */
  stats(): Promise<IndexStats>;
  /**
   * Tokens each text takes on its own (no prompt, specials or marker; not truncated). Compare
   * with `info.documentTextBudget` to split long texts into passages that are encoded whole.
   */
  countTokens(texts: string[]): Promise<number[]>;
  /**
   * Why a document scores what it does: for every query token, the document token it matched
   * best, that token's character span, and the dot product it added (the contributions sum to
   * the score). `{ id }` uses the indexed vectors, so the score equals the hit's; add `text` (the
   * exact text that was indexed; TEXT_MISMATCH otherwise) to get spans. `{ text }` alone explains
   * any text without indexing it. With `{ filter }` it also says whether the document passes it.
   */
  explain(query: string, target: ExplainTarget, options?: ExplainOptions): Promise<Explanation>;
  /** Removes every document. */
  clear(): Promise<void>;
  /** The whole index as one portable, checksummed file (manifest, documents, vectors). */
  exportIndex(): Promise<Uint8Array>;
  /**
   * The index for a server engine: `definition` (collection / schema / mapping to create first),
   * `documents` (a stream of that engine's request bodies, JSON lines, built one document or
   * batch at a time) and a matching `query`. See the README's "Export to server engines".
   */
  exportFor(target: ExportTarget, options?: ExportOptions): Promise<ServerExport>;
  /**
   * Replaces the index by an exported file, atomically; a damaged file (INDEX_CORRUPT) or one
   * built by another model (INDEX_MODEL_MISMATCH) changes nothing.
   */
  importIndex(file: Uint8Array | ArrayBuffer | Blob): Promise<ImportResult>;
  /** Frees the model, the index and the worker. Later calls fail with CLOSED. */
  close(): Promise<void>;
}

function closedError(): ColbertError {
  return new ColbertError('CLOSED', 'This search instance was closed; create a new one.');
}

abstract class BaseSearch implements ColbertSearch {
  protected closed = false;
  /** Rejects with CLOSED once close() is done: every call still in flight then fails with it. */
  private readonly gone: Promise<never>;
  private goneNow!: (err: ColbertError) => void;
  constructor(readonly info: EngineInfo) {
    this.gone = new Promise<never>((_, reject) => (this.goneNow = reject));
    this.gone.catch(() => undefined); // observed through guard()
  }
  protected abstract get scoring(): ScoringStatus;
  get scoringDevice(): ScoringDevice {
    return this.scoring.device;
  }
  get scoringFallbackReason(): string | undefined {
    return this.scoring.fallbackReason;
  }
  get scoringThreads(): number {
    return this.scoring.threads ?? 1;
  }
  get scoringThreadsFallbackReason(): string | undefined {
    return this.scoring.threadsFallbackReason;
  }
  get device(): Device {
    return this.info.device;
  }
  get dtype(): Dtype {
    return this.info.dtype;
  }
  get dim(): number {
    return this.info.dim;
  }
  get fallbackReason(): string | undefined {
    return this.info.fallbackReason;
  }
  /**
   * Runs a call of the public API without ever throwing: after close() it rejects with CLOSED,
   * and a call still pending when close() finishes (its worker gone) rejects with CLOSED instead
   * of waiting forever for a reply that cannot come.
   */
  protected guard<T>(fn: () => Promise<T>): Promise<T> {
    if (this.closed) return Promise.reject(closedError());
    let run: Promise<T>;
    try {
      run = fn();
    } catch (err) {
      return Promise.reject(err);
    }
    return Promise.race([run, this.gone]);
  }
  protected check(): void {
    if (this.closed) throw closedError();
  }
  /** Marks the instance closed for new calls (close() has begun). */
  protected markClosed(): void {
    this.closed = true;
  }
  /** Fails every call still in flight with CLOSED (close() is over). */
  protected releasePending(): void {
    this.goneNow(new ColbertError('CLOSED', 'This search instance was closed while the call was running; any write it made is atomic, so the index holds it whole or not at all. Create a new search and retry.'));
  }
  abstract add(docs: DocumentInput[], options?: AddOptions): Promise<AddResult>;
  abstract addEmbeddings(items: EmbeddingInput[]): Promise<AddResult>;
  abstract delete(ids: string[]): Promise<number>;
  abstract search(query: string, options?: SearchOptions): Promise<Hit[]>;
  abstract searchEmbedding(query: TokenMatrix, options?: SearchOptions): Promise<Hit[]>;
  abstract encodeQuery(text: string): Promise<TokenMatrix>;
  abstract encodeDocuments(texts: string[]): Promise<TokenMatrix[]>;
  abstract stats(): Promise<IndexStats>;
  abstract countTokens(texts: string[]): Promise<number[]>;
  abstract explain(query: string, target: ExplainTarget, options?: ExplainOptions): Promise<Explanation>;
  abstract clear(): Promise<void>;
  abstract exportIndex(): Promise<Uint8Array>;
  abstract exportFor(target: ExportTarget, options?: ExportOptions): Promise<ServerExport>;
  abstract importIndex(file: Uint8Array | ArrayBuffer | Blob): Promise<ImportResult>;
  abstract close(): Promise<void>;
}

/** Runs the engine in the calling thread. */
class InThreadSearch extends BaseSearch {
  constructor(private readonly engine: Engine) {
    super(engine.info());
  }
  protected get scoring(): ScoringStatus {
    return this.engine.scoring();
  }
  async add(docs: DocumentInput[], options?: AddOptions) {
    this.check();
    return this.engine.add(docs, options?.onProgress);
  }
  async addEmbeddings(items: EmbeddingInput[]) {
    this.check();
    return this.engine.addEmbeddings(items);
  }
  async delete(ids: string[]) {
    this.check();
    return this.engine.delete(ids);
  }
  async search(query: string, options?: SearchOptions) {
    this.check();
    return this.engine.search(query, options);
  }
  async searchEmbedding(query: TokenMatrix, options?: SearchOptions) {
    this.check();
    return this.engine.searchEmbedding(query, options);
  }
  async encodeQuery(text: string) {
    this.check();
    return this.engine.encodeQuery(text);
  }
  async encodeDocuments(texts: string[]) {
    this.check();
    return this.engine.encodeDocuments(texts);
  }
  async stats() {
    this.check();
    return this.engine.stats();
  }
  async countTokens(texts: string[]) {
    this.check();
    return this.engine.countTokens(texts);
  }
  async explain(query: string, target: ExplainTarget, options?: ExplainOptions) {
    this.check();
    return this.engine.explain(query, target, options);
  }
  async clear() {
    this.check();
    return this.engine.clear();
  }
  async exportIndex() {
    this.check();
    return this.engine.exportIndex();
  }
  async exportFor(target: ExportTarget, options?: ExportOptions) {
    this.check();
    return this.engine.exportFor(target, options);
  }
  async importIndex(file: Uint8Array | ArrayBuffer | Blob) {
    this.check();
    return this.engine.importIndex(file);
  }
  async close() {
    if (this.closed) return;
    this.markClosed();
    try {
      await this.engine.close();
    } finally {
      this.releasePending();
    }
  }
}

/** Runs the engine in a Web Worker through comlink. */
class WorkerSearch extends BaseSearch {
  constructor(
    info: EngineInfo,
    private readonly remote: Comlink.Remote<EngineHost>,
    private readonly worker: Worker,
    private readonly ownsWorker: boolean,
    private readonly crashed: Promise<never>,
  ) {
    super(info);
    this.scoringNow = info.scoring;
  }

  private scoringNow: ScoringStatus;
  protected get scoring(): ScoringStatus {
    return this.scoringNow;
  }

  /** Runs a search, then refreshes where scoring runs (a GPU or sub-worker failure during it falls back). */
  private async ranked(fn: () => Promise<Hit[]>): Promise<Hit[]> {
    const hits = await this.call(fn);
    this.scoringNow = await this.call(() => this.remote.scoring());
    return hits;
  }

  /**
   * Runs a remote call, failing with WORKER_FAILED if the worker dies meanwhile, and with
   * INVALID_ARGUMENT (not a bare DataCloneError) when an argument cannot be posted to it.
   */
  private call<T>(fn: () => Promise<T>): Promise<T> {
    return this.guard(() => Promise.race([fn(), this.crashed])).catch((err: unknown) => {
      if ((err as { name?: unknown } | null)?.name !== 'DataCloneError') throw err;
      const reason = (err as Error).message;
      throw new ColbertError('INVALID_ARGUMENT', `An argument cannot be sent to the colbert-web worker (${reason}); pass plain data (strings, numbers, arrays, plain objects, typed arrays).`, { reason }, { cause: err });
    });
  }

  add(docs: DocumentInput[], options?: AddOptions) {
    return this.call(() => {
      // Refused here, with its code, before structured cloning fails on it or lets it through.
      checkInputMetadata(docs);
      const progress = options?.onProgress ? Comlink.proxy(options.onProgress) : undefined;
      return this.remote.add(docs, progress);
    });
  }
  addEmbeddings(items: EmbeddingInput[]) {
    return this.call(() => {
      checkInputMetadata(items);
      return this.remote.addEmbeddings(items);
    });
  }
  delete(ids: string[]) {
    return this.call(() => this.remote.delete(ids));
  }
  search(query: string, options?: SearchOptions) {
    return this.ranked(() => this.remote.search(query, options));
  }
  searchEmbedding(query: TokenMatrix, options?: SearchOptions) {
    return this.ranked(() => this.remote.searchEmbedding(query, options));
  }
  encodeQuery(text: string) {
    return this.call(() => this.remote.encodeQuery(text));
  }
  encodeDocuments(texts: string[]) {
    return this.call(() => this.remote.encodeDocuments(texts));
  }
  stats() {
    return this.call(() => this.remote.stats());
  }
  countTokens(texts: string[]) {
    return this.call(() => this.remote.countTokens(texts));
  }
  explain(query: string, target: ExplainTarget, options?: ExplainOptions) {
    return this.call(() => this.remote.explain(query, target, options));
  }
  clear() {
    return this.call(() => this.remote.clear());
  }
  exportIndex() {
    return this.call(() => this.remote.exportIndex());
  }
  exportFor(target: ExportTarget, options?: ExportOptions) {
    return this.call(() => this.remote.exportFor(target, options));
  }
  importIndex(file: Uint8Array | ArrayBuffer | Blob) {
    return this.call(() => this.remote.importIndex(file));
  }
  async close() {
    if (this.closed) return;
    this.markClosed();
    try {
      await Promise.race([this.remote.close(), this.crashed]);
    } finally {
      this.remote[Comlink.releaseProxy]();
      if (this.ownsWorker) this.worker.terminate();
      // Replies to calls still pending can no longer come: they fail with CLOSED.
      this.releasePending();
    }
  }
}

function spawnWorker(): Worker {
  // The one place a Worker is created. Bundlers (Vite, webpack 5, Rollup with plugins) recognise
  // exactly this form and bundle the worker file; see README "Workers and bundlers".
  return new Worker(new URL('../workers/engine.worker.ts', import.meta.url), { type: 'module', name: 'colbert-web' });
}

/** Rejects when the worker reports an uncaught error or fails to load. */
function watchWorker(worker: Worker): Promise<never> {
  const crashed = new Promise<never>((_, reject) => {
    const fail = (event: Event) => {
      const message = (event as ErrorEvent).message || 'the worker script failed to load or threw an uncaught error';
      reject(new ColbertError('WORKER_FAILED', `The colbert-web worker failed: ${message}.`, { message }));
    };
    worker.addEventListener('error', fail);
    worker.addEventListener('messageerror', fail);
  });
  crashed.catch(() => undefined); // observed through call(); avoid unhandled-rejection noise
  return crashed;
}

/**
 * Asks the browser to keep this origin's storage under pressure (`navigator.storage.persist()`,
 * a window-only call, hence here and not in the worker). The answer shows in `stats().persisted`.
 */
function requestPersistence(): void {
  const manager = (globalThis.navigator as Navigator | undefined)?.storage;
  if (typeof manager?.persist !== 'function') return;
  manager.persist().catch(() => undefined);
}

/**
 * Loads a model and returns a search instance.
 *
 * @example
 * const search = await createSearch({ model: 'lightonai/ColBERT-Zero-supervised' });
 * await search.add([{ id: 'd1', text: 'Late interaction scores each query token separately.' }]);
 * const hits = await search.search('what is late interaction?', { k: 10 });
 */
export async function createSearch(config: SearchConfig = {}): Promise<ColbertSearch> {
  if (typeof config !== 'object' || config === null) throw new ColbertError('INVALID_ARGUMENT', 'createSearch() takes an options object.');
  const { worker: workerOption, onProgress, onChange, persist, ...rest } = config;
  const options: EngineOptions = { ...rest, model: config.model ?? DEFAULT_MODEL };
  if (persist !== false && (options.storage ?? (options.name !== undefined ? 'indexeddb' : 'memory')) === 'indexeddb') requestPersistence();
  const wasmPaths = rest.wasmPaths ?? defaultWasmPaths();
  if (wasmPaths !== undefined) options.wasmPaths = wasmPaths;
  // Node 20+ may expose a Worker global, but not the browser's module-worker semantics.
  const hasWorker = typeof Worker !== 'undefined' && !isNodeHost();
  const useWorker = workerOption ?? hasWorker;
  if (useWorker === false) {
    // Loaded on demand so that the worker path keeps the model runtime out of the page's bundle.
    const { Engine } = await import('./engine.ts');
    return new InThreadSearch(await Engine.create(options, onProgress, onChange));
  }
  if (!hasWorker) {
    throw new ColbertError('UNSUPPORTED_ENVIRONMENT', 'Web Workers are not available here (Node.js?); pass worker: false to run in this thread.');
  }
  installErrorTransfer();
  const ownsWorker = useWorker === true;
  let worker: Worker;
  try {
    worker = useWorker === true ? spawnWorker() : (useWorker as Worker);
  } catch (err) {
    throw toColbertError(err, 'WORKER_FAILED', 'Could not start the colbert-web worker');
  }
  const crashed = watchWorker(worker);
  const remote = Comlink.wrap<EngineHost>(worker);
  const progress = onProgress ? Comlink.proxy(onProgress) : undefined;
  const change = onChange ? Comlink.proxy(onChange) : undefined;
  try {
    const info = await Promise.race([remote.init(options, progress, change), crashed]);
    return new WorkerSearch(info, remote, worker, ownsWorker, crashed);
  } catch (err) {
    remote[Comlink.releaseProxy]();
    if (ownsWorker) worker.terminate();
    throw err;
  }
}
