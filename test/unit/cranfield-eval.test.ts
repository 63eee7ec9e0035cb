/**
 * Retrieval quality floor: the generated test model (token-identity vectors, no language
 * understanding) through the public API must rank Cranfield far above chance. A broken recipe,
 * scorer or top-k drops it to the random level, which this test computes alongside.
 * (The first 60 queries keep the CPU-only run short; `npm run eval:cranfield` runs all 225.)
 */
import { afterAll, describe, expect, it } from 'vitest';
import { resolve } from 'node:path';
import { createSearch, type ColbertSearch } from '../../src/index.ts';
import { evaluateCranfield } from '../../bench/cranfield.ts';
import { mean, ndcgAtK, recallAtK } from '../../bench/metrics.ts';
import { loadCranfield } from '../fixtures/cranfield.ts';
import { makeTestModels } from '../fixtures/make-models.ts';
import { CRANFIELD_DIR, HAVE_SHARED, REPO_ROOT, SHARED_MISSING, TOKENIZER_DIR } from '../support/shared.ts';

const QUERIES = 60;

/** nDCG@10 and recall@100 of random rankings of the same documents, averaged over a few shuffles. */
async function randomBaseline(): Promise<{ ndcg10: number; recall100: number }> {
  const { docs, queries, qrels } = await loadCranfield(CRANFIELD_DIR);
  let seed = 42;
  const next = () => ((seed = (Math.imul(seed, 1664525) + 1013904223) >>> 0) / 2 ** 32);
  const ndcg: number[] = [];
  const recall: number[] = [];
  for (let round = 0; round < 5; round++) {
    for (const q of queries.slice(0, QUERIES)) {
      const ids = docs.map((d) => d.id);
      for (let i = ids.length - 1; i > 0; i--) {
        const j = Math.floor(next() * (i + 1));
        [ids[i], ids[j]] = [ids[j]!, ids[i]!];
      }
      const rels = qrels.get(q.id) ?? new Map<string, number>();
      ndcg.push(ndcgAtK(ids.slice(0, 100), rels, 10));
      recall.push(recallAtK(ids.slice(0, 100), rels, 100));
    }
  }
  return { ndcg10: mean(ndcg), recall100: mean(recall) };
}

describe.skipIf(!HAVE_SHARED)(`Cranfield through the public API ${HAVE_SHARED ? '' : SHARED_MISSING}`, () => {
  let search: ColbertSearch | undefined;
  afterAll(async () => search?.close());

  it('ranks far above a random ranking (nDCG@10 and recall@100 floors)', { timeout: 600_000 }, async () => {
    const models = await makeTestModels(resolve(REPO_ROOT, '.cache/test-models'), TOKENIZER_DIR);
    search = await createSearch({ model: models.tjs, worker: false });
    const result = await evaluateCranfield(search, CRANFIELD_DIR, QUERIES);
    const random = await randomBaseline();
    console.log(`[cranfield] ${QUERIES} queries: nDCG@10 ${result.ndcg10.toFixed(4)} recall@100 ${result.recall100.toFixed(4)}; random: ${random.ndcg10.toFixed(4)} / ${random.recall100.toFixed(4)}`);
    expect(result.documents).toBe(1398);
    expect(result.skipped).toEqual(['471', '995']);
    expect(result.queries).toBe(QUERIES);
    // Floors: several times what chance reaches, and the random baseline really is below them.
    expect(random.ndcg10).toBeLessThan(0.03);
    expect(random.recall100).toBeLessThan(0.12);
    expect(result.ndcg10).toBeGreaterThan(0.12);
    expect(result.recall100).toBeGreaterThan(0.35);
  });
});
