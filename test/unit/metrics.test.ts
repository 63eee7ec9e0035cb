/**
 * bench/metrics.ts: Cranfield grade → gain, nDCG@k and recall@k against values worked out by hand.
 */
import { describe, expect, it } from 'vitest';
import { gain, mean, ndcgAtK, recallAtK } from '../../bench/metrics.ts';

/** a: grade 1 (gain 4), b: grade 3 (gain 2), c: judged not relevant (-1, gain 0), d: grade 4 (gain 1). */
const RELS = new Map([
  ['a', 1],
  ['b', 3],
  ['c', -1],
  ['d', 4],
]);

describe('gain', () => {
  it('maps Cranfield grades 1 (best) … 4 to gains 4 … 1', () => {
    expect([1, 2, 3, 4].map(gain)).toEqual([4, 3, 2, 1]);
  });
  it('gives 0 to judged-not-relevant (-1), grade 5, unjudged and odd values', () => {
    expect([-1, 0, 5, undefined, 1.5, Number.NaN].map(gain)).toEqual([0, 0, 0, 0, 0, 0]);
  });
});

describe('ndcgAtK', () => {
  it('is 1 for the ideal order, whatever k', () => {
    for (const k of [1, 2, 3, 10]) expect(ndcgAtK(['a', 'b', 'd', 'c'], RELS, k)).toBeCloseTo(1, 12);
  });

  it('matches a hand computation with the log2(rank + 1) discount', () => {
    // ranked b, x, a: DCG@3 = 2/log2(2) + 0/log2(3) + 4/log2(4) = 2 + 0 + 2 = 4.
    // ideal a, b, d:  IDCG@3 = 4/1 + 2/log2(3) + 1/log2(4) = 4 + 1.2618595 + 0.5 = 5.7618595.
    const idcg3 = 4 + 2 / Math.log2(3) + 0.5;
    expect(ndcgAtK(['b', 'x', 'a'], RELS, 3)).toBeCloseTo(4 / idcg3, 12);
    expect(ndcgAtK(['b', 'x', 'a'], RELS, 3)).toBeCloseTo(0.6942203, 6);
    // @1: DCG = 2, IDCG = 4.
    expect(ndcgAtK(['b', 'x', 'a'], RELS, 1)).toBe(0.5);
    // @2: DCG = 2 (x is unjudged), IDCG = 4 + 2/log2(3).
    expect(ndcgAtK(['b', 'x', 'a'], RELS, 2)).toBeCloseTo(2 / (4 + 2 / Math.log2(3)), 12);
  });

  it('takes the ideal from every judged document, not only those retrieved', () => {
    // Only d (gain 1) retrieved: 1 / IDCG@1 = 1/4, although d is the best of what was retrieved.
    expect(ndcgAtK(['d'], RELS, 1)).toBe(0.25);
  });

  it('counts judged-not-relevant and unjudged documents as gain 0', () => {
    expect(ndcgAtK(['c', 'x', 'y'], RELS, 3)).toBe(0);
  });

  it('handles a list shorter than k and an empty list', () => {
    expect(ndcgAtK(['a'], RELS, 10)).toBeCloseTo(4 / (4 + 2 / Math.log2(3) + 0.5), 12);
    expect(ndcgAtK([], RELS, 10)).toBe(0);
  });

  it('is 0 when no judged document is relevant', () => {
    expect(ndcgAtK(['c'], new Map([['c', -1]]), 5)).toBe(0);
    expect(ndcgAtK(['a'], new Map(), 5)).toBe(0);
  });

  it('accepts another gain function (exponential 2^gain - 1)', () => {
    const exp = (g: number | undefined) => 2 ** gain(g) - 1;
    // ranked b, a @2: DCG = 3 + 15/log2(3); IDCG = 15 + 3/log2(3).
    const l3 = Math.log2(3);
    expect(ndcgAtK(['b', 'a'], RELS, 2, exp)).toBeCloseTo((3 + 15 / l3) / (15 + 3 / l3), 12);
  });

  it('rejects a bad k and a ranking that repeats a document', () => {
    expect(() => ndcgAtK(['a'], RELS, 0)).toThrow(RangeError);
    expect(() => ndcgAtK(['a'], RELS, 1.5)).toThrow(RangeError);
    expect(() => ndcgAtK(['a', 'b', 'a'], RELS, 3)).toThrow(/repeats document "a"/);
  });
});

describe('recallAtK', () => {
  it('is the share of relevant documents (gain > 0) in the first k', () => {
    // Relevant: a, b, d (c is judged not relevant).
    const ranked = ['c', 'a', 'x', 'd', 'b'];
    expect(recallAtK(ranked, RELS, 1)).toBe(0);
    expect(recallAtK(ranked, RELS, 2)).toBeCloseTo(1 / 3, 12);
    expect(recallAtK(ranked, RELS, 4)).toBeCloseTo(2 / 3, 12);
    expect(recallAtK(ranked, RELS, 5)).toBe(1);
    expect(recallAtK(ranked, RELS, 100)).toBe(1);
  });

  it('is 0 when the query has no relevant document, and rejects bad input', () => {
    expect(recallAtK(['c'], new Map([['c', -1]]), 1)).toBe(0);
    expect(() => recallAtK(['a'], RELS, 0)).toThrow(RangeError);
    expect(() => recallAtK(['a', 'a'], RELS, 2)).toThrow(RangeError);
  });
});

describe('mean', () => {
  it('averages, and refuses an empty list', () => {
    expect(mean([1, 2, 3, 4])).toBe(2.5);
    expect(mean([0.5])).toBe(0.5);
    expect(() => mean([])).toThrow(RangeError);
  });
});
