/**
 * Explanations: token spans from the real tokenizer (non-ASCII, prompts, the [D] marker) and
 * `explain()` on the generated test model, checked against the reference `maxSim` and the ranked
 * score.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { resolve } from 'node:path';
import { Tokenizer } from '@huggingface/tokenizers';
import { createSearch, type ColbertSearch } from '../../src/index.ts';
import { ColbertError } from '../../src/errors.ts';
import { resolveEncodingConfig } from '../../src/model/config.ts';
import { ColbertTokenizer } from '../../src/model/tokenize.ts';
import { explainMaxSim, maxSim } from '../../src/score/cpu.ts';
import { makeTestModels, pylateConfig } from '../fixtures/make-models.ts';
import { HAVE_SHARED, REPO_ROOT, SHARED_MISSING, TOKENIZER_DIR, loadPylateTokenizerFiles } from '../support/shared.ts';


describe('explainMaxSim', () => {
  it('finds each query row\'s best document row and sums to maxSim', () => {
    const dim = 3;
    const query = { data: Float32Array.from([1, 0, 0, 0, 1, 0]), tokens: 2, dim, ids: new Int32Array(2) };
    const doc = { data: Float32Array.from([0, 0.9, 0, 0.5, 0, 0, 0.8, 0.1, 0]), tokens: 3, dim, ids: new Int32Array(3) };
    const e = explainMaxSim(query, doc);
    expect([...e.bestRow]).toEqual([2, 0]);
    expect(e.contribution[0]).toBeCloseTo(0.8, 6);
    expect(e.contribution[1]).toBeCloseTo(0.9, 6);
    expect(e.total).toBeCloseTo(maxSim(query, doc), 6);
    const empty = explainMaxSim(query, { data: new Float32Array(0), tokens: 0, dim, ids: new Int32Array(0) });
    expect([...empty.bestRow]).toEqual([-1, -1]);
    expect(empty.total).toBe(0);
  });
});

describe.skipIf(!HAVE_SHARED)(`token spans on the real tokenizer ${HAVE_SHARED ? '' : SHARED_MISSING}`, () => {
  const files = HAVE_SHARED ? loadPylateTokenizerFiles() : { tokenizerJson: {}, tokenizerConfig: {} };
  const make = () => {
    const hf = new Tokenizer(files.tokenizerJson, files.tokenizerConfig);
    return new ColbertTokenizer(hf, resolveEncodingConfig({ sentenceTransformers: pylateConfig(), tokenizer: files.tokenizerConfig }, hf));
  };

  it('aligns with encodeDocument and maps every text token to its characters, non-ASCII included', () => {
    const t = make();
    const text = 'Café déjà vu — 東京 🚀 naïve <b>bold</b>\n\nheat-transfer, 2.5x!';
    const tokens = t.documentTokens(text);
    expect(tokens.map((x) => x.id)).toEqual([...t.encodeDocument(text).inputIds]);
    expect(tokens[0]).toMatchObject({ kind: 'special', span: null });
    expect(tokens[1]).toMatchObject({ id: 50369, kind: 'marker', span: null });
    expect(tokens.filter((x) => x.kind === 'prompt').map((x) => x.text).join('')).toBe('search_document:');
    const placed = tokens.filter((x) => x.kind === 'text' && x.span && x.span.end > x.span.start);
    const at = (x: (typeof tokens)[number]) => text.slice(x.span!.start, x.span!.end);
    expect(placed.map(at)).toEqual(['Caf', 'é', 'déjà', 'vu', '—', '東', '東', '京', '京', '🚀', '🚀', '🚀', 'naïve', '<', 'b', '>', 'bold', '</', 'b', '>', 'heat', '-', 'transfer', ',', '2', '.', '5', 'x', '!']);
    // Every text token is placed, in order, and the spans never go backwards.
    expect(tokens.filter((x) => x.kind === 'text').every((x) => x.span !== null)).toBe(true);
    let last = 0;
    for (const x of placed) {
      expect(x.span!.start).toBeGreaterThanOrEqual(last);
      last = x.span!.start;
    }
  });

  it('gives query tokens spans in the query and marks [MASK] expansion', () => {
    const t = make();
    const q = t.queryTokens('Über heat');
    expect(q.map((x) => x.id).slice(0, t.encodeQuery('Über heat').realLength)).toEqual([...t.encodeQuery('Über heat').inputIds].slice(0, t.encodeQuery('Über heat').realLength));
    expect(q).toHaveLength(39);
    expect(q[1]).toMatchObject({ id: 50368, kind: 'marker' });
    const words = q.filter((x) => x.kind === 'text' && x.span).map((x) => 'Über heat'.slice(x.span!.start, x.span!.end));
    expect(words.join('|')).toMatch(/^Ü?.*heat$/);
    expect(words.join('')).toBe('Überheat');
    expect(q.at(-1)).toMatchObject({ kind: 'expansion', text: '[MASK]' });
  });

  it('counts tokens and the document text budget', () => {
    const t = make();
    expect(t.countTokens('heat transfer')).toBe(2);
    // 519 minus [CLS], [SEP], [D] and the prompt's five tokens alone (search _ document : and the
    // trailing space, which in fact merges into the text's first word: one token to spare).
    expect(t.documentTextBudget()).toBe(519 - 3 - 5);
  });
});

describe.skipIf(!HAVE_SHARED)(`explain() on the generated test model ${HAVE_SHARED ? '' : SHARED_MISSING}`, () => {
  let search: ColbertSearch;
  const docs = [
    { id: 'heat', text: 'Heat transfer in a hypersonic laminar boundary layer, à la Müller.' },
    { id: 'shell', text: 'Buckling of thin cylindrical shells under axial compression.' },
  ];

  beforeAll(async () => {
    const models = resolve(REPO_ROOT, '.cache/test-models');
    await makeTestModels(models, TOKENIZER_DIR);
    search = await createSearch({ model: resolve(models, 'tjs'), worker: false, device: 'wasm', dtype: 'fp32', precision: 'fp32' });
    await search.add(docs);
  });
  afterAll(async () => {
    await search?.close();
  });

  it('sums per-token contributions to the ranked score and to maxSim', async () => {
    const query = 'hypersonic heat transfer Müller';
    const [hit] = await search.search(query, { k: 1 });
    expect(hit!.id).toBe('heat');
    const e = await search.explain(query, { id: 'heat', text: docs[0]!.text });
    expect(e.id).toBe('heat');
    expect(Math.abs(e.score - hit!.score)).toBeLessThan(1e-4);
    expect(Math.abs(e.matches.reduce((s, m) => s + m.contribution, 0) - e.score)).toBeLessThan(1e-4);
    const [q] = [await search.encodeQuery(query)];
    const [d] = await search.encodeDocuments([docs[0]!.text]);
    expect(Math.abs(maxSim(q!, d!) - e.score)).toBeLessThan(1e-4);
    expect(e.matches).toHaveLength(q!.tokens);
    expect(e.documentTokens).toHaveLength(d!.tokens);
  });

  it('points shared words at the same word in the document, with its span', async () => {
    const text = docs[0]!.text;
    const e = await search.explain('hypersonic heat transfer Müller', { id: 'heat', text });
    const pairs = e.matches
      .filter((m) => m.query.kind === 'text' && m.document?.span)
      .map((m) => [m.query.text.trim(), text.slice(m.document!.span!.start, m.document!.span!.end)]);
    // The test model maps a token id to a fixed vector: a shared token matches itself.
    for (const [q, d] of pairs) if (['transfer', 'hyp'].includes(q!)) expect(d).toBe(q);
    const matched = pairs.map(([, d]) => d);
    expect(matched).toContain('transfer');
    expect(matched.some((d) => d!.includes('ü') || d === 'M' || d === 'Mü' || d === 'ller')).toBe(true);
    for (const m of e.matches) expect(m.query.index).toBeGreaterThanOrEqual(0);
  });

  it('explains a text that is not indexed, and without text gives token texts but no spans', async () => {
    const byText = await search.explain('buckling shells', { text: docs[1]!.text });
    const byId = await search.explain('buckling shells', { id: 'shell' });
    expect(byText.id).toBeUndefined();
    expect(Math.abs(byText.score - byId.score)).toBeLessThan(1e-4);
    expect(byId.documentTokens.every((t) => t.span === null)).toBe(true);
    expect(byId.documentTokens[1]).toMatchObject({ kind: 'marker' });
    expect(byText.documentTokens.some((t) => t.span !== null)).toBe(true);
  });

  it('rejects unknown ids, a text that is not the indexed one, and bad targets with coded errors', async () => {
    const code = async (p: Promise<unknown>) => p.then(() => 'resolved', (e: unknown) => (e instanceof ColbertError ? e.code : String(e)));
    expect(await code(search.explain('heat', { id: 'nope' }))).toBe('UNKNOWN_ID');
    expect(await code(search.explain('heat', { id: 'heat', text: 'something else entirely' }))).toBe('TEXT_MISMATCH');
    expect(await code(search.explain('heat', {} as never))).toBe('INVALID_ARGUMENT');
    expect(await code(search.explain('', { id: 'heat' }))).toBe('EMPTY_TEXT');
    expect((await search.stats()).documents).toBe(2);
  });

  it('explains a pooled index: each stored row is one token or a pooled cluster listing its tokens', async () => {
    const models = resolve(REPO_ROOT, '.cache/test-models');
    const pooled = await createSearch({ model: resolve(models, 'tjs'), worker: false, device: 'wasm', dtype: 'fp32', precision: 'fp32', compression: { poolFactor: 2 } });
    try {
      await pooled.add(docs);
      const query = 'hypersonic heat transfer Müller';
      const text = docs[0]!.text;
      const [hit] = await pooled.search(query, { k: 1, exhaustive: true });
      const e = await pooled.explain(query, { id: hit!.id, text: docs.find((d) => d.id === hit!.id)!.text });
      const plain = await search.explain(query, { id: 'heat', text });
      expect(Math.abs(e.score - hit!.score)).toBeLessThan(1e-4);
      const heat = await pooled.explain(query, { id: 'heat', text });
      // About half the rows of the unpooled document, every text token in exactly one of them.
      expect(heat.documentTokens.length).toBeLessThan(plain.documentTokens.length);
      const flat = heat.documentTokens.flatMap((t) => t.members ?? [t]);
      expect(flat.map((t) => t.id).sort()).toEqual(plain.documentTokens.map((t) => t.id).sort());
      const clusters = heat.documentTokens.filter((t) => t.kind === 'pooled');
      expect(clusters.length).toBeGreaterThan(0);
      for (const c of clusters) {
        expect(c.members!.length).toBeGreaterThan(1);
        expect(c.text).toBe(c.members!.map((m) => m.text).join(''));
      }
      expect(flat.filter((t) => t.kind === 'text').every((t) => t.span !== null && text.slice(t.span.start, t.span.end).length > 0)).toBe(true);
      // The text alone is pooled as indexing would pool it; the id alone names pooled rows without words.
      const byText = await pooled.explain(query, { text });
      expect(Math.abs(byText.score - heat.score)).toBeLessThan(1e-4);
      const byId = await pooled.explain(query, { id: 'heat' });
      expect(byId.documentTokens.some((t) => t.kind === 'pooled' && t.text === '')).toBe(true);
      const code = await pooled.explain(query, { id: 'heat', text: docs[1]!.text }).then(() => 'resolved', (err: unknown) => (err instanceof ColbertError ? err.code : String(err)));
      expect(code).toBe('TEXT_MISMATCH');
    } finally {
      await pooled.close();
    }
  });

  it('counts tokens through the facade and reports the text budget', async () => {
    expect(await search.countTokens(['heat transfer', ''])).toEqual([2, 0]);
    expect(search.info.documentTextBudget).toBe(511);
  });
});
