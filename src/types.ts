/**
 * The few types every layer shares. Everything here is structured-clone safe, so it crosses the
 * worker boundary unchanged (typed arrays by transfer).
 */

/**
 * One vector per kept token, row-major: row `i` is `data.subarray(i * dim, (i + 1) * dim)`.
 * `ids[i]` is the tokenizer id that produced row `i` (or -1 when unknown, e.g. for vectors
 * computed elsewhere).
 */
export interface TokenMatrix {
  data: Float32Array;
  tokens: number;
  dim: number;
  ids: Int32Array;
}

/** JSON-like metadata stored beside a document and returned with its hits. */
export type Metadata = Record<string, unknown>;

/** A document to index. `id` must be a non-empty string, unique within the index. */
export interface DocumentInput {
  id: string;
  text: string;
  metadata?: Metadata;
}

/** A document whose token matrix was computed elsewhere (for example PyLate in Python). */
export interface EmbeddingInput {
  id: string;
  embedding: TokenMatrix;
  metadata?: Metadata;
}

/** One search result. Scores are MaxSim sums: higher is better. */
export interface Hit {
  id: string;
  /** MaxSim sum (semantic), BM25 (lexical), or the fused score (hybrid). */
  score: number;
  metadata?: Metadata;
  /** Hybrid search: the MaxSim and BM25 scores behind the fused one, where the document was in that list. */
  scores?: { semantic?: number; lexical?: number };
}

/** Where the model runs. */
export type Device = 'webgpu' | 'wasm';
/** What the caller asks for; 'auto' tries WebGPU first, then WASM. */
export type DeviceOption = 'auto' | Device;

/**
 * Precision of the ONNX weights. Maps to transformers.js file suffixes:
 * fp32 `` · fp16 `_fp16` · q8 `_quantized` · int8 `_int8` · uint8 `_uint8` · q4 `_q4` · q4f16 `_q4f16` · bnb4 `_bnb4`.
 */
export type Dtype = 'fp32' | 'fp16' | 'q8' | 'int8' | 'uint8' | 'q4' | 'q4f16' | 'bnb4';

/**
 * What happens to the `[MASK]` query-expansion positions whose attention mask is 0.
 * - `'zero'` (default): they come out as zero vectors, as in training (ColBERT-Zero was trained with
 *   FlashAttention, which zeroes masked positions). They add nothing to any score, so the library
 *   does not compute or keep them.
 * - `'eager'`: they get the vectors an eager (non-FlashAttention) forward pass gives them, as PyLate
 *   does on a CPU; the query matrix then has `query_length` rows.
 * Ignored when the model attends to expansion tokens (they are real inputs then).
 */
export type ExpansionMode = 'zero' | 'eager';

/** Progress events, tagged by `status`. */
export type Progress =
  | { status: 'download'; file: string; loaded: number; total: number | null }
  | { status: 'cached'; file: string; bytes: number }
  | { status: 'load'; stage: 'tokenizer' | 'config' | 'session'; device?: Device; dtype?: Dtype }
  /**
   * Converting a safetensors-only checkpoint to ONNX in this thread/worker: 'start' (before the
   * weights download), 'done' (with the ONNX size in bytes), or 'cached' (a conversion from an
   * earlier visit was found in Cache Storage; nothing was downloaded or converted).
   */
  | { status: 'convert'; stage: 'start' | 'done' | 'cached'; dtype: Dtype; bytes?: number }
  | { status: 'encode'; done: number; total: number; tokens: number; skipped?: number }
  | { status: 'store'; done: number; total: number }
  | { status: 'ready'; device: Device; dtype: Dtype; fallbackReason?: string };

/** A progress callback. Exceptions it throws are ignored. */
export type ProgressCallback = (progress: Progress) => void;

/** How a token came into a model input. */
export type TokenKind = 'special' | 'marker' | 'prompt' | 'text' | 'expansion' | 'pooled';

/** One token of an explained query or document. */
export interface ExplainedToken {
  /** Tokenizer id. */
  id: number;
  /** The token as text (decoded piece, or the special token's name). */
  text: string;
  /** 'special' ([CLS], [SEP]), 'marker' ([Q], [D]), 'prompt', 'text', 'expansion' ([MASK] padding of queries), or 'pooled' (a pooled index's cluster of document tokens). */
  kind: TokenKind;
  /**
   * UTF-16 span `[start, end)` in the text it came from, leading whitespace trimmed; null for
   * specials, markers, prompt and expansion tokens, and for document tokens when no text was given.
   */
  span: { start: number; end: number } | null;
  /**
   * A document row of a pooled index (`compression.poolFactor` > 1) that is the mean of several
   * tokens has kind 'pooled', id -1, and, when the explanation was given the text, those tokens
   * (with their spans) here; its `text` is theirs joined.
   */
  members?: ExplainedToken[];
}

/** One query token's part of a score: the document token it matched best and how much that added. */
export interface QueryTokenMatch {
  /** The query token (row `index` of the query matrix). */
  query: ExplainedToken & { index: number };
  /** The best-matching document token (row `index` of the document matrix); null for an empty document. */
  document: (ExplainedToken & { index: number }) | null;
  /** The dot product of the two token vectors: this token's contribution to the score. */
  contribution: number;
}

/** Why a document scored what it did: one entry per query token. See `ColbertSearch.explain`. */
export interface Explanation {
  /** The document's id, when an indexed document was explained. */
  id?: string;
  /** The MaxSim score, the sum of `matches[].contribution`; equals the hit's score for an indexed document. */
  score: number;
  /** Per query token, in query order. */
  matches: QueryTokenMatch[];
  /** Every kept document token (a row of its matrix), in order. */
  documentTokens: ExplainedToken[];
  /** With a `filter` option: whether the document's metadata passes it (a `{ text }` target has none). */
  matchesFilter?: boolean;  /**
   * The BM25 side: the query's terms (folded, stemmed for English), those the document contains
   * with their frequency, document frequency and contribution, and their sum (the lexical score).
   */
  lexical?: { score: number; queryTerms: string[]; terms: { term: string; tf: number; df: number; contribution: number }[] };
}

/**
 * What to explain: an indexed document by `id` (give its `text` too to get spans; it must be the
 * text it was indexed from), or any `text`, encoded on the fly and not stored.
 */
export type ExplainTarget = { id: string; text?: string } | { text: string };
