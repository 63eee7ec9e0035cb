/**
 * The engine: composes model/ (text -> token matrices), store/ (where they live) and score/
 * (MaxSim). It is the only module that knows all three, and it runs unchanged in the worker and in
 * the calling thread. Every input is validated here before anything changes.
 */
import { ColbertError, isColbertError } from './errors.ts';
import { allowedIds, compileFilter, type Filter, type FilterPredicate } from './filter/index.ts';
import { analyze, resolveLexicalConfig, termFrequencies, type LexicalOptions } from './lexical/analyze.ts';
import { explainBm25, fuse, rankBm25, type Fusion } from './lexical/bm25.ts';
import { checkExport, exportSnapshot, type ExportOptions, type ExportTarget, type ServerExport } from './export/index.ts';
import { loadEncoder, type Encoder, type EncoderInfo, type EncoderOptions } from './model/encoder.ts';
import { explainMaxSim } from './score/cpu.ts';
import { checkThreads, createScorer, type Scorer, type ScoringOption, type ScoringStatus } from './score/scorer.ts';
import { hashText } from './checksum.ts';
import { checkCompression, codecFits, CompressedIndex, type CompressedTrace, type CompressionOptions, type CompressionStats } from './compression.ts';
import { GpuCompressedStages, type GpuStagesStats } from './score/compressed-gpu-stages.ts';
import { poolClusters, poolTokens, type PooledDocument } from './store/pooling.ts';
import type { Scored } from './score/topk.ts';
import { checkIndexName, hasIndexedDB, IdbStore } from './store/idb.ts';
import { checkFingerprint, type ModelFingerprint } from './store/manifest.ts';
import { MemoryStore } from './store/memory.ts';
import { checkMetadata, metadataJson } from './store/metadata.ts';
import { readPortable, writePortable } from './store/portable.ts';
import { VECTOR_PRECISIONS, type VectorPrecision } from './store/precision.ts';
import { MissingEncodingError } from './store/shards.ts';
import type { DocumentInput, EmbeddingInput, ExplainedToken, Explanation, ExplainTarget, Hit, Metadata, ProgressCallback, TokenMatrix } from './types.ts';
import type { CommitItem, StoredDocument, VectorStore } from './store/types.ts';

function checkSearchOptions(options: SearchOptions): void {
  if (options.exhaustive !== undefined && typeof options.exhaustive !== 'boolean') throw new ColbertError('INVALID_ARGUMENT', `exhaustive must be true or false; got ${JSON.stringify(options.exhaustive)}.`);
  checkKnob(options.nprobe, 'nprobe');
  checkKnob(options.candidates, 'candidates');
  checkKnob(options.rerankDepth, 'rerankDepth');
}

/** Options the engine takes: the model options plus storage. */
export interface EngineOptions extends Omit<EncoderOptions, 'onProgress'> {
  /**
   * Name of a persistent index: opened if it exists (never re-encoding anything), created if not.
   * Several names live side by side. Giving a name makes `storage` default to 'indexeddb'.
   */
  name?: string;
  /**
   * Where the index lives: 'indexeddb' (persistent, crash-safe; needs IndexedDB) or 'memory'
   * (gone on reload). Default 'indexeddb' when `name` is given, else 'memory'.
   */
  storage?: IndexStorage;
  /**
   * Storage precision of token vectors: 'fp16' (default for new indexes), 'fp32' (exact), or
   * 'int8' with a per-token scale. An existing persistent index keeps the precision it was
   * created with (older indexes were fp32 by default and stay so).
   */
  precision?: VectorPrecision;
  /**
   * A compressed, candidate-generating index (PLAID style) beside the stored vectors: centroid
   * codes and `nbits` residuals per token, optional token pooling of documents, searched through
   * inverted lists. See the README's "Compressed index".
   */
  compression?: CompressionOptions;
  /**
   * Where MaxSim runs: 'auto' (default: WebGPU on a hardware GPU, else the CPU), 'webgpu' (any
   * adapter, fails with DEVICE_UNAVAILABLE when there is none) or 'cpu'. A GPU that fails later
   * falls back to the CPU; see {@link Engine.scoring}.
   */
  scoring?: ScoringOption;
  /**
   * Threads MaxSim uses on the CPU (this thread plus sub-workers), a positive integer. Default
   * `min(navigator.hardwareConcurrency, 8)` where the page is cross-origin isolated (COOP/COEP),
   * else 1. Several threads need shared memory: without isolation scoring keeps to one and
   * `info.scoring.threadsFallbackReason` says why. Small indexes always score on one thread.
   */
  scoringThreads?: number;
  /**
   * How document texts are indexed for lexical (BM25) search: `language` (BCP 47, default 'en')
   * for word segmentation; English also gets Porter `stemming` and `stopWords` removal (both
   * default true). A persistent index keeps the settings it was created with.
   */
  lexical?: LexicalOptions;
}

/** Where an index lives. */
export type IndexStorage = 'indexeddb' | 'memory';

/** What another tab or worker changed in this search's persistent index (the index is already up to date). */
export interface IndexChange {
  name: string;
  documents: number;
  tokens: number;
}

/** Called when another tab or worker changed the index. */
export type IndexChangeCallback = (change: IndexChange) => void;

/** What {@link Engine.info} reports about the running model. */
export type EngineInfo = Omit<EncoderInfo, 'config'> & {
  queryLength: number;
  documentLength: number;
  prompts: { query: string; document: string };
  /** Most tokens of a document's own text that are encoded (documentLength minus prompt, specials and marker); the rest is truncated. */
  documentTextBudget: number;
  /** Where MaxSim runs (as of this call) and why not on the GPU, when it is not. */
  scoring: ScoringStatus;
};

/** Options for a search. */
export interface SearchOptions {
  /** Number of hits to return (at most the number of documents). Default 10. */
  k?: number;
  /**
   * Only documents whose metadata passes this filter are scored and returned (see the README's
   * Filters section); `k` hits come back when at least `k` documents pass. A malformed filter is
   * INVALID_FILTER.
   */
  filter?: Filter;
  /**
   * 'semantic' (default): late-interaction MaxSim. 'lexical': BM25 over the documents' words.
   * 'hybrid': both, fused by `fusion`. `searchEmbedding` is semantic only (it has no query text).
   */
  mode?: SearchMode;
  /** Hybrid fusion: 'rrf' (reciprocal rank, k = 60; default) or 'relative' (min-max scores weighted by `alpha`). */
  fusion?: Fusion;
  /** Relative fusion: the late-interaction weight in [0, 1], lexical gets `1 - alpha`. Default 0.75. */
  alpha?: number;
  /** Score every document exactly, bypassing the compressed index (the oracle). Default false. */
  exhaustive?: boolean;
  /** Compressed index: centroids probed per query token (default by index size). */
  nprobe?: number;
  /** Compressed index: documents scored from residuals after centroid interaction (default by index size). */
  candidates?: number;
  /** Compressed index with rerank: the best of those rescored exactly from the stored vectors (default 64, 4 per hit beyond 16). */
  rerankDepth?: number;
}

/** How a search ranks. */
export type SearchMode = 'semantic' | 'lexical' | 'hybrid';
const SEARCH_MODES: readonly SearchMode[] = ['semantic', 'lexical', 'hybrid'];
/** How many of each list a hybrid search fuses (at least k). */
const HYBRID_DEPTH = 100;
export interface ExplainOptions {
  /** A search filter: the explanation then says whether the document passes it (`matchesFilter`). */
  filter?: Filter;
}

/** What `add` reports. */
export interface AddResult {
  /** Documents now stored by this call (new or replaced; an identical document already stored is not counted). */
  added: number;
  /** Token vectors encoded by this call (add) or stored by it (addEmbeddings). */
  tokens: number;
  /**
   * Documents not encoded because their encoding was found: stored already with the same text
   * and metadata (left as they are), or staged by an earlier, interrupted `add` of the same text.
   */
  skipped: number;
}

/** Index counts and storage figures. */
export interface IndexStats {
  documents: number;
  tokens: number;
  /**
   * Bytes of token vectors held in memory (live and not yet compacted), with the compressed
   * index's codes: once a named compressed index is ready its full vectors stay in IndexedDB
   * (read on demand) and are not counted; the memory store always holds them.
   */
  vectorBytes: number;
  storage: IndexStorage;
  /** The index name (persistent indexes). */
  name?: string;
  precision: VectorPrecision;
  /** The lexical index: documents indexed from text (documents added as embeddings have no words). */
  lexicalDocuments: number;
  /** Bytes this index takes in IndexedDB (binary parts exact; ids, metadata, texts and the compressed index's stored codes estimated from their counts). */
  bytesOnDisk?: number;
  /** Bytes this origin uses, from `navigator.storage.estimate()`, where known. */
  usage?: number;
  /** Bytes this origin may use, from `navigator.storage.estimate()`, where known. */
  quota?: number;
  /** Whether the browser granted persistent storage (not evicted under pressure), where known. */
  persisted?: boolean;
  /** The compressed index, when `compression` was given (its `codeBytes` are included in `vectorBytes`). */
  compression?: CompressionStats;
}

/** What `importIndex` reports. */
export interface ImportResult {
  documents: number;
  tokens: number;
}

/** How many documents are encoded per progress step and per store write. */
const ADD_CHUNK = 64;
/** Commits an add tries while other writes keep taking the encodings it staged. */
const MAX_COMMIT_ATTEMPTS = 8;

function isPlainObject(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

function checkId(id: unknown, index: number): string {
  if (typeof id !== 'string' || id.length === 0) {
    throw new ColbertError('MISSING_ID', `Item ${index} has no id (got ${JSON.stringify(id)}); ids must be non-empty strings.`, { index });
  }
  return id;
}

function checkUnique(ids: readonly string[]): void {
  const seen = new Set<string>();
  for (const id of ids) {
    if (seen.has(id)) throw new ColbertError('DUPLICATE_ID', `The id "${id}" appears more than once in one call.`, { id });
    seen.add(id);
  }
}

/** Validates texts for encoding; returns them as strings. */
export function checkTexts(texts: unknown, what: string): string[] {
  if (!Array.isArray(texts)) throw new ColbertError('INVALID_ARGUMENT', `${what} must be an array of strings.`);
  return texts.map((text, index) => checkText(text, `${what}[${index}]`));
}

function checkText(text: unknown, what: string): string {
  if (typeof text !== 'string') throw new ColbertError('NOT_A_STRING', `${what} must be a string; got ${text === null ? 'null' : typeof text}.`, { what });
  if (text.trim() === '') throw new ColbertError('EMPTY_TEXT', `${what} is empty; every text needs some content.`, { what });
  return text;
}

/** Checks a caller-supplied token matrix against the model's dimension. */
export function checkMatrix(matrix: unknown, dim: number, what: string): TokenMatrix {
  if (!isPlainObject(matrix)) throw new ColbertError('INVALID_MATRIX', `${what} must be { data: Float32Array, tokens, dim }.`, { what });
  const { data, tokens, dim: mdim, ids } = matrix as Partial<TokenMatrix>;
  if (!(data instanceof Float32Array)) throw new ColbertError('INVALID_MATRIX', `${what}.data must be a Float32Array.`, { what });
  if (!Number.isInteger(tokens) || (tokens as number) < 0) throw new ColbertError('INVALID_MATRIX', `${what}.tokens must be a non-negative integer.`, { what, tokens });
  if (mdim !== dim) {
    throw new ColbertError('DIMENSION_MISMATCH', `${what} has dim ${String(mdim)}, but the model produces ${dim}-dimensional vectors.`, { what, dim: mdim, expected: dim });
  }
  if (data.length !== (tokens as number) * dim) {
    throw new ColbertError('INVALID_MATRIX', `${what}.data has ${data.length} values; tokens x dim is ${(tokens as number) * dim}.`, { what });
  }
  for (let i = 0; i < data.length; i++) {
    if (!Number.isFinite(data[i]!)) throw new ColbertError('INVALID_MATRIX', `${what}.data holds a non-finite value at ${i}.`, { what, index: i });
  }
  if (ids !== undefined && (!(ids instanceof Int32Array) || ids.length !== tokens)) {
    throw new ColbertError('INVALID_MATRIX', `${what}.ids must be an Int32Array with one id per token.`, { what });
  }
  return { data, tokens: tokens as number, dim, ids: ids ?? new Int32Array(tokens as number).fill(-1) };
}

function checkKnob(value: unknown, name: string): number | undefined {
  if (value === undefined) return undefined;
  if (!Number.isInteger(value) || (value as number) <= 0) throw new ColbertError('INVALID_ARGUMENT', `${name} must be a positive integer; got ${JSON.stringify(value)}.`, { [name]: value });
  return value as number;
}

function checkK(k: unknown): number {
  if (k === undefined) return 10;
  if (!Number.isInteger(k) || (k as number) <= 0) throw new ColbertError('INVALID_K', `k must be a positive integer; got ${JSON.stringify(k)}.`, { k });
  return k as number;
}

function checkMode(options: SearchOptions | undefined): { mode: SearchMode; fusion: Fusion; alpha: number } {
  const mode = options?.mode ?? 'semantic';
  const fusion = options?.fusion ?? 'rrf';
  const alpha = options?.alpha ?? 0.75;
  if (!SEARCH_MODES.includes(mode)) throw new ColbertError('INVALID_ARGUMENT', `Unknown search mode ${JSON.stringify(mode)}; use 'semantic', 'lexical' or 'hybrid'.`, { mode });
  if (fusion !== 'rrf' && fusion !== 'relative') throw new ColbertError('INVALID_ARGUMENT', `Unknown fusion ${JSON.stringify(fusion)}; use 'rrf' or 'relative'.`, { fusion });
  if (typeof alpha !== 'number' || !(alpha >= 0 && alpha <= 1)) throw new ColbertError('INVALID_ARGUMENT', `alpha must be a number from 0 to 1 (the late-interaction weight of relative fusion); got ${JSON.stringify(alpha)}.`, { alpha });
  return { mode, fusion, alpha };
}

function checkFilter(filter: unknown): FilterPredicate | undefined {
  return filter === undefined ? undefined : compileFilter(filter);
}

/** Model + index + scoring. Create with {@link Engine.create}. */
export class Engine {
  private closed = false;

  private constructor(
    private readonly encoder: Encoder,
    private readonly store: VectorStore,
    private readonly scorer: Scorer,
    private readonly fingerprint: ModelFingerprint,
    private readonly storage: IndexStorage,
    private readonly name: string | undefined,
    private readonly compressed: CompressedIndex | undefined,
  ) {}

  /** Loads the model and opens the index. `onChange` hears about other tabs' writes to a persistent index. */
  static async create(options: EngineOptions, onProgress?: ProgressCallback, onChange?: IndexChangeCallback): Promise<Engine> {
    if (!isPlainObject(options)) throw new ColbertError('INVALID_ARGUMENT', 'Options must be an object.');
    const storage = options.storage ?? (options.name !== undefined ? 'indexeddb' : 'memory');
    if (storage !== 'memory' && storage !== 'indexeddb') throw new ColbertError('INVALID_ARGUMENT', `Unknown storage ${JSON.stringify(storage)}; use 'indexeddb' or 'memory'.`, { storage });
    const name = storage === 'indexeddb' || options.name !== undefined ? checkIndexName(options.name ?? 'default') : undefined;
    // Fail before downloading a model when the index cannot live here.
    if (storage === 'indexeddb' && !hasIndexedDB()) {
      throw new ColbertError('UNSUPPORTED_ENVIRONMENT', "storage: 'indexeddb' needs IndexedDB, which this environment lacks (Node.js?). Use storage: 'memory'; exportIndex()/importIndex() work there too.", { storage });
    }
    const safeProgress: ProgressCallback | undefined = onProgress
      ? (p) => {
          try {
            onProgress(p);
          } catch {
            // A failing progress callback must not break loading.
          }
        }
      : undefined;
    // Fail before downloading a model on a bad lexical option.
    if (options.lexical !== undefined) resolveLexicalConfig(options.lexical);
    const precision = options.precision;
    const compression = checkCompression(options.compression);
    if (precision !== undefined && !VECTOR_PRECISIONS.includes(precision)) {
      throw new ColbertError('INVALID_ARGUMENT', `Unknown precision ${JSON.stringify(precision)}; use one of ${VECTOR_PRECISIONS.map((p) => `'${p}'`).join(', ')}.`, { precision });
    }
    // Before the model loads, so that a bad or unavailable scoring option fails fast.
    const scorer = await createScorer({ scoring: options.scoring ?? 'auto', ...(options.scoringThreads !== undefined ? { threads: checkThreads(options.scoringThreads) } : {}) });
    // Shards go to shared memory only where CPU sub-workers will read them (never for the GPU).
    const sharedMemory = scorer.device === 'cpu' && (scorer.threads ?? 1) > 1;
    let encoder: Encoder | undefined;
    try {
      encoder = await loadEncoder({ ...options, onProgress: safeProgress });
      const fingerprint = fingerprintOf(encoder.info, encoder.dim);
      const compressed = compression ? new CompressedIndex(compression) : undefined;
      const store: VectorStore =
        storage === 'memory'
          ? new MemoryStore({ precision: precision ?? 'fp16', fingerprint, sharedMemory, ...(options.lexical !== undefined ? { lexical: options.lexical } : {}) })
          : await IdbStore.open({
              name: name!,
              fingerprint,
              sharedMemory,
              ...(options.lexical !== undefined ? { lexical: options.lexical } : {}),
              ...(precision !== undefined ? { precision } : {}),
              newPrecision: 'fp16',
              // A stored compressed index serves searches from its codes: the rows stay in IndexedDB.
              rowsOnDemand: compressed !== undefined,
              onChange: (change) => {
                // Another tab changed the index: the codes follow from what it stored (read, not re-trained).
                if (compressed) void Promise.resolve().then(() => compressed.sync(store)).catch(() => undefined);
                try {
                  onChange?.({ name: name!, ...change });
                } catch {
                  // A failing listener must not break the store.
                }
              },
            });
      // Compile the scoring pipeline for the index's own precision (an existing index keeps the
      // one it was created with) while the caller adds documents; a failure falls back inside.
      void scorer.prepare(store.precision, encoder.dim).catch(() => undefined);
      // The compressed search's stages run where MaxSim does, on the scorer's own device.
      if (compressed && scorer.device === 'webgpu') {
        compressed.setGpu(new GpuCompressedStages({ device: () => (scorer.device === 'webgpu' ? scorer.gpuDevice?.() : undefined), reason: () => scorer.fallbackReason }));
      } else if (compressed) {
        compressed.setGpu(undefined, scorer.fallbackReason);
      }
      await compressed?.open(store);
      // A persistent store keeps its full-precision rows in IndexedDB only (read on demand) while
      // the compressed index serves searches from its codes, and in memory otherwise (exhaustive
      // search): from now on, whenever its readiness flips (a training in the background included).
      await compressed?.onReadyChange((ready) => store.setRowResidency?.(ready ? 'on-demand' : 'all'));
      return new Engine(encoder, store, scorer, fingerprint, storage, name, compressed);
    } catch (err) {
      scorer.dispose();
      await encoder?.dispose();
      throw err;
    }
  }

  private check(): void {
    if (this.closed) throw new ColbertError('CLOSED', 'This search instance was closed; create a new one.');
  }

  /** The model that runs, the device it runs on and why. */
  info(): EngineInfo {
    const { config, ...rest } = this.encoder.info;
    return {
      ...rest,
      queryLength: config.queryLength,
      documentLength: config.documentLength,
      prompts: { query: config.queryPrompt, document: config.documentPrompt },
      documentTextBudget: this.encoder.tokenizer.documentTextBudget(),
      scoring: this.scoring(),
    };
  }

  /** Where MaxSim runs now (on how many CPU threads), and why not on the GPU or more threads. */
  scoring(): ScoringStatus {
    const { device, fallbackReason, threadsFallbackReason } = this.scorer;
    const status: ScoringStatus = { device };
    if (fallbackReason !== undefined) status.fallbackReason = fallbackReason;
    if (device === 'cpu') status.threads = this.scorer.threads ?? 1;
    if (threadsFallbackReason !== undefined) status.threadsFallbackReason = threadsFallbackReason;
    if (this.compressed) status.compressed = this.compressed.scoring();
    return status;
  }

  /** Encodes and stores documents; an existing id is replaced. */
  /**
   * Encodes and stores documents; an existing id is replaced. The batch becomes visible whole or
   * not at all. Encodings are staged chunk by chunk as they are computed, so calling `add` again
   * with the same documents after an interruption (closed tab, killed worker, full quota) skips
   * what was already encoded; documents stored already with the same text and metadata are left
   * as they are. Progress reports `skipped` for both.
   */
  async add(docs: readonly DocumentInput[], onProgress?: ProgressCallback): Promise<AddResult> {
    this.check();
    if (!Array.isArray(docs)) throw new ColbertError('INVALID_ARGUMENT', 'add() takes an array of { id, text, metadata? }.');
    const items = docs.map((doc, index) => {
      if (!isPlainObject(doc)) throw new ColbertError('INVALID_ARGUMENT', `Item ${index} must be an object { id, text, metadata? }.`, { index });
      const id = checkId(doc['id'], index);
      const text = checkText(doc['text'], `Document "${id}" text`);
      return { id, text, hash: hashText(text), metadata: checkMetadata(doc['metadata'], id) };
    });
    checkUnique(items.map((d) => d.id));
    try {
      return await this.addChecked(items, onProgress);
    } catch (err) {
      // Whatever failed because close() took the model or the store away is CLOSED.
      if (this.closed && !(isColbertError(err) && err.code === 'CLOSED')) throw new ColbertError('CLOSED', 'This search instance was closed while add() was running; nothing of this batch was committed. Create a new search and add again (encoded chunks are reused).', undefined, { cause: err });
      throw err;
    }
  }

  private async addChecked(items: { id: string; text: string; hash: string; metadata: Metadata | undefined }[], onProgress?: ProgressCallback): Promise<AddResult> {
    const ids = items.map((d) => d.id);
    const [states, stored] = await Promise.all([this.store.lookup(ids, items.map((d) => d.hash)), this.store.metadata(ids)]);
    this.check();
    // Stored metadata that is not JSON (from an older version) never counts as the same.
    const sameMeta = (i: number) => metadataJson(stored[i]) !== undefined && metadataJson(stored[i]) === metadataJson(items[i]!.metadata);
    const unchanged = items.filter((_, i) => states[i] === 'live' && sameMeta(i));
    const toEncode = items.filter((_, i) => states[i] === 'none');
    const skipped = items.length - toEncode.length;
    let done = skipped;
    let tokens = 0;
    onProgress?.({ status: 'encode', done, total: items.length, tokens, skipped });
    // Encode and stage chunk by chunk: nothing is visible until the one commit below.
    const encodeAndStage = async (docs: readonly { id: string; text: string; hash: string }[], report: boolean) => {
      for (let start = 0; start < docs.length; start += ADD_CHUNK) {
        const chunk = docs.slice(start, start + ADD_CHUNK);
        const matrices = (await this.encoder.encodeDocuments(chunk.map((d) => d.text))).map((m) => this.pool(m));
        this.check();
        await this.store.stage(chunk.map((d, i) => ({ id: d.id, hash: d.hash, matrix: matrices[i]! })));
        tokens += matrices.reduce((n, m) => n + m.tokens, 0);
        if (!report) continue;
        done += chunk.length;
        onProgress?.({ status: 'encode', done, total: items.length, tokens, skipped });
      }
    };
    await encodeAndStage(toEncode, true);
    const keep = new Set(unchanged.map((d) => d.id));
    const commit = items
      .filter((d) => !keep.has(d.id))
      .map((d): CommitItem => (d.metadata === undefined ? { id: d.id, hash: d.hash, text: d.text } : { id: d.id, hash: d.hash, text: d.text, metadata: d.metadata }));
    for (let attempt = 1; ; attempt++) {
      this.check();
      try {
        await this.store.commit(commit);
        break;
      } catch (err) {
        // Another write took encodings this batch counted on (a clear, a delete, a concurrent add
        // of the same ids, in this tab or another): nothing was written, so encode those again
        // and retry. Writes thus serialise in some order instead of failing.
        if (!(err instanceof MissingEncodingError)) throw err;
        if (attempt >= MAX_COMMIT_ATTEMPTS) {
          throw new ColbertError('STORAGE_FAILED', `Other writes to this index removed the encodings of this add ${attempt} times before it could commit; nothing of it was committed. Try again.`, { ids: err.ids }, { cause: err });
        }
        const missing = new Set(err.ids);
        await encodeAndStage(items.filter((d) => missing.has(d.id)), false);
      }
    }
    await this.compressed?.update(this.store, commit.map((d) => d.id));
    onProgress?.({ status: 'store', done: items.length, total: items.length });
    return { added: commit.length, tokens, skipped };
  }

  /** Stores precomputed document matrices (for example from PyLate); dims must match the model. */
  async addEmbeddings(items: readonly EmbeddingInput[]): Promise<AddResult> {
    this.check();
    if (!Array.isArray(items)) throw new ColbertError('INVALID_ARGUMENT', 'addEmbeddings() takes an array of { id, embedding, metadata? }.');
    const docs = items.map((item, index): StoredDocument => {
      if (!isPlainObject(item)) throw new ColbertError('INVALID_ARGUMENT', `Item ${index} must be an object { id, embedding, metadata? }.`, { index });
      const id = checkId(item['id'], index);
      const matrix = this.pool(checkMatrix(item['embedding'], this.encoder.dim, `Embedding of "${id}"`));
      const metadata = checkMetadata(item['metadata'], id);
      return metadata === undefined ? { id, matrix } : { id, matrix, metadata };
    });
    checkUnique(docs.map((d) => d.id));
    await this.store.put(docs);
    await this.compressed?.update(this.store, docs.map((d) => d.id));
    return { added: docs.length, tokens: docs.reduce((n, d) => n + d.matrix.tokens, 0), skipped: 0 };
  }

  /** Removes every document of the index (and staged encodings). */
  async clear(): Promise<void> {
    this.check();
    await this.store.clear();
    await this.compressed?.reset();
  }

  /** Hierarchical token pooling of a document matrix, when the compression options ask for it. */
  private pool(matrix: TokenMatrix): TokenMatrix {
    const factor = this.compressed?.options.poolFactor ?? 1;
    return factor > 1 ? poolTokens(matrix, factor) : matrix;
  }

  /**
   * @internal The compressed index's last query (device, probes, candidate and survivor ids) and
   * its GPU copy of the codes, for tests that compare the GPU and CPU stages. Not in the public types.
   */
  compressedDiagnostics(): { lastQuery: CompressedTrace | undefined; gpu: GpuStagesStats | undefined } | undefined {
    const c = this.compressed;
    if (!c) return undefined;
    const stages = c.gpuStages;
    return { lastQuery: c.lastQuery, gpu: stages instanceof GpuCompressedStages ? stages.stats() : undefined };
  }

  /** Resolves when the compressed index is not (re)training (tests, benchmarks). */
  async settled(): Promise<void> {
    await this.compressed?.settled();
  }

  /**
   * The whole index as one portable, versioned file (manifest, documents with their metadata and
   * texts, vectors; checksummed), for `importIndex` here or anywhere else.
   */
  async exportIndex(): Promise<Uint8Array> {
    this.check();
    // A (re)training that runs is waited for, so that the file carries the newest codes.
    await this.compressed?.idle();
    const snapshot = await this.store.snapshot({ codes: true });
    if (this.compressed && !snapshot.compression) {
      const codes = this.compressed.snapshotCodes(snapshot);
      if (codes) snapshot.compression = codes;
    }
    return writePortable(snapshot);
  }

  /**
   * Replaces the whole index by an exported file, atomically. The file is verified completely
   * first: a damaged or truncated one is INDEX_CORRUPT, one built by another model
   * INDEX_MODEL_MISMATCH, and the index is then left unchanged. Vectors are converted when the
   * file's precision differs from this index's.
   */
  async importIndex(file: Uint8Array | ArrayBuffer | Blob): Promise<ImportResult> {
    this.check();
    let bytes: Uint8Array;
    if (file instanceof Uint8Array) bytes = file;
    else if (file instanceof ArrayBuffer) bytes = new Uint8Array(file);
    else if (typeof Blob !== 'undefined' && file instanceof Blob) bytes = new Uint8Array(await file.arrayBuffer());
    else throw new ColbertError('INVALID_ARGUMENT', 'importIndex() takes a Uint8Array, an ArrayBuffer or a Blob holding an exported index.');
    const snapshot = readPortable(bytes);
    checkFingerprint(snapshot.manifest.fingerprint, this.fingerprint, 'This index file');
    if (snapshot.manifest.dim !== this.encoder.dim) {
      throw new ColbertError('DIMENSION_MISMATCH', `This index file holds dim ${snapshot.manifest.dim}; the model produces ${this.encoder.dim}.`, { dim: snapshot.manifest.dim, expected: this.encoder.dim });
    }
    // The file's codes are used when they fit this index's compression options; else it trains its own.
    if (snapshot.compression && !(this.compressed && codecFits(snapshot.compression.codec, this.compressed.options, snapshot.manifest.dim))) delete snapshot.compression;
    await this.store.restore(snapshot);
    await this.compressed?.reopen(this.store, snapshot.compression ? { codes: snapshot.compression, shards: snapshot.shards } : undefined);
    const stats = await this.store.stats();
    return { documents: stats.documents, tokens: stats.tokens };
  }

  /**
   * The index for a server engine ('qdrant', 'vespa', 'next-plaid', 'elasticsearch'): its
   * collection or schema definition, and the documents (ids, metadata, texts, every token vector)
   * as that engine's request bodies, streamed one document or batch at a time from a snapshot
   * taken now. See the README's "Export to server engines".
   */
  async exportFor(target: ExportTarget, options?: ExportOptions): Promise<ServerExport> {
    this.check();
    checkExport(target, options);
    return exportSnapshot(await this.store.snapshot(), target, options);
  }

  /** Removes documents; every id must be stored, else nothing is removed (UNKNOWN_ID). */
  async delete(ids: readonly string[]): Promise<number> {
    this.check();
    if (!Array.isArray(ids)) throw new ColbertError('INVALID_ARGUMENT', 'delete() takes an array of ids.');
    ids.forEach((id, index) => checkId(id, index));
    checkUnique(ids);
    const present = await this.store.has(ids);
    const unknown = ids.filter((_, i) => !present[i]);
    if (unknown.length) {
      throw new ColbertError('UNKNOWN_ID', `No document has the id${unknown.length > 1 ? 's' : ''} ${unknown.map((id) => `"${id}"`).join(', ')}; nothing was deleted.`, { ids: unknown });
    }
    const removed = await this.store.delete(ids);
    await this.compressed?.update(this.store, [], removed);
    return removed.length;
  }

  /** Encodes one query into its token matrix. */
  async encodeQuery(text: string): Promise<TokenMatrix> {
    this.check();
    const [matrix] = await this.encoder.encodeQueries([checkText(text, 'The query')]);
    return matrix!;
  }

  /** Encodes documents into token matrices without storing them. */
  async encodeDocuments(texts: readonly string[]): Promise<TokenMatrix[]> {
    this.check();
    return this.encoder.encodeDocuments(checkTexts(texts, 'texts'));
  }

  /** Encodes the query and returns the k best documents, best first. */
  async search(query: string, options: SearchOptions = {}): Promise<Hit[]> {
    this.check();
    const k = checkK(options?.k);
    const predicate = checkFilter(options?.filter);
    const { mode, fusion, alpha } = checkMode(options);
    checkSearchOptions(options);
    checkText(query, 'The query');
    if (mode === 'lexical') return this.withMetadata(await this.lexicalRank(query, k, await this.allowed(predicate)));
    const matrix = await this.encodeQuery(query);
    if (mode === 'semantic') return this.rank(matrix, k, options, predicate);
    const allowed = await this.allowed(predicate);
    if (allowed?.size === 0) return [];
    const depth = Math.max(k, HYBRID_DEPTH);
    const [semantic, lexical] = await Promise.all([this.semanticRank(matrix, depth, options, allowed), this.lexicalRank(query, depth, allowed)]);
    return this.withMetadata(fuse(semantic, lexical, k, fusion, alpha));
  }

  /** BM25 over the lexical index (only `allowed` documents when given). */
  private async lexicalRank(query: string, k: number, allowed: Set<string> | undefined): Promise<{ id: string; score: number }[]> {
    if (allowed?.size === 0) return [];
    const terms = analyze(query, this.store.lexical);
    if (!terms.length) return [];
    return rankBm25(terms, await this.store.postings(terms), k, allowed);
  }

  private async withMetadata(best: readonly { id: string; score: number; semantic?: number; lexical?: number }[]): Promise<Hit[]> {
    const metadata = await this.store.metadata(best.map((h) => h.id));
    return best.map((h, i) => {
      const hit: Hit = { id: h.id, score: h.score };
      if (h.semantic !== undefined || h.lexical !== undefined) {
        hit.scores = {};
        if (h.semantic !== undefined) hit.scores.semantic = h.semantic;
        if (h.lexical !== undefined) hit.scores.lexical = h.lexical;
      }
      if (metadata[i] !== undefined) hit.metadata = metadata[i];
      return hit;
    });
  }

  /** Ranks documents for a precomputed query matrix. */
  async searchEmbedding(query: TokenMatrix, options: SearchOptions = {}): Promise<Hit[]> {
    this.check();
    const k = checkK(options?.k);
    const predicate = checkFilter(options?.filter);
    checkSearchOptions(options);
    if (checkMode(options).mode !== 'semantic') {
      throw new ColbertError('INVALID_ARGUMENT', `searchEmbedding() ranks by late interaction only (it has no query text for BM25); use search(text, { mode: '${String(options?.mode)}' }).`, { mode: options?.mode });
    }
    const matrix = checkMatrix(query, this.encoder.dim, 'The query embedding');
    // MaxSim sums over query tokens: with none every score would be 0, which ranks nothing.
    if (matrix.tokens === 0) throw new ColbertError('INVALID_MATRIX', 'The query embedding has 0 tokens; a query needs at least one token vector (encodeQuery() always gives some).', { what: 'The query embedding', tokens: 0 });
    return this.rank(matrix, k, options, predicate);
  }

  /** The documents a filter lets through (undefined: every document). */
  private async allowed(predicate: FilterPredicate | undefined): Promise<Set<string> | undefined> {
    return predicate ? allowedIds(predicate, await this.store.allMetadata()) : undefined;
  }

  private async rank(query: TokenMatrix, k: number, options: SearchOptions = {}, predicate?: FilterPredicate): Promise<Hit[]> {
    return this.withMetadata(await this.semanticRank(query, k, options, await this.allowed(predicate)));
  }

  /**
   * The k best by late interaction among `allowed` (every document when absent): through the
   * compressed index when it is ready (its candidates restricted to `allowed`), else exhaustively.
   */
  private async semanticRank(query: TokenMatrix, k: number, options: SearchOptions, allowed: Set<string> | undefined): Promise<Scored[]> {
    if (allowed?.size === 0) return [];
    const compressed = this.compressed;
    if (compressed?.ready && options.exhaustive !== true) {
      return compressed.search(
        query,
        k,
        { ...(options.nprobe !== undefined ? { nprobe: options.nprobe } : {}), ...(options.candidates !== undefined ? { candidates: options.candidates } : {}), ...(options.rerankDepth !== undefined ? { rerankDepth: options.rerankDepth } : {}), ...(allowed ? { allowed: (id: string) => allowed.has(id) } : {}) },
        (ids) => this.exact(query, ids, k),
        // The likely rerank set's rows, read (where they are on demand) while the residual stage runs.
        this.store.prefetchRows ? (ids) => this.store.prefetchRows!(ids) : undefined,
      );
    }
    return this.scorer.rank(query, () => this.store.shards(), k, allowed);
  }

  /**
   * The exact top `k` of `ids`, scored by the engine's scorer from the stored vectors (the
   * compressed index's rerank): read together, from IndexedDB where the rows are on demand.
   */
  private async exact(query: TokenMatrix, ids: string[], k: number): Promise<Scored[]> {
    // The stored rows as they are (fp16, int8: the kernel of the stored shards), never decoded here.
    const shard = await this.store.rowsShard(ids, `rerank:${++this.rerankRuns}`);
    return this.scorer.rank(query, async function* () {
      yield shard;
    }, k);
  }

  private rerankRuns = 0;

  /** Tokens each text takes on its own (no prompt, specials or marker; not truncated). */
  async countTokens(texts: readonly string[]): Promise<number[]> {
    this.check();
    if (!Array.isArray(texts)) throw new ColbertError('INVALID_ARGUMENT', 'countTokens() takes an array of strings.');
    return texts.map((text, i) => {
      if (typeof text !== 'string') throw new ColbertError('NOT_A_STRING', `texts[${i}] must be a string; got ${text === null ? 'null' : typeof text}.`, { index: i });
      return this.encoder.tokenizer.countTokens(text);
    });
  }

  /**
   * Explains a score: for every query token, the document token it matched best and the dot
   * product it added. With an indexed `id` the stored vectors are used (so the total equals the
   * hit's score); with `text` the tokens get character spans in that text.
   */
  async explain(query: string, target: ExplainTarget, options: ExplainOptions = {}): Promise<Explanation> {
    this.check();
    if (options !== undefined && !isPlainObject(options)) throw new ColbertError('INVALID_ARGUMENT', 'explain() options must be an object like { filter }.');
    const predicate = checkFilter(options?.filter);
    const raw: unknown = target;
    if (!isPlainObject(raw)) throw new ColbertError('INVALID_ARGUMENT', 'explain() takes a query and { id } or { text } (or both).');
    const id = raw['id'];
    const text = raw['text'];
    if (id === undefined && text === undefined) throw new ColbertError('INVALID_ARGUMENT', 'explain() needs { id } of an indexed document or { text }.');
    if (id !== undefined) checkId(id, 0);
    if (text !== undefined) checkText(text, 'The text to explain');
    const tokenizer = this.encoder.tokenizer;
    const queryMatrix = await this.encodeQuery(query);
    const poolFactor = this.compressed?.options.poolFactor ?? 1;
    let matrix: TokenMatrix;
    if (typeof id === 'string') {
      const stored = await this.store.matrix(id);
      if (!stored) throw new ColbertError('UNKNOWN_ID', `No document has the id "${id}".`, { ids: [id] });
      matrix = stored;
    }
    let documentTokens: ExplainedToken[];
    if (typeof text === 'string') {
      const all = tokenizer.documentTokens(text);
      const kept = tokenizer.keptDocumentPositions(tokenizer.encodeDocument(text));
      const textTokens = kept.map((p) => all[p]!);
      if (poolFactor > 1) {
        // A pooled index stores cluster means: pool the text's own encoding to learn which of its
        // tokens each stored row stands for (and, for a text alone, to score what indexing it would store).
        const fresh = (await this.encoder.encodeDocuments([text]))[0]!;
        const pooled = poolClusters(fresh, poolFactor);
        if (typeof id !== 'string') matrix = pooled.matrix;
        else if (textTokens.length !== fresh.tokens || matrix!.tokens !== pooled.matrix.tokens) {
          throw new ColbertError('TEXT_MISMATCH', `The text given for "${id}" does not pool to the ${matrix!.tokens} rows it was indexed with; pass the exact text that was added.`, { id, tokens: matrix!.tokens, got: pooled.matrix.tokens });
        }
        const members = pooledMembers(matrix!, pooled);
        documentTokens = members.map((rows) => pooledToken(rows.map((r) => textTokens[r]!)));
      } else {
        matrix ??= (await this.encoder.encodeDocuments([text]))[0]!;
        documentTokens = textTokens;
        const m = matrix;
        const same = documentTokens.length === m.tokens && documentTokens.every((t, i) => m.ids[i] === -1 || m.ids[i] === t.id);
        if (!same) {
          throw new ColbertError('TEXT_MISMATCH', `The text given for "${String(id)}" does not tokenize to the ${m.tokens} tokens it was indexed with; pass the exact text that was added.`, { id, tokens: m.tokens, got: documentTokens.length });
        }
      }
    } else {
      const { documentMarkerId } = tokenizer.config;
      const specials = new Set([...tokenizer.leadingSpecials, ...tokenizer.trailingSpecials]);
      documentTokens = Array.from(matrix!.ids, (tid): ExplainedToken => ({
        id: tid,
        text: tid < 0 ? '' : tokenizer.tokenText(tid),
        kind: tid < 0 && poolFactor > 1 ? 'pooled' : tid === documentMarkerId ? 'marker' : specials.has(tid) ? 'special' : 'text',
        span: null,
      }));
    }
    const queryTokens = tokenizer.queryTokens(query);
    const { bestRow, contribution, total } = explainMaxSim(queryMatrix, matrix!);
    const matches = Array.from({ length: queryMatrix.tokens }, (_, i) => {
      const row = bestRow[i]!;
      const q = queryTokens[i] ?? { id: queryMatrix.ids[i]!, text: '', kind: 'text' as const, span: null };
      return { query: { ...q, index: i }, document: row < 0 ? null : { ...documentTokens[row]!, index: row }, contribution: contribution[i]! };
    });
    const explanation: Explanation = { score: total, matches, documentTokens };
    if (typeof id === 'string') explanation.id = id;
    if (predicate) explanation.matchesFilter = predicate(typeof id === 'string' ? (await this.store.metadata([id]))[0] : undefined);
    explanation.lexical = await this.explainLexical(query, typeof id === 'string' ? id : undefined, typeof text === 'string' ? text : undefined);
    return explanation;
  }

  /**
   * The BM25 side of an explanation: the query terms the document contains and what each adds.
   * An indexed id uses its stored postings; a text alone is scored against the index's statistics.
   */
  private async explainLexical(query: string, id: string | undefined, text: string | undefined): Promise<NonNullable<Explanation['lexical']>> {
    const config = this.store.lexical;
    const terms = analyze(query, config);
    const postings = await this.store.postings(terms);
    let tf = new Map<string, number>();
    let length = 0;
    if (id !== undefined) {
      for (const [term, list] of postings.lists) {
        const p = list.find((x) => x.id === id);
        if (p) {
          tf.set(term, p.tf);
          length = p.length;
        }
      }
      // A document without matched terms still has a length; it matters only when a term matched.
    } else if (text !== undefined) {
      ({ tf, length } = termFrequencies(text, config));
    }
    return { queryTerms: [...new Set(terms)], ...explainBm25(terms, postings, tf, length) };
  }

  /** Document count, token count and vector bytes. */
  /** Counts, vector bytes, and for persistent indexes the bytes on disk and the origin's quota. */
  async stats(): Promise<IndexStats> {
    this.check();
    const stats: IndexStats = { ...(await this.store.stats()), lexicalDocuments: (await this.store.lexicalStats()).documents, storage: this.storage, precision: this.store.precision };
    if (this.compressed) {
      stats.compression = this.compressed.stats();
      stats.vectorBytes += stats.compression.codeBytes;
    }
    if (this.name !== undefined) stats.name = this.name;
    const manager = (globalThis.navigator as Navigator | undefined)?.storage;
    if (this.storage === 'indexeddb' && manager) {
      try {
        const estimate = await manager.estimate?.();
        if (estimate?.usage !== undefined) stats.usage = estimate.usage;
        if (estimate?.quota !== undefined) stats.quota = estimate.quota;
        if (manager.persisted) stats.persisted = await manager.persisted();
      } catch {
        // Figures the browser will not give are left out.
      }
    }
    return stats;
  }

  /** Frees the model and the index. Later calls fail with CLOSED. */
  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    this.compressed?.dispose();
    this.scorer.dispose();
    await Promise.all([this.encoder.dispose(), this.store.close()]);
  }
}

/** What identifies a model's vectors for a stored index (see ./store/manifest.ts). */
export function fingerprintOf(info: EncoderInfo, dim: number): ModelFingerprint {
  const c = info.config;
  const fingerprint: ModelFingerprint = {
    model: info.model,
    content: info.contentHash,
    layout: info.layout,
    dim,
    pooling: 'none',
    encoding: {
      queryPrompt: c.queryPrompt,
      documentPrompt: c.documentPrompt,
      queryLength: c.queryLength,
      documentLength: c.documentLength,
      queryMarkerId: c.queryMarkerId,
      documentMarkerId: c.documentMarkerId,
      maskId: c.maskId,
      doQueryExpansion: c.doQueryExpansion,
      attendToExpansionTokens: c.attendToExpansionTokens,
      expansion: info.expansion,
      skiplist: [...c.skiplistWords],
    },
  };
  if (info.revision !== undefined) fingerprint.revision = info.revision;
  return fingerprint;
}

/**
 * Which tokens of a pooled text each stored row stands for: a stored row takes the members of the
 * text's pooled row nearest to it (the same row when the encodings agree exactly; robust to a
 * near-tie that clustered one token differently on another device or precision).
 */
function pooledMembers(stored: TokenMatrix, pooled: PooledDocument): number[][] {
  const { dim } = stored;
  const p = pooled.matrix;
  return Array.from({ length: stored.tokens }, (_, r) => {
    let best = -1;
    let bestScore = -Infinity;
    for (let c = 0; c < p.tokens; c++) {
      let s = 0;
      for (let d = 0; d < dim; d++) s += stored.data[r * dim + d]! * p.data[c * dim + d]!;
      if (s > bestScore) {
        bestScore = s;
        best = c;
      }
    }
    return pooled.members[best] ?? [];
  });
}

/** The explained token of a pooled row: the token itself for a cluster of one, else a 'pooled' token listing its members. */
function pooledToken(members: ExplainedToken[]): ExplainedToken {
  if (members.length === 1) return members[0]!;
  return { id: -1, text: members.map((m) => m.text).join(''), kind: 'pooled', span: null, members };
}
