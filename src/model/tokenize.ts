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

/** Where one input position came from; see {@link ColbertTokenizer.documentTokens}. */
export interface DocumentToken {
  /** Tokenizer id. */
  id: number;
  /** The token as text: the decoded piece (with its leading space) for text and prompt tokens, the token string for specials and the marker. */
  text: string;
  /** 'special' ([CLS], [SEP]), 'marker' ([D] or [Q]), 'prompt' (from the document prompt) or 'text'. */
  kind: 'special' | 'marker' | 'prompt' | 'text';
  /**
   * UTF-16 code-unit span `[start, end)` in the caller's document text (prompt excluded), leading
   * whitespace trimmed; null for specials, the marker, prompt tokens, and pieces that could not be
   * placed (text that changes under the tokenizer's normalizer, e.g. NFD input).
   */
  span: { start: number; end: number } | null;
}

/** A query input position: as {@link DocumentToken}, plus 'expansion' for the `[MASK]` padding. */
export interface QueryToken extends Omit<DocumentToken, 'kind'> {
  kind: DocumentToken['kind'] | 'expansion';
}

/** Most tokens decoded together while waiting for the rest of a split UTF-8 character. */
const MAX_BYTE_GROUP = 8;

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

  /** @internal Build one with {@link ColbertTokenizer.fromJSON}; the type of `tokenizer` stays out of the public declarations. */
  constructor(
    /** @internal */
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

  /**
   * Every input position of {@link encodeDocument}(text), in order, with its text and its span
   * in `text`. The tokenizer gives no offsets, so spans come from decoding token by token and
   * finding each piece in the text from where the previous one ended; tokens that split one
   * UTF-8 character (byte-level BPE) are decoded together and share the character's span.
   */
  documentTokens(text: string): DocumentToken[] {
    const { documentLength, documentPrompt, documentMarkerId } = this.config;
    return this.spannedTokens(documentPrompt, text, documentLength, documentMarkerId);
  }

  /**
   * Every input position of {@link encodeQuery}(text), like {@link documentTokens}; the
   * `[MASK]` expansion positions come last with kind 'expansion'.
   */
  queryTokens(text: string): QueryToken[] {
    const { queryLength, queryPrompt, queryMarkerId, doQueryExpansion, maskId } = this.config;
    const tokens: QueryToken[] = this.spannedTokens(queryPrompt, text, queryLength, queryMarkerId);
    const mask = this.tokenizer.id_to_token(maskId) ?? '[MASK]';
    if (doQueryExpansion) while (tokens.length < queryLength) tokens.push({ id: maskId, text: mask, kind: 'expansion', span: null });
    return tokens;
  }

  private spannedTokens(prompt: string, text: string, length: number, markerId: number): DocumentToken[] {
    const specials = this.leadingSpecials.length + this.trailingSpecials.length;
    const full = prompt + text;
    const content = this.contentIds(full, Math.max(0, length - 1 - specials));
    const spans = this.pieceSpans(content, full);
    const promptEnd = prompt.length;
    const special = (id: number, kind: DocumentToken['kind']): DocumentToken => ({ id, text: this.tokenizer.id_to_token(id) ?? String(id), kind, span: null });
    const body = content.map((id, i): DocumentToken => {
      const { piece, span } = spans[i]!;
      if (span === null) return { id, text: piece, kind: 'text', span: null };
      if (span.end <= promptEnd) return { id, text: piece, kind: 'prompt', span: null };
      return { id, text: piece, kind: 'text', span: { start: Math.max(span.start, promptEnd) - promptEnd, end: span.end - promptEnd } };
    });
    const tokens = [...this.leadingSpecials.map((id) => special(id, 'special')), ...body, ...this.trailingSpecials.map((id) => special(id, 'special'))];
    tokens.splice(1, 0, special(markerId, 'marker'));
    return tokens;
  }

  /** The text of one token as the tokenizer decodes it (specials by name). */
  tokenText(id: number): string {
    return this.tokenizer.decode([id], { skip_special_tokens: false, clean_up_tokenization_spaces: false });
  }

  /** Number of tokens `text` alone takes (no prompt, specials or marker; not truncated). */
  countTokens(text: string): number {
    return this.tokenizer.encode(text, { add_special_tokens: false }).ids.length;
  }

  /**
   * Most tokens of document text that are encoded (the rest is truncated): `documentLength`
   * minus the specials, the marker and the prompt's tokens.
   */
  documentTextBudget(): number {
    const { documentLength, documentPrompt } = this.config;
    const specials = this.leadingSpecials.length + this.trailingSpecials.length;
    const prompt = documentPrompt === '' ? 0 : this.countTokens(documentPrompt);
    return Math.max(0, documentLength - 1 - specials - prompt);
  }

  /** Decoded piece and `[start, end)` span in `full` (whitespace-trimmed) of each id. */
  private pieceSpans(ids: readonly number[], full: string): { piece: string; span: { start: number; end: number } | null }[] {
    const out: { piece: string; span: { start: number; end: number } | null }[] = [];
    const decode = (from: number, to: number) => this.tokenizer.decode(ids.slice(from, to), { skip_special_tokens: false, clean_up_tokenization_spaces: false });
    let pos = 0;
    let groupStart = 0;
    for (let i = 0; i < ids.length; i++) {
      const piece = decode(groupStart, i + 1);
      const incomplete = piece.endsWith('\uFFFD') && i + 1 < ids.length && i + 1 - groupStart < MAX_BYTE_GROUP;
      if (incomplete) continue;
      let span: { start: number; end: number } | null = null;
      if (full.startsWith(piece, pos)) {
        span = { start: pos, end: pos + piece.length };
      } else {
        const core = piece.trim();
        const at = core === '' ? -1 : full.indexOf(core, pos);
        // A piece not found close by (normalised text) is left unplaced rather than guessed.
        if (at !== -1 && at - pos <= piece.length + 16) span = { start: at, end: at + core.length };
      }
      if (span !== null) {
        pos = span.end;
        while (span.start < span.end && /\s/.test(full[span.start]!)) span.start++;
      }
      for (let j = groupStart; j <= i; j++) out.push({ piece, span });
      groupStart = i + 1;
    }
    return out;
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
