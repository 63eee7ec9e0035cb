/**
 * The PyLate encoding recipe, from text to model inputs (see docs in README "Encoding"):
 * 1. prepend the prompt; 2. tokenize with special tokens, truncated to `length - 1`;
 * 3. insert the `[Q]`/`[D]` marker at position 1 (attention 1);
 * 4. queries: pad to `query_length` with `[MASK]` (attention 0 unless the model attends to them);
 * 6. documents: keep only tokens whose id is not in the skiplist (see {@link ColbertTokenizer.isSkipped}).
 * Steps 5 and 7 (the forward pass, head, norm) live in encoder.ts.
 */
import { Tokenizer } from '@huggingface/tokenizers';
import type { EncodingConfig } from './config.ts';

/** Model inputs for one text. `attentionMask[i]` is 1 for tokens the model attends to. */
export interface EncodedText {
  inputIds: Int32Array;
  attentionMask: Uint8Array;
  /** Number of leading positions that are real tokens (specials and marker included); the rest are expansion `[MASK]`s. */
  realLength: number;
}

/** Characters per token bound used to tokenize only a prefix of huge texts (see {@link ColbertTokenizer.contentIds}). */
const CHARS_PER_TOKEN_BOUND = 16;

/**
 * Wraps a Hugging Face tokenizer with the PyLate recipe. Construct it once per model; it is
 * stateless afterwards and cheap to call.
 */
export class ColbertTokenizer {
  /** Special token ids the tokenizer puts before the text (`[CLS]`). */
  readonly leadingSpecials: readonly number[];
  /** Special token ids the tokenizer puts after the text (`[SEP]`). */
  readonly trailingSpecials: readonly number[];
  /** Ids of the skiplist words, dropped from documents. */
  readonly skiplist: ReadonlySet<number>;

  constructor(
    readonly tokenizer: Tokenizer,
    readonly config: EncodingConfig,
  ) {
    // The template around an empty text tells which specials the tokenizer adds and where,
    // for BERT ([CLS] .. [SEP]) and ModernBERT alike, without hard-coding ids.
    const specials = tokenizer.encode('', { add_special_tokens: true }).ids;
    if (specials.length === 0) {
      // Tokenizers without a template (rare for encoders): PyLate still inserts the marker at 1.
      this.leadingSpecials = [];
      this.trailingSpecials = [];
    } else {
      this.leadingSpecials = specials.slice(0, 1);
      this.trailingSpecials = specials.slice(1);
    }
    // PyLate maps each skiplist word with convert_tokens_to_ids; a word that is not a single token
    // of the vocabulary could never match a token id, so it is left out (instead of becoming [UNK]).
    const skip = new Set<number>();
    for (const word of config.skiplistWords) {
      const id = tokenizer.token_to_id(word);
      if (id !== undefined) skip.add(id);
    }
    this.skiplist = skip;
  }

  /** Builds a ColbertTokenizer from parsed `tokenizer.json` and `tokenizer_config.json`. */
  static fromJSON(tokenizerJson: object, tokenizerConfig: object, config: EncodingConfig): ColbertTokenizer {
    return new ColbertTokenizer(new Tokenizer(tokenizerJson, tokenizerConfig), config);
  }

  /** True when a document token with this id is dropped (skiplist punctuation). */
  isSkipped(id: number): boolean {
    return this.skiplist.has(id);
  }

  /**
   * Positions of a document's inputs whose vectors are kept: attended tokens whose id is not in
   * the skiplist. `[CLS]`, `[D]` and `[SEP]` are kept; so are prompt words, but not the prompt's
   * punctuation (PyLate masks by id, wherever the token stands).
   */
  keptDocumentPositions(enc: EncodedText): number[] {
    const rows: number[] = [];
    for (let i = 0; i < enc.inputIds.length; i++) {
      if (enc.attentionMask[i] === 1 && !this.skiplist.has(enc.inputIds[i]!)) rows.push(i);
    }
    return rows;
  }

  /** Model inputs for a query: prompt, marker, truncation to `queryLength`, `[MASK]` expansion. */
  encodeQuery(text: string): EncodedText {
    const { queryLength, queryPrompt, queryMarkerId, doQueryExpansion, maskId, attendToExpansionTokens } = this.config;
    const real = this.withMarker(queryPrompt + text, queryLength, queryMarkerId);
    const total = doQueryExpansion ? Math.max(queryLength, real.length) : real.length;
    const inputIds = new Int32Array(total);
    const attentionMask = new Uint8Array(total);
    inputIds.set(real);
    attentionMask.fill(1, 0, real.length);
    if (total > real.length) {
      inputIds.fill(maskId, real.length);
      attentionMask.fill(attendToExpansionTokens ? 1 : 0, real.length);
    }
    return { inputIds, attentionMask, realLength: real.length };
  }

  /** Model inputs for a document: prompt, marker, truncation to `documentLength`. No padding. */
  encodeDocument(text: string): EncodedText {
    const { documentLength, documentPrompt, documentMarkerId } = this.config;
    const ids = this.withMarker(documentPrompt + text, documentLength, documentMarkerId);
    const inputIds = Int32Array.from(ids);
    return { inputIds, attentionMask: new Uint8Array(ids.length).fill(1), realLength: ids.length };
  }

  /**
   * `[specials..] marker content [specials..]`, where the content is truncated so that the
   * tokenizer's output (before the marker) has at most `length - 1` tokens, as PyLate does.
   */
  private withMarker(text: string, length: number, markerId: number): number[] {
    const specials = this.leadingSpecials.length + this.trailingSpecials.length;
    const budget = Math.max(0, length - 1 - specials);
    const content = this.contentIds(text, budget);
    const ids = [...this.leadingSpecials, ...content, ...this.trailingSpecials];
    ids.splice(1, 0, markerId);
    return ids;
  }

  /**
   * The first `budget` token ids of `text`. Huge texts are tokenized from a prefix cut at
   * whitespace: pre-tokenizers split at whitespace, so the tokens before the cut are exactly those
   * of the full text; when the prefix yields too few tokens the full text is tokenized.
   */
  private contentIds(text: string, budget: number): number[] {
    const maxChars = budget * CHARS_PER_TOKEN_BOUND + 1024;
    if (text.length > maxChars) {
      const cut = text.lastIndexOf(' ', maxChars);
      if (cut > maxChars / 2) {
        const ids = this.tokenizer.encode(text.slice(0, cut), { add_special_tokens: false }).ids;
        if (ids.length >= budget) return ids.slice(0, budget);
      }
    }
    const ids = this.tokenizer.encode(text, { add_special_tokens: false }).ids;
    return ids.length > budget ? ids.slice(0, budget) : ids;
  }
}
