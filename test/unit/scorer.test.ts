/** Choosing the scorer (the scoring option) and ranking through it, in Node (no WebGPU here). */
import { afterAll, describe, expect, it } from 'vitest';
import { resolve } from 'node:path';
import { createSearch, isColbertError, type ColbertSearch } from '../../src/index.ts';
import { maxSimShard } from '../../src/score/cpu.ts';
import { CpuScorer, createScorer } from '../../src/score/scorer.ts';
import { TopK } from '../../src/score/topk.ts';
import { MemoryStore } from '../../src/store/memory.ts';
import { VECTOR_PRECISIONS } from '../../src/store/precision.ts';
import { makeTestModels } from '../fixtures/make-models.ts';
import { mulberry32 } from '../support/rng.ts';
import { randomMatrix } from '../support/shards.ts';
import { HAVE_SHARED, REPO_ROOT, SHARED_MISSING, TOKENIZER_DIR } from '../support/shared.ts';

async function rejection(p: Promise<unknown>): Promise<unknown> {
  try {
    await p;
  } catch (err) {
    return err;
  }
  throw new Error('expected a rejection');
}

describe('createScorer', () => {
  it("runs on the CPU with no reason when 'cpu' is asked for", async () => {
    const scorer = await createScorer({ scoring: 'cpu' });
    expect(scorer.device).toBe('cpu');
    expect(scorer.fallbackReason).toBeUndefined();
  });

  it("falls back to the CPU under 'auto' where there is no WebGPU, and says why", async () => {
    const scorer = await createScorer({ scoring: 'auto' });
    expect(scorer.device).toBe('cpu');
    expect(scorer.fallbackReason).toMatch(/navigator\.gpu/);
  });

  it("fails with DEVICE_UNAVAILABLE when 'webgpu' is asked for and there is no WebGPU", async () => {
    const err = await rejection(createScorer({ scoring: 'webgpu' }));
    expect(isColbertError(err) && err.code).toBe('DEVICE_UNAVAILABLE');
  });

  it('rejects an unknown scoring option with INVALID_ARGUMENT naming the valid ones', async () => {
    const err = await rejection(createScorer({ scoring: 'gpu' as never }));
    expect(isColbertError(err) && err.code).toBe('INVALID_ARGUMENT');
    expect((err as Error).message).toMatch(/'auto', 'webgpu' or 'cpu'/);
  });
});

describe('CpuScorer.rank', () => {
  it.each(VECTOR_PRECISIONS)('returns the top k of a %s store, across shards, skipping deleted documents, ties by id', async (precision) => {
    const next = mulberry32(precision.length);
    const dim = 32;
    const store = new MemoryStore({ precision });
    const twin = randomMatrix(5, dim, next);
    await store.put(Array.from({ length: 500 }, (_, i) => ({ id: `d${String(i).padStart(3, '0')}`, matrix: i === 7 || i === 3 ? twin : randomMatrix(i % 10 === 0 ? 0 : 1 + (i % 400), dim, next) })));
    await store.delete(['d011', 'd250']);
    let shardCount = 0;
    for await (const _ of store.shards()) shardCount++;
    expect(shardCount).toBeGreaterThan(1);
    const query = randomMatrix(32, dim, next);
    const want = new TopK(50);
    for await (const shard of store.shards()) {
      const scores = maxSimShard(query, shard);
      shard.docIds.forEach((id, slot) => id !== null && want.push(id, scores[slot]!));
    }
    const got = await new CpuScorer(undefined).rank(query, () => store.shards(), 50);
    const expected = want.sorted();
    expect(got.map((h) => h.id)).toEqual(expected.map((h) => h.id));
    got.forEach((h, i) => expect(Math.abs(h.score - expected[i]!.score)).toBeLessThan(1e-4));
    expect(got.map((h) => h.id)).not.toContain('d011');
    // The two identical documents tie; the smaller id ranks first.
    const all = await new CpuScorer(undefined).rank(query, () => store.shards(), 1000);
    expect(all).toHaveLength(498);
    const i3 = all.findIndex((h) => h.id === 'd003');
    expect(all[i3 + 1]).toEqual({ id: 'd007', score: all[i3]!.score });
  });
});

describe.skipIf(!HAVE_SHARED)(`scoring option through the public API ${HAVE_SHARED ? '' : SHARED_MISSING}`, () => {
  let search: ColbertSearch | undefined;
  afterAll(async () => search?.close());

  it("reports scoringDevice and fails fast for 'webgpu' without WebGPU", { timeout: 120_000 }, async () => {
    const models = await makeTestModels(resolve(REPO_ROOT, '.cache/test-models'), TOKENIZER_DIR);
    search = await createSearch({ model: models.tjs, worker: false, scoring: 'cpu' });
    expect(search.scoringDevice).toBe('cpu');
    expect(search.scoringFallbackReason).toBeUndefined();
    expect(search.info.scoring).toEqual({ device: 'cpu', threads: 1 });
    const err = await rejection(createSearch({ model: models.tjs, worker: false, scoring: 'webgpu' }));
    expect(isColbertError(err) && err.code).toBe('DEVICE_UNAVAILABLE');
    await search.add([
      { id: 'a', text: 'supersonic flow over a swept wing' },
      { id: 'b', text: 'heat transfer in a laminar boundary layer' },
    ]);
    const hits = await search.search('swept wing', { k: 2 });
    expect(hits.map((h) => h.id)).toEqual(['a', 'b']);
  });
});
