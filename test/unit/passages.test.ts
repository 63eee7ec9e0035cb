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

  it('never splits inside a word: a long line without sentence punctuation is cut at spaces', async () => {
    // About four characters a token, like a real tokenizer on English.
    const chars: TokenCounter = async (texts) => texts.map((t) => Math.ceil(t.length / 4));
    const text = Array.from({ length: 6000 }, (_, i) => `source${i} FOR${i % 7}`).join(' ');
    const passages = await splitPassages(text, 100, chars);
    expect(passages.length).toBeGreaterThan(20);
    for (const p of passages) {
      expect(text.slice(p.start, p.end)).toBe(p.text);
      expect(p.start === 0 || /\s/.test(text[p.start - 1]!)).toBe(true);
      expect(p.end === text.length || /\s/.test(text[p.end]!)).toBe(true);
      expect((await chars([p.text]))[0]).toBeLessThanOrEqual(100);
    }
  });

  it('counts runs of words, not every word, on a long line (the tokenizer costs per text)', async () => {
    let texts = 0;
    let calls = 0;
    const chars: TokenCounter = async (batch) => {
      calls++;
      texts += batch.length;
      return batch.map((t) => Math.ceil(t.length / 4));
    };
    const text = Array.from({ length: 20_000 }, (_, i) => `w${i}`).join(' ');
    const passages = await splitPassages(text, 100, chars);
    expect(passages.length).toBeGreaterThan(200);
    // One text per passage or so (the runs, the check), not one per word (20,000).
    expect(texts).toBeLessThan(passages.length * 4);
    expect(calls).toBeLessThan(40);
  });

  it('cuts text without spaces at word boundaries (Intl.Segmenter), and one overlong word between graphemes', async () => {
    const chars: TokenCounter = async (texts) => texts.map((t) => [...t].length);
    const text = '東京は日本の首都です。'.repeat(3) + '私は毎朝コーヒーを飲みます'.repeat(4);
    const boundaries = new Set([...new Intl.Segmenter('ja', { granularity: 'word' }).segment(text)].map((s) => s.index));
    const passages = await splitPassages(text, 12, chars);
    expect(passages.length).toBeGreaterThan(3);
    for (const p of passages) {
      expect(boundaries.has(p.start)).toBe(true);
      expect(p.end === text.length || boundaries.has(p.end)).toBe(true);
    }
    const long = `${'🚀'.repeat(30)}`;
    const rockets = await splitPassages(long, 8, chars);
    expect(rockets.map((p) => p.text).join('')).toBe(long);
    for (const p of rockets) expect(p.text).toMatch(/^(🚀)+$/u);
  });

  it('reports its progress up to 1, never backwards, and lets the event loop run meanwhile', async () => {
    // A slow counter (40 ms of work per call) that never gives the event loop a turn itself.
    const slow: TokenCounter = async (texts) => {
      const until = Date.now() + 40;
      while (Date.now() < until);
      return texts.map((t) => t.split(/\s+/).filter(Boolean).length);
    };
    const text = Array.from({ length: 40_000 }, (_, i) => `w${i}`).join(' ');
    const fractions: number[] = [];
    let ticked = false;
    setTimeout(() => (ticked = true), 0);
    const passages = await splitPassages(text, 300, slow, { onProgress: (f) => fractions.push(f) });
    expect(passages.length).toBeGreaterThan(100);
    expect(ticked).toBe(true);
    expect(fractions.length).toBeGreaterThan(3);
    expect(fractions.at(-1)).toBe(1);
    for (let i = 1; i < fractions.length; i++) expect(fractions[i]!).toBeGreaterThan(fractions[i - 1]!);
    expect(fractions.some((f) => f > 0.2 && f < 0.8)).toBe(true);
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
