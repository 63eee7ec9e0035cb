/**
 * Retrieval quality floors for the lexical and hybrid modes on Cranfield through the public API
 * (the semantic floor is test/unit/cranfield-eval.test.ts). BM25 runs all 225 queries (it is
 * cheap); the hybrid modes, which encode every query, the first 30. Random rankings reach
 * nDCG@10 < 0.03 and recall@100 < 0.12 (computed there); a broken analyzer, postings or fusion
 * falls far below these floors. `npm run eval:cranfield` prints all four modes on all queries.
 */
import { afterAll, describe, expect, it } from 'vitest';
import { resolve } from 'node:path';
import { createSearch, type ColbertSearch } from '../../src/index.ts';
import { CRANFIELD_MODES, evaluateCranfield, runCranfield } from '../../bench/cranfield.ts';
import { makeTestModels } from '../fixtures/make-models.ts';
import { CRANFIELD_DIR, HAVE_SHARED, REPO_ROOT, SHARED_MISSING, TOKENIZER_DIR } from '../support/shared.ts';

const HYBRID_QUERIES = 30;

describe.skipIf(!HAVE_SHARED)(`Cranfield lexical and hybrid modes ${HAVE_SHARED ? '' : SHARED_MISSING}`, () => {
  let search: ColbertSearch | undefined;
  afterAll(async () => search?.close());

  it('lexical, hybrid-rrf and hybrid-relative stay above their floors', { timeout: 600_000 }, async () => {
    const models = await makeTestModels(resolve(REPO_ROOT, '.cache/test-models'), TOKENIZER_DIR);
    search = await createSearch({ model: models.tjs, worker: false });
    const lexical = await evaluateCranfield(search, CRANFIELD_DIR, undefined, CRANFIELD_MODES['lexical']);
    const semantic = await runCranfield(search, CRANFIELD_DIR, HYBRID_QUERIES, CRANFIELD_MODES['semantic']);
    const rrf = await runCranfield(search, CRANFIELD_DIR, HYBRID_QUERIES, CRANFIELD_MODES['hybrid-rrf']);
    const relative = await runCranfield(search, CRANFIELD_DIR, HYBRID_QUERIES, CRANFIELD_MODES['hybrid-relative']);
    const line = (name: string, r: { ndcg10: number; recall100: number; queries: number }) => `${name} (${r.queries} q) nDCG@10 ${r.ndcg10.toFixed(4)} recall@100 ${r.recall100.toFixed(4)}`;
    console.log(`[cranfield modes] ${[line('lexical', lexical), line('semantic', semantic), line('hybrid-rrf', rrf), line('hybrid-relative', relative)].join('; ')}`);
    expect(lexical.queries).toBe(225);
    expect(lexical.documents).toBe(1398);
    expect(lexical.ndcg10).toBeGreaterThan(0.3);
    expect(lexical.recall100).toBeGreaterThan(0.65);
    expect(rrf.queries).toBe(HYBRID_QUERIES);
    expect(rrf.ndcg10).toBeGreaterThan(FLOOR.rrf.ndcg10);
    expect(rrf.recall100).toBeGreaterThan(FLOOR.rrf.recall100);
    expect(relative.ndcg10).toBeGreaterThan(FLOOR.relative.ndcg10);
    expect(relative.recall100).toBeGreaterThan(FLOOR.relative.recall100);
    // Fusion adds what late interaction misses: both hybrids recall more than semantic alone.
    expect(rrf.recall100).toBeGreaterThan(semantic.recall100);
    expect(relative.recall100).toBeGreaterThan(semantic.recall100);
  });
});

const FLOOR = { rrf: { ndcg10: 0.22, recall100: 0.55 }, relative: { ndcg10: 0.2, recall100: 0.5 } };
