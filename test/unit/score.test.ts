/** CPU MaxSim (the oracle) and streaming top-k. */
import { describe, expect, it } from 'vitest';
import { maxSim, maxSimShard } from '../../src/score/cpu.ts';
import { TopK } from '../../src/score/topk.ts';
import type { ShardView } from '../../src/store/types.ts';
import { allocatePacked, decodeRows, encodeRows, VECTOR_PRECISIONS, type VectorPrecision } from '../../src/store/precision.ts';
import type { TokenMatrix } from '../../src/types.ts';
import { mulberry32 as rng } from '../fixtures/make-models.ts';
import { randomMatrix } from '../support/shards.ts';

function shardOf(docs: (TokenMatrix | null)[], dim: number, precision: VectorPrecision = 'fp32'): ShardView {
  const offsets = new Uint32Array(docs.length + 1);
  docs.forEach((d, i) => (offsets[i + 1] = offsets[i]! + (d?.tokens ?? 0)));
  const packed = allocatePacked(precision, offsets[docs.length]!, dim);
  docs.forEach((d, i) => d && encodeRows(d.data, d.tokens, dim, packed, offsets[i]!));
  return { key: 'test', dim, offsets, ...packed, docIds: docs.map((d, i) => (d ? `d${i}` : null)) };
}

describe('maxSim', () => {
  it('sums, over query tokens, the best dot product with any document token', () => {
    const q: TokenMatrix = { data: new Float32Array([1, 0, 0, 1]), tokens: 2, dim: 2, ids: new Int32Array(2) };
    const d: TokenMatrix = { data: new Float32Array([0.6, 0.8, -1, 0, 0, -1]), tokens: 3, dim: 2, ids: new Int32Array(3) };
    // q0 = (1,0): best 0.6; q1 = (0,1): best 0.8.
    expect(maxSim(q, d)).toBeCloseTo(1.4, 6);
  });

  it('scores a shard exactly like the reference, with 0 for empty and -Infinity for deleted slots', () => {
    const next = rng(7);
    const dim = 128;
    const q = randomMatrix(32, dim, next);
    const docs = [randomMatrix(5, dim, next), randomMatrix(0, dim, next), null, randomMatrix(1, dim, next), randomMatrix(250, dim, next)];
    const scores = maxSimShard(q, shardOf(docs, dim));
    docs.forEach((d, i) => {
      if (d === null) expect(scores[i]).toBe(-Infinity);
      else if (d.tokens === 0) expect(scores[i]).toBe(0);
      else expect(Math.abs(scores[i]! - maxSim(q, d))).toBeLessThan(1e-4);
    });
  });

  it.each(VECTOR_PRECISIONS)('scores %s-stored shards exactly like the reference over the decoded rows', (precision) => {
    const next = rng(19);
    const dim = 128;
    const q = randomMatrix(32, dim, next);
    const docs = [randomMatrix(7, dim, next), randomMatrix(0, dim, next), null, randomMatrix(1, dim, next), randomMatrix(90, dim, next)];
    const shard = shardOf(docs, dim, precision);
    const scores = maxSimShard(q, shard);
    docs.forEach((d, i) => {
      if (d === null) return expect(scores[i]).toBe(-Infinity);
      const decoded: TokenMatrix = { data: decodeRows(shard, shard.offsets[i]!, d.tokens, dim), tokens: d.tokens, dim, ids: d.ids };
      expect(Math.abs(scores[i]! - maxSim(q, decoded))).toBeLessThan(1e-4);
      // And the stored precision stays close to the float scores it came from.
      if (d.tokens > 0) expect(Math.abs(scores[i]! - maxSim(q, d))).toBeLessThan(precision === 'fp32' ? 1e-4 : precision === 'fp16' ? 0.02 : 0.2);
    });
  });

  it('handles dims that are not a multiple of 4', () => {
    const next = rng(3);
    const q = randomMatrix(3, 7, next);
    const d = randomMatrix(4, 7, next);
    expect(maxSimShard(q, shardOf([d], 7))[0]).toBeCloseTo(maxSim(q, d), 5);
  });
});

describe('TopK', () => {
  it('keeps the k best, best first, ties broken by id', () => {
    const top = new TopK(3);
    [['a', 1], ['b', 5], ['c', 3], ['d', 5], ['e', -1], ['f', 4]].forEach(([id, s]) => top.push(id as string, s as number));
    expect(top.sorted()).toEqual([
      { id: 'b', score: 5 },
      { id: 'd', score: 5 },
      { id: 'f', score: 4 },
    ]);
  });

  it('returns everything when fewer than k were pushed', () => {
    const top = new TopK(10);
    top.push('x', 1);
    top.push('y', 2);
    expect(top.sorted().map((h) => h.id)).toEqual(['y', 'x']);
  });

  it('agrees with a full sort on random data', () => {
    const next = rng(11);
    const items = Array.from({ length: 1000 }, (_, i) => ({ id: `d${i}`, score: Math.round(next() * 100) / 10 }));
    const top = new TopK(25);
    items.forEach((h) => top.push(h.id, h.score));
    const expected = [...items].sort((a, b) => b.score - a.score || (a.id < b.id ? -1 : 1)).slice(0, 25);
    expect(top.sorted()).toEqual(expected);
  });
});
