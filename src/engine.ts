/**
 * The engine: composes model/ (text -> token matrices), store/ (where they live) and score/
 * (MaxSim). It is the only module that knows all three, and it runs unchanged in the worker and in
 * the calling thread. Every input is validated here before anything changes.
 */
import { ColbertError } from './errors.ts';
import { loadEncoder, type Encoder, type EncoderInfo, type EncoderOptions } from './model/encoder.ts';
import { explainMaxSim } from './score/cpu.ts';
import { createScorer, type Scorer, type ScoringOption, type ScoringStatus } from './score/scorer.ts';
import { MemoryStore } from './store/memory.ts';
import { VECTOR_PRECISIONS, type VectorPrecision } from './store/precision.ts';
import type { StoredDocument, VectorStore } from './store/types.ts';
import type { DocumentInput, EmbeddingInput, ExplainedToken, Explanation, ExplainTarget, Hit, Metadata, ProgressCallback, TokenMatrix } from './types.ts';

/** Options the engine takes: the model options plus storage. */
export interface EngineOptions extends Omit<EncoderOptions, 'onProgress'> {
  /** Where the index lives. Only 'memory' for now. */
  storage?: 'memory';
  /** Storage precision of token vectors: 'fp32' (exact, default), 'fp16', or 'int8' with a per-token scale. */
  precision?: VectorPrecision;
  /**
   * Where MaxSim runs: 'auto' (default: WebGPU on a hardware GPU, else the CPU), 'webgpu' (any
   * adapter, fails with DEVICE_UNAVAILABLE when there is none) or 'cpu'. A GPU that fails later
   * falls back to the CPU; see {@link Engine.scoring}.
   */
  scoring?: ScoringOption;
}

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
}

/** What `add` reports. */
export interface AddResult {
  /** Documents now stored by this call (new or replaced). */
  added: number;
  /** Token vectors stored by this call. */
  tokens: number;
}

/** Index counts. */
export interface IndexStats {
  documents: number;
  tokens: number;
  /** Bytes of token vectors held in the index. */
  vectorBytes: number;
}

/** How many documents are encoded per progress step and per store write. */
const ADD_CHUNK = 64;

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

function checkMetadata(metadata: unknown, id: string): Metadata | undefined {
  if (metadata === undefined) return undefined;
  if (!isPlainObject(metadata)) throw new ColbertError('INVALID_ARGUMENT', `Metadata of "${id}" must be a plain object.`, { id });
  return metadata;
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

function checkK(k: unknown): number {
  if (k === undefined) return 10;
  if (!Number.isInteger(k) || (k as number) <= 0) throw new ColbertError('INVALID_K', `k must be a positive integer; got ${JSON.stringify(k)}.`, { k });
  return k as number;
}

/** Model + index + scoring. Create with {@link Engine.create}. */
export class Engine {
  private closed = false;

  private constructor(
    private readonly encoder: Encoder,
    private readonly store: VectorStore,
    private readonly scorer: Scorer,
  ) {}

  /** Loads the model and opens the index. */
  static async create(options: EngineOptions, onProgress?: ProgressCallback): Promise<Engine> {
    if (!isPlainObject(options)) throw new ColbertError('INVALID_ARGUMENT', 'Options must be an object.');
    const storage = options.storage ?? 'memory';
    if (storage !== 'memory') throw new ColbertError('INVALID_ARGUMENT', `Unknown storage ${JSON.stringify(storage)}; use 'memory'.`, { storage });
    const safeProgress: ProgressCallback | undefined = onProgress
      ? (p) => {
          try {
            onProgress(p);
          } catch {
            // A failing progress callback must not break loading.
          }
        }
      : undefined;
    const precision = options.precision ?? 'fp32';
    if (!VECTOR_PRECISIONS.includes(precision)) {
      throw new ColbertError('INVALID_ARGUMENT', `Unknown precision ${JSON.stringify(precision)}; use one of ${VECTOR_PRECISIONS.map((p) => `'${p}'`).join(', ')}.`, { precision });
    }
    // Before the model loads, so that a bad or unavailable scoring option fails fast.
    const scorer = await createScorer({ scoring: options.scoring ?? 'auto' });
    let encoder: Encoder;
    try {
      encoder = await loadEncoder({ ...options, onProgress: safeProgress });
    } catch (err) {
      scorer.dispose();
      throw err;
    }
    // Compile the scoring pipeline while the caller adds documents; a failure falls back inside.
    void scorer.prepare(precision, encoder.dim).catch(() => undefined);
    return new Engine(encoder, new MemoryStore({ precision }), scorer);
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

  /** Where MaxSim runs now, and why not on the GPU when it is not. */
  scoring(): ScoringStatus {
    const reason = this.scorer.fallbackReason;
    return reason === undefined ? { device: this.scorer.device } : { device: this.scorer.device, fallbackReason: reason };
  }

  /** Encodes and stores documents; an existing id is replaced. */
  async add(docs: readonly DocumentInput[], onProgress?: ProgressCallback): Promise<AddResult> {
    this.check();
    if (!Array.isArray(docs)) throw new ColbertError('INVALID_ARGUMENT', 'add() takes an array of { id, text, metadata? }.');
    const items = docs.map((doc, index) => {
      if (!isPlainObject(doc)) throw new ColbertError('INVALID_ARGUMENT', `Item ${index} must be an object { id, text, metadata? }.`, { index });
      const id = checkId(doc['id'], index);
      return { id, text: checkText(doc['text'], `Document "${id}" text`), metadata: checkMetadata(doc['metadata'], id) };
    });
    checkUnique(items.map((d) => d.id));
    // Encode everything first, then store in one atomic put: a failure leaves the index unchanged.
    const encoded: StoredDocument[] = [];
    let tokens = 0;
    for (let start = 0; start < items.length; start += ADD_CHUNK) {
      const chunk = items.slice(start, start + ADD_CHUNK);
      const matrices = await this.encoder.encodeDocuments(chunk.map((d) => d.text));
      this.check();
      chunk.forEach((d, i) => {
        const matrix = matrices[i]!;
        tokens += matrix.tokens;
        encoded.push(d.metadata === undefined ? { id: d.id, matrix } : { id: d.id, matrix, metadata: d.metadata });
      });
      onProgress?.({ status: 'encode', done: encoded.length, total: items.length, tokens });
    }
    await this.store.put(encoded);
    onProgress?.({ status: 'store', done: encoded.length, total: items.length });
    return { added: encoded.length, tokens };
  }

  /** Stores precomputed document matrices (for example from PyLate); dims must match the model. */
  async addEmbeddings(items: readonly EmbeddingInput[]): Promise<AddResult> {
    this.check();
    if (!Array.isArray(items)) throw new ColbertError('INVALID_ARGUMENT', 'addEmbeddings() takes an array of { id, embedding, metadata? }.');
    const docs = items.map((item, index): StoredDocument => {
      if (!isPlainObject(item)) throw new ColbertError('INVALID_ARGUMENT', `Item ${index} must be an object { id, embedding, metadata? }.`, { index });
      const id = checkId(item['id'], index);
      const matrix = checkMatrix(item['embedding'], this.encoder.dim, `Embedding of "${id}"`);
      const metadata = checkMetadata(item['metadata'], id);
      return metadata === undefined ? { id, matrix } : { id, matrix, metadata };
    });
    checkUnique(docs.map((d) => d.id));
    await this.store.put(docs);
    return { added: docs.length, tokens: docs.reduce((n, d) => n + d.matrix.tokens, 0) };
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
    return (await this.store.delete(ids)).length;
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
    const matrix = await this.encodeQuery(query);
    return this.rank(matrix, k);
  }

  /** Ranks documents for a precomputed query matrix. */
  async searchEmbedding(query: TokenMatrix, options: SearchOptions = {}): Promise<Hit[]> {
    this.check();
    const k = checkK(options?.k);
    return this.rank(checkMatrix(query, this.encoder.dim, 'The query embedding'), k);
  }

  private async rank(query: TokenMatrix, k: number): Promise<Hit[]> {
    const best = await this.scorer.rank(query, () => this.store.shards(), k);
    const metadata = await this.store.metadata(best.map((h) => h.id));
    return best.map((h, i) => (metadata[i] === undefined ? { id: h.id, score: h.score } : { id: h.id, score: h.score, metadata: metadata[i] }));
  }

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
  async explain(query: string, target: ExplainTarget): Promise<Explanation> {
    this.check();
    const raw: unknown = target;
    if (!isPlainObject(raw)) throw new ColbertError('INVALID_ARGUMENT', 'explain() takes a query and { id } or { text } (or both).');
    const id = raw['id'];
    const text = raw['text'];
    if (id === undefined && text === undefined) throw new ColbertError('INVALID_ARGUMENT', 'explain() needs { id } of an indexed document or { text }.');
    if (id !== undefined) checkId(id, 0);
    if (text !== undefined) checkText(text, 'The text to explain');
    const tokenizer = this.encoder.tokenizer;
    const queryMatrix = await this.encodeQuery(query);
    let matrix: TokenMatrix;
    if (typeof id === 'string') {
      const stored = await this.store.matrix(id);
      if (!stored) throw new ColbertError('UNKNOWN_ID', `No document has the id "${id}".`, { ids: [id] });
      matrix = stored;
    } else {
      matrix = (await this.encoder.encodeDocuments([text as string]))[0]!;
    }
    let documentTokens: ExplainedToken[];
    if (typeof text === 'string') {
      const all = tokenizer.documentTokens(text);
      const kept = tokenizer.keptDocumentPositions(tokenizer.encodeDocument(text));
      documentTokens = kept.map((p) => all[p]!);
      const same = documentTokens.length === matrix.tokens && documentTokens.every((t, i) => matrix.ids[i] === -1 || matrix.ids[i] === t.id);
      if (!same) {
        throw new ColbertError('TEXT_MISMATCH', `The text given for "${String(id)}" does not tokenize to the ${matrix.tokens} tokens it was indexed with; pass the exact text that was added.`, { id, tokens: matrix.tokens, got: documentTokens.length });
      }
    } else {
      const { documentMarkerId } = tokenizer.config;
      const specials = new Set([...tokenizer.leadingSpecials, ...tokenizer.trailingSpecials]);
      documentTokens = Array.from(matrix.ids, (tid): ExplainedToken => ({
        id: tid,
        text: tid < 0 ? '' : tokenizer.tokenText(tid),
        kind: tid === documentMarkerId ? 'marker' : specials.has(tid) ? 'special' : 'text',
        span: null,
      }));
    }
    const queryTokens = tokenizer.queryTokens(query);
    const { bestRow, contribution, total } = explainMaxSim(queryMatrix, matrix);
    const matches = Array.from({ length: queryMatrix.tokens }, (_, i) => {
      const row = bestRow[i]!;
      const q = queryTokens[i] ?? { id: queryMatrix.ids[i]!, text: '', kind: 'text' as const, span: null };
      return { query: { ...q, index: i }, document: row < 0 ? null : { ...documentTokens[row]!, index: row }, contribution: contribution[i]! };
    });
    const explanation: Explanation = { score: total, matches, documentTokens };
    if (typeof id === 'string') explanation.id = id;
    return explanation;
  }

  /** Document count, token count and vector bytes. */
  async stats(): Promise<IndexStats> {
    this.check();
    return this.store.stats();
  }

  /** Frees the model and the index. Later calls fail with CLOSED. */
  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    this.scorer.dispose();
    await Promise.all([this.encoder.dispose(), this.store.close()]);
  }
}
