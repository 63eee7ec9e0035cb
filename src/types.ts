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
  score: number;
  metadata?: Metadata;
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
  | { status: 'encode'; done: number; total: number; tokens: number }
  | { status: 'store'; done: number; total: number }
  | { status: 'ready'; device: Device; dtype: Dtype; fallbackReason?: string };

/** A progress callback. Exceptions it throws are ignored. */
export type ProgressCallback = (progress: Progress) => void;
