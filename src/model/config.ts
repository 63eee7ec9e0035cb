/**
 * Reads a PyLate checkpoint's own configuration into the one {@link EncodingConfig} the encoding
 * recipe needs. Every value comes from the model's files; the defaults below are PyLate's own
 * defaults, used only where a file is silent.
 */
import { ColbertError } from '../errors.ts';

/** Which ONNX export layout a model directory has. */
export type ModelLayout =
  /** transformers.js: `onnx/model{suffix}.onnx` outputs `last_hidden_state`; the Dense head(s) from `1_Dense/` run after it. */
  | 'transformers.js'
  /** LightOn's colbert-export: `model.onnx` / `model_int8.onnx` output `output`, Dense and L2 norm inside the graph. */
  | 'colbert-export';

/** Everything the encoding recipe (tokenize.ts) needs, resolved to token ids. */
export interface EncodingConfig {
  /** Prepended to every query text, e.g. `"search_query: "`; `''` for models without prompts. */
  queryPrompt: string;
  /** Prepended to every document text, e.g. `"search_document: "`. */
  documentPrompt: string;
  /** Total query length in tokens, markers and specials included (39 for ColBERT-Zero). */
  queryLength: number;
  /** Maximum document length in tokens, markers and specials included (519 for ColBERT-Zero). */
  documentLength: number;
  /** Id of the query marker (`[Q] `), inserted right after the first special token. */
  queryMarkerId: number;
  /** Id of the document marker (`[D] `). */
  documentMarkerId: number;
  /** Id used to pad queries up to `queryLength` when expanding (`[MASK]`). */
  maskId: number;
  /** Id used to pad batches (`[PAD]`). */
  padId: number;
  /** Pad queries with `[MASK]` up to `queryLength` (PyLate's `do_query_expansion`, default true). */
  doQueryExpansion: boolean;
  /** Give the expansion tokens attention mask 1 (PyLate's `attend_to_expansion_tokens`, default false). */
  attendToExpansionTokens: boolean;
  /** The skiplist words as written in the config (punctuation by default). */
  skiplistWords: string[];
}

/** PyLate's defaults (pylate.models.ColBERT) for fields a config may omit. */
export const PYLATE_DEFAULTS = Object.freeze({
  queryPrefix: '[Q] ',
  documentPrefix: '[D] ',
  queryLength: 32,
  documentLength: 180,
  doQueryExpansion: true,
  attendToExpansionTokens: false,
  /** Python's `string.punctuation`. */
  skiplistWords: [...'!"#$%&\'()*+,-./:;<=>?@[\\]^_`{|}~'],
});

/** The raw JSON files of a checkpoint that config parsing looks at (any may be absent). */
export interface RawModelConfigs {
  /** `config_sentence_transformers.json` */
  sentenceTransformers?: Record<string, unknown> | undefined;
  /** `config.json` (the backbone's Hugging Face config) */
  model?: Record<string, unknown> | undefined;
  /** `tokenizer_config.json` */
  tokenizer?: Record<string, unknown> | undefined;
}

/** Caller overrides; each wins over the model's files. */
export interface EncodingOverrides {
  prompts?: { query?: string; document?: string };
  queryLength?: number;
  documentLength?: number;
}

/** The minimal tokenizer surface config resolution needs. */
export interface TokenLookup {
  token_to_id(token: string): number | undefined;
}

/** Detects the export layout from `config_sentence_transformers.json` alone (colbert-export writes ids into it). */
export function detectLayout(st: Record<string, unknown> | undefined): ModelLayout {
  if (st && ('query_prefix_id' in st || 'embedding_dim' in st) && st['model_type'] === 'ColBERT') return 'colbert-export';
  return 'transformers.js';
}

function field<T>(obj: Record<string, unknown> | undefined, key: string, check: (v: unknown) => v is T, file: string): T | undefined {
  if (!obj || !(key in obj) || obj[key] === null || obj[key] === undefined) return undefined;
  const value = obj[key];
  if (!check(value)) {
    throw new ColbertError('MODEL_CONFIG_INVALID', `${file}: "${key}" has an invalid value ${JSON.stringify(value)}.`, { file, key, value });
  }
  return value;
}
const isString = (v: unknown): v is string => typeof v === 'string';
const isBool = (v: unknown): v is boolean => typeof v === 'boolean';
const isPositiveInt = (v: unknown): v is number => Number.isInteger(v) && (v as number) > 0;
const isNonNegInt = (v: unknown): v is number => Number.isInteger(v) && (v as number) >= 0;
const isStringArray = (v: unknown): v is string[] => Array.isArray(v) && v.every(isString);
const isRecord = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v);

/** Resolves a special token's id, from a colbert-export id field, else the tokenizer. */
function tokenId(
  tokenizer: TokenLookup,
  st: Record<string, unknown> | undefined,
  idKey: string,
  token: string | undefined,
  what: string,
): number {
  const fromConfig = field(st, idKey, isNonNegInt, 'config_sentence_transformers.json');
  if (fromConfig !== undefined) return fromConfig;
  const fromTokenizer = token === undefined ? undefined : tokenizer.token_to_id(token);
  if (fromTokenizer === undefined) {
    throw new ColbertError(
      'MODEL_CONFIG_INVALID',
      `The tokenizer has no ${what} token ${JSON.stringify(token)}. PyLate checkpoints add it to tokenizer.json; re-export the model with its PyLate tokenizer.`,
      { token, what },
    );
  }
  return fromTokenizer;
}

function specialToken(raw: RawModelConfigs, key: 'mask_token' | 'pad_token', fallback: string): string {
  const value = raw.tokenizer?.[key];
  if (typeof value === 'string') return value;
  if (isRecord(value) && typeof value['content'] === 'string') return value['content'];
  return fallback;
}

/**
 * Builds the {@link EncodingConfig} from a checkpoint's configs and its tokenizer.
 * Throws MODEL_CONFIG_INVALID when a field has the wrong type or a needed token is missing.
 */
export function resolveEncodingConfig(raw: RawModelConfigs, tokenizer: TokenLookup, overrides: EncodingOverrides = {}): EncodingConfig {
  const st = raw.sentenceTransformers;
  const file = 'config_sentence_transformers.json';
  const prompts = field(st, 'prompts', isRecord, file) ?? {};
  const promptOf = (name: 'query' | 'document'): string => {
    const value = prompts[name];
    if (value === undefined || value === null) return '';
    if (typeof value !== 'string') {
      throw new ColbertError('MODEL_CONFIG_INVALID', `${file}: prompts.${name} must be a string.`, { value });
    }
    return value;
  };
  const queryPrefix = field(st, 'query_prefix', isString, file) ?? PYLATE_DEFAULTS.queryPrefix;
  const documentPrefix = field(st, 'document_prefix', isString, file) ?? PYLATE_DEFAULTS.documentPrefix;
  const queryLength = overrides.queryLength ?? field(st, 'query_length', isPositiveInt, file) ?? PYLATE_DEFAULTS.queryLength;
  const documentLength = overrides.documentLength ?? field(st, 'document_length', isPositiveInt, file) ?? PYLATE_DEFAULTS.documentLength;
  const maxPositions = field(raw.model, 'max_position_embeddings', isPositiveInt, 'config.json');
  for (const [name, value] of [['query length', queryLength], ['document length', documentLength]] as const) {
    if (!isPositiveInt(value) || value < 4) {
      throw new ColbertError('INVALID_ARGUMENT', `The ${name} must be an integer of at least 4 tokens; got ${value}.`, { [name]: value });
    }
    if (maxPositions !== undefined && value > maxPositions) {
      throw new ColbertError('MODEL_CONFIG_INVALID', `The ${name} ${value} exceeds the model's max_position_embeddings ${maxPositions}.`, { value, maxPositions });
    }
  }
  return {
    queryPrompt: overrides.prompts?.query ?? promptOf('query'),
    documentPrompt: overrides.prompts?.document ?? promptOf('document'),
    queryLength,
    documentLength,
    queryMarkerId: tokenId(tokenizer, st, 'query_prefix_id', queryPrefix, 'query marker'),
    documentMarkerId: tokenId(tokenizer, st, 'document_prefix_id', documentPrefix, 'document marker'),
    maskId: tokenId(tokenizer, st, 'mask_token_id', specialToken(raw, 'mask_token', '[MASK]'), 'mask'),
    padId: tokenId(tokenizer, st, 'pad_token_id', specialToken(raw, 'pad_token', '[PAD]'), 'padding'),
    doQueryExpansion: field(st, 'do_query_expansion', isBool, file) ?? PYLATE_DEFAULTS.doQueryExpansion,
    attendToExpansionTokens: field(st, 'attend_to_expansion_tokens', isBool, file) ?? PYLATE_DEFAULTS.attendToExpansionTokens,
    skiplistWords: field(st, 'skiplist_words', isStringArray, file) ?? [...PYLATE_DEFAULTS.skiplistWords],
  };
}
