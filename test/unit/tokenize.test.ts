/**
 * The PyLate encoding recipe, pinned to exact token ids of the real ModernBERT tokenizer
 * (with PyLate's `[Q] ` = 50368 and `[D] ` = 50369 added).
 */
import { describe, expect, it } from 'vitest';
import { Tokenizer } from '@huggingface/tokenizers';
import { resolveEncodingConfig, detectLayout, PYLATE_DEFAULTS, type RawModelConfigs } from '../../src/model/config.ts';
import { ColbertTokenizer } from '../../src/model/tokenize.ts';
import { ColbertError } from '../../src/errors.ts';
import { HAVE_SHARED, SHARED_MISSING, loadPylateTokenizerFiles } from '../support/shared.ts';

const CLS = 50281;
const SEP = 50282;
const MASK = 50284;
const Q = 50368;
const D = 50369;

/** config_sentence_transformers.json as ColBERT-Zero ships it. */
const COLBERT_ZERO_ST = {
  prompts: { query: 'search_query: ', document: 'search_document: ' },
  query_prefix: '[Q] ',
  document_prefix: '[D] ',
  query_length: 39,
  document_length: 519,
  attend_to_expansion_tokens: false,
  skiplist_words: [...'!"#$%&\'()*+,-./:;<=>?@[\\]^_`{|}~'],
  do_query_expansion: true,
};

describe.skipIf(!HAVE_SHARED)(`PyLate recipe on the real tokenizer ${HAVE_SHARED ? '' : SHARED_MISSING}`, () => {
  const files = HAVE_SHARED ? loadPylateTokenizerFiles() : { tokenizerJson: {}, tokenizerConfig: {} };
  const hf = HAVE_SHARED ? new Tokenizer(files.tokenizerJson, files.tokenizerConfig) : (undefined as unknown as Tokenizer);
  const make = (st: Record<string, unknown> = COLBERT_ZERO_ST, raw: Partial<RawModelConfigs> = {}) =>
    new ColbertTokenizer(hf, resolveEncodingConfig({ sentenceTransformers: st, tokenizer: files.tokenizerConfig, ...raw }, hf));
  const raw = (text: string) => hf.encode(text, { add_special_tokens: false }).ids;

  it('reads ids and lengths from the configs', () => {
    const { config } = make();
    expect(config).toMatchObject({
      queryPrompt: 'search_query: ',
      documentPrompt: 'search_document: ',
      queryLength: 39,
      documentLength: 519,
      queryMarkerId: Q,
      documentMarkerId: D,
      maskId: MASK,
      padId: 50283,
      doQueryExpansion: true,
      attendToExpansionTokens: false,
    });
  });

  it('computes the skiplist ids from the tokenizer', () => {
    const ids = [...make().skiplist].sort((a, b) => a - b);
    expect(ids).toEqual([2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16, 27, 28, 29, 30, 31, 32, 33, 60, 61, 62, 63, 64, 65, 92, 93, 94, 95]);
  });

  it('encodes a short query: prompt, [Q] at position 1, [MASK] expansion to query_length with mask 0', () => {
    const enc = make().encodeQuery('What is ColBERT?');
    const real = [CLS, Q, 8716, 64, 7267, 27, 1737, 310, 2065, 35, 6366, 32, SEP];
    expect(enc.inputIds.length).toBe(39);
    expect([...enc.inputIds.slice(0, 13)]).toEqual(real);
    expect([...enc.inputIds.slice(13)]).toEqual(new Array(26).fill(MASK));
    expect([...enc.attentionMask]).toEqual([...new Array(13).fill(1), ...new Array(26).fill(0)]);
    expect(enc.realLength).toBe(13);
  });

  it('attends to expansion tokens when the config says so', () => {
    const enc = make({ ...COLBERT_ZERO_ST, attend_to_expansion_tokens: true }).encodeQuery('What is ColBERT?');
    expect([...enc.attentionMask]).toEqual(new Array(39).fill(1));
    expect(enc.inputIds[38]).toBe(MASK);
  });

  it('keeps only the real positions without query expansion', () => {
    const enc = make({ ...COLBERT_ZERO_ST, do_query_expansion: false }).encodeQuery('What is ColBERT?');
    expect([...enc.inputIds]).toEqual([CLS, Q, 8716, 64, 7267, 27, 1737, 310, 2065, 35, 6366, 32, SEP]);
  });

  it('truncates a long query to query_length - 1 before inserting [Q], leaving no [MASK]', () => {
    const text = 'how do supersonic boundary layers interact with shock waves on swept wings at high reynolds numbers, and what is known about the heat transfer and skin friction there in hypersonic flight?';
    const content = raw(`search_query: ${text}`);
    expect(content.length).toBeGreaterThan(36);
    const enc = make().encodeQuery(text);
    expect(enc.inputIds.length).toBe(39);
    expect(enc.inputIds[0]).toBe(CLS);
    expect(enc.inputIds[1]).toBe(Q);
    expect([...enc.inputIds.slice(2, 38)]).toEqual(content.slice(0, 36));
    expect(enc.inputIds[38]).toBe(SEP);
    expect(enc.attentionMask.every((m) => m === 1)).toBe(true);
    expect(enc.inputIds.includes(MASK)).toBe(false);
  });

  it('fills a query of exactly query_length real tokens with no expansion', () => {
    const text = new Array(32).fill('a').join(' ');
    expect(raw(`search_query: ${text}`).length).toBe(36);
    const enc = make().encodeQuery(text);
    expect(enc.realLength).toBe(39);
    expect(enc.inputIds[38]).toBe(SEP);
  });

  it('encodes a document with its prompt and [D], and drops skiplist punctuation', () => {
    const tk = make();
    const enc = tk.encodeDocument('Flow, over a wing.');
    const content = raw('search_document: Flow, over a wing.');
    expect([...enc.inputIds]).toEqual([CLS, D, ...content, SEP]);
    const kept = tk.keptDocumentPositions(enc).map((i) => enc.inputIds[i]);
    // ',' (13), '.' (15), '_' (64) and ':' (27) go; specials, marker and words stay.
    expect(kept).toEqual([CLS, D, ...content.filter((id) => ![13, 15, 64, 27].includes(id)), SEP]);
  });

  it('drops only bare punctuation ids: an all-punctuation document keeps [CLS], [D] and [SEP]', () => {
    const noPrompt = make({ ...COLBERT_ZERO_ST, prompts: {} });
    const kept = (tk: ColbertTokenizer, text: string) => {
      const enc = tk.encodeDocument(text);
      return tk.keptDocumentPositions(enc).map((i) => enc.inputIds[i]);
    };
    expect(kept(noPrompt, '?')).toEqual([CLS, D, SEP]);
    // '(' is bare (9) and goes; '.)' is one merged token (2698) and stays, as in PyLate.
    expect(kept(noPrompt, '(.)')).toEqual([CLS, D, 2698, SEP]);
    // With the prompt, its '_' and ':' go but 'search' and 'document' stay; ' ?' is the token 'Ġ?', not bare '?'.
    expect(kept(make(), '?')).toEqual([CLS, D, 8716, 3306, ...raw(' ?'), SEP]);
  });

  it('truncates a long document to document_length tokens, ending with [SEP]', () => {
    const text = 'The pressure distribution on the airfoil was measured at several angles of attack. '.repeat(60);
    const enc = make().encodeDocument(text);
    expect(enc.inputIds.length).toBe(519);
    expect(enc.inputIds[1]).toBe(D);
    expect(enc.inputIds[518]).toBe(SEP);
    expect([...enc.inputIds.slice(2, 518)]).toEqual(raw(`search_document: ${text}`).slice(0, 516));
  });

  it('tokenizes only a prefix of a huge document yet gives exactly the full-text tokens', () => {
    const text = 'Shock-wave boundary-layer interaction, at Mach 2.5; see (ref. 7). '.repeat(4000);
    const enc = make().encodeDocument(text);
    expect([...enc.inputIds.slice(2, 518)]).toEqual(raw(`search_document: ${text}`).slice(0, 516));
  });

  it('reads the colbert-export config: ids from the config, no prompts', () => {
    const st = { model_type: 'ColBERT', query_prefix: '[Q] ', document_prefix: '[D] ', query_length: 39, document_length: 519, do_query_expansion: true, attend_to_expansion_tokens: false, skiplist_words: COLBERT_ZERO_ST.skiplist_words, embedding_dim: 128, mask_token_id: MASK, pad_token_id: 50283, query_prefix_id: Q, document_prefix_id: D };
    expect(detectLayout(st)).toBe('colbert-export');
    expect(detectLayout(COLBERT_ZERO_ST)).toBe('transformers.js');
    const tk = make(st);
    expect(tk.config.queryPrompt).toBe('');
    expect([...tk.encodeQuery('What is ColBERT?').inputIds.slice(0, 4)]).toEqual([CLS, Q, ...raw('What is').slice(0, 2)]);
  });

  it('uses PyLate defaults where the config is silent, and caller overrides over both', () => {
    const cfg = resolveEncodingConfig({ sentenceTransformers: {} }, hf, { queryLength: 16, prompts: { query: 'q: ' } });
    expect(cfg.queryLength).toBe(16);
    expect(cfg.documentLength).toBe(PYLATE_DEFAULTS.documentLength);
    expect(cfg.queryPrompt).toBe('q: ');
    expect(cfg.documentPrompt).toBe('');
  });

  it('rejects invalid config values with MODEL_CONFIG_INVALID', () => {
    const bad = () => make({ ...COLBERT_ZERO_ST, query_length: 'long' });
    expect(bad).toThrow(ColbertError);
    try {
      bad();
    } catch (err) {
      expect((err as ColbertError).code).toBe('MODEL_CONFIG_INVALID');
    }
    const tooLong = () => resolveEncodingConfig({ sentenceTransformers: COLBERT_ZERO_ST, model: { max_position_embeddings: 512 } }, hf);
    expect(tooLong).toThrow(/exceeds the model's max_position_embeddings/);
  });

  it('names a missing marker token', () => {
    const plain = new Tokenizer(loadPylateTokenizerFiles().tokenizerJson, {});
    const withoutMarkers = { token_to_id: (t: string) => (t === '[Q] ' || t === '[D] ' ? undefined : plain.token_to_id(t)) };
    expect(() => resolveEncodingConfig({ sentenceTransformers: COLBERT_ZERO_ST }, withoutMarkers)).toThrow(/no query marker token "\[Q\] "/);
  });
});
