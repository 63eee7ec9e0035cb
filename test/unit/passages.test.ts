/**
 * The demo's passage splitter: paragraphs packed up to a token budget, long paragraphs split at
 * sentences and words, offsets pointing back into the source; with the real tokenizer's counts.
 */
import { describe, expect, it } from 'vitest';
import { Tokenizer } from '@huggingface/tokenizers';
import { splitPassages, type TokenCounter } from '../../src/text/passages.ts';
import { HAVE_SHARED, SHARED_MISSING, loadPylateTokenizerFiles } from '../support/shared.ts';

/** One token per whitespace-separated word. */
const words: TokenCounter = async (texts) => texts.map((t) => t.split(/\s+/).filter(Boolean).length);

describe('splitPassages', () => {
  it('packs whole paragraphs while they fit and keeps exact source offsets', async () => {
    const text = 'one two three\n\nfour five\n\n\nsix seven eight nine\n\nten';
    const passages = await splitPassages(text, 6, words);
    expect(passages.map((p) => p.text)).toEqual(['one two three\n\nfour five', 'six seven eight nine\n\nten']);
    for (const p of passages) expect(text.slice(p.start, p.end)).toBe(p.text);
  });

  it('splits a paragraph over the budget at sentences, then at words', async () => {
    const text = 'Alpha beta gamma. Delta epsilon zeta eta theta iota kappa lambda mu. Nu.';
    const passages = await splitPassages(text, 4, words);
    for (const p of passages) {
      expect((await words([p.text]))[0]).toBeLessThanOrEqual(4);
      expect(text.slice(p.start, p.end)).toBe(p.text);
    }
    expect(passages.map((p) => p.text).join(' ')).toBe(text);
  });

  it('gives nothing for blank text and rejects a bad budget', async () => {
    expect(await splitPassages(' \n\n \t', 10, words)).toEqual([]);
    await expect(splitPassages('x', 0, words)).rejects.toThrow(RangeError);
  });
});

describe.skipIf(!HAVE_SHARED)(`splitPassages with the real tokenizer ${HAVE_SHARED ? '' : SHARED_MISSING}`, () => {
  it('keeps every passage within the budget as the tokenizer counts it, non-ASCII included', async () => {
    const files = HAVE_SHARED ? loadPylateTokenizerFiles() : { tokenizerJson: {}, tokenizerConfig: {} };
    const hf = new Tokenizer(files.tokenizerJson, files.tokenizerConfig);
    const count: TokenCounter = async (texts) => texts.map((t) => hf.encode(t, { add_special_tokens: false }).ids.length);
    const para = (i: number) => `Paragraphe ${i} : la traînée d’un profil à faible vitesse, 東京 🚀, measured in a wind tunnel.`;
    const text = Array.from({ length: 60 }, (_, i) => para(i)).join('\n\n') + '\n\n' + 'x'.repeat(3000);
    const budget = 120;
    const passages = await splitPassages(text, budget, count);
    expect(passages.length).toBeGreaterThan(10);
    for (const p of passages) {
      expect((await count([p.text]))[0]).toBeLessThanOrEqual(budget);
      expect(text.slice(p.start, p.end)).toBe(p.text);
    }
    // Nothing is lost: every paragraph appears in exactly one passage.
    for (let i = 0; i < 60; i++) expect(passages.filter((p) => p.text.includes(para(i))).length).toBe(1);
  });
});
