/**
 * Cranfield retrieval quality through the public API: the 225 queries over the 1400 aerodynamics
 * abstracts, scored with the graded judgments (nDCG@10, recall@100).
 *
 *   npm run eval:cranfield -- [model] [--limit N] [--tiny]
 *
 * Prints nDCG@10 and recall@100 for the semantic, lexical, hybrid-rrf and hybrid-relative modes.
 * Without a model argument it uses the generated contextual test model
 * (.cache/test-models/contextual-tjs; `--tiny` for the tiny random-vector one). Neither is a real
 * language model: their figures prove the pipeline, not retrieval quality. Pass a real exported
 * model (path or URL) for real figures.
 */
import { resolve } from 'node:path';
import { createSearch, type ColbertSearch, type SearchOptions } from '../src/index.ts';
import { loadCranfield } from '../test/fixtures/cranfield.ts';
import { mean, ndcgAtK, recallAtK } from './metrics.ts';

/** What {@link evaluateCranfield} reports. */
export interface CranfieldResult {
  ndcg10: number;
  recall100: number;
  queries: number;
  documents: number;
  /** Documents left out because their text is empty (471 and 995 in the collection). */
  skipped: string[];
}

/** The ways of searching that `npm run eval:cranfield` compares. */
export const CRANFIELD_MODES: Record<string, Omit<SearchOptions, 'k'>> = {
  semantic: { mode: 'semantic' },
  lexical: { mode: 'lexical' },
  'hybrid-rrf': { mode: 'hybrid', fusion: 'rrf' },
  'hybrid-relative': { mode: 'hybrid', fusion: 'relative', alpha: 0.75 },
};

/** Indexes the collection into `search` and runs every query (or the first `limit`), semantic unless `options` say otherwise. */
export async function evaluateCranfield(search: ColbertSearch, dir: string, limit?: number, options: Omit<SearchOptions, 'k'> = {}): Promise<CranfieldResult> {
  const { docs } = await loadCranfield(dir);
  const indexable = docs.filter((d) => d.text.trim() !== '');
  await search.add(indexable.map((d) => ({ id: d.id, text: d.text })));
  return runCranfield(search, dir, limit, options);
}

/** Runs the queries against an index that holds the collection already. */
export async function runCranfield(search: ColbertSearch, dir: string, limit?: number, options: Omit<SearchOptions, 'k'> = {}): Promise<CranfieldResult> {
  const { docs, queries, qrels } = await loadCranfield(dir);
  const indexable = docs.filter((d) => d.text.trim() !== '');
  const ndcg: number[] = [];
  const recall: number[] = [];
  for (const q of queries.slice(0, limit ?? queries.length)) {
    const ranked = (await search.search(q.text, { ...options, k: 100 })).map((h) => h.id);
    const rels = qrels.get(q.id) ?? new Map<string, number>();
    ndcg.push(ndcgAtK(ranked, rels, 10));
    recall.push(recallAtK(ranked, rels, 100));
  }
  return {
    ndcg10: mean(ndcg),
    recall100: mean(recall),
    queries: ndcg.length,
    documents: indexable.length,
    skipped: docs.filter((d) => d.text.trim() === '').map((d) => d.id),
  };
}

if (process.argv[1] && resolve(process.argv[1]) === resolve(import.meta.filename)) {
  const args = process.argv.slice(2);
  const limitAt = args.indexOf('--limit');
  const limit = limitAt >= 0 ? Number(args[limitAt + 1]) : undefined;
  const positional = args.filter((a, i) => !a.startsWith('--') && (limitAt < 0 || i !== limitAt + 1));
  const root = resolve(import.meta.dirname, '..');
  const shared = resolve(root, '../shared/fixtures');
  let model = positional[0];
  if (!model) {
    const { makeTestModels } = await import('../test/fixtures/make-models.ts');
    const models = await makeTestModels(resolve(root, '.cache/test-models'), resolve(shared, 'modernbert-tokenizer'));
    if (args.includes('--tiny')) {
      model = models.tjs;
      console.log('model: the tiny generated test model (random token vectors, not a language model)');
    } else {
      model = models.contextualTjs;
      console.log('model: the contextual generated test model (test/fixtures/contextual-model.ts; --tiny for the tiny one)');
    }
  }
  const search = await createSearch({ model, worker: false });
  const t0 = performance.now();
  const dir = resolve(shared, 'cranfield');
  const first = await evaluateCranfield(search, dir, limit);
  console.log(`model ${model} on ${search.device}/${search.dtype}`);
  console.log(`Cranfield: ${first.documents} documents (empty, left out: ${first.skipped.join(', ') || 'none'}), ${first.queries} queries; index and queries ${((performance.now() - t0) / 1000).toFixed(1)} s`);
  console.log(`${'mode'.padEnd(16)} ${'nDCG@10'.padStart(8)} ${'recall@100'.padStart(11)} ${'time'.padStart(8)}`);
  for (const [name, options] of Object.entries(CRANFIELD_MODES)) {
    const t1 = performance.now();
    const result = name === 'semantic' ? first : await runCranfield(search, dir, limit, options);
    const time = name === 'semantic' ? '' : `${((performance.now() - t1) / 1000).toFixed(1)} s`;
    console.log(`${name.padEnd(16)} ${result.ndcg10.toFixed(4).padStart(8)} ${result.recall100.toFixed(4).padStart(11)} ${time.padStart(8)}`);
  }
  await search.close();
}
