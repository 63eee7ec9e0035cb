/**
 * Retrieval quality metrics over graded judgments (pure functions, no I/O).
 *
 * Judgments are Cranfield grades (test/fixtures/cranfield.ts): 1 is best, 4 least relevant, -1
 * judged not relevant. {@link gain} turns a grade into a linear gain (1 → 4, 2 → 3, 3 → 2, 4 → 1,
 * anything else 0); a document is relevant when its gain is above 0.
 */

/** Judgments for one query: doc id → grade. Documents not in the map are not relevant. */
export type Judgments = ReadonlyMap<string, number>;

/**
 * Gain of a Cranfield grade, linear in relevance: grade 1 ("complete answer") → 4, 2 → 3, 3 → 2,
 * 4 ("minimum interest") → 1. Anything else (-1 "judged not relevant", 5 "no interest", an
 * unjudged document, a non-integer) → 0.
 */
export function gain(grade: number | undefined): number {
  switch (grade) {
    case 1:
      return 4;
    case 2:
      return 3;
    case 3:
      return 2;
    case 4:
      return 1;
    default:
      return 0;
  }
}

function checkArgs(ranked: readonly string[], k: number): void {
  if (!Number.isInteger(k) || k < 1) throw new RangeError(`k must be a positive integer, got ${k}`);
  if (new Set(ranked).size !== ranked.length) {
    // A duplicate would be counted twice and could push nDCG above 1: it is a bug in the ranker.
    const seen = new Set<string>();
    const dup = ranked.find((id) => (seen.has(id) ? true : (seen.add(id), false)));
    throw new RangeError(`ranked list repeats document "${dup}"`);
  }
}

/**
 * Normalised discounted cumulative gain at rank `k`, in [0, 1].
 * DCG@k = Σ_{i=1..k} gainOf(grade of ranked[i]) / log2(i + 1); the ideal DCG ranks all judged
 * documents by gain. Returns 0 when no judged document has a gain above 0.
 *
 * @param ranked doc ids, best first; no repeats (throws RangeError).
 * @param rels doc id → grade for this query.
 * @param k cut-off rank, a positive integer (throws RangeError otherwise).
 * @param gainOf grade → gain; default {@link gain}.
 */
export function ndcgAtK(ranked: readonly string[], rels: Judgments, k: number, gainOf: (grade: number | undefined) => number = gain): number {
  checkArgs(ranked, k);
  let dcg = 0;
  for (let i = 0; i < Math.min(k, ranked.length); i++) {
    dcg += gainOf(rels.get(ranked[i] as string)) / Math.log2(i + 2);
  }
  const ideal = [...rels.values()].map(gainOf).sort((a, b) => b - a);
  let idcg = 0;
  for (let i = 0; i < Math.min(k, ideal.length); i++) idcg += (ideal[i] as number) / Math.log2(i + 2);
  return idcg > 0 ? dcg / idcg : 0;
}

/**
 * Recall at rank `k`, in [0, 1]: the share of relevant documents (gain above 0) that appear in
 * the first `k` of `ranked`. Returns 0 when the query has no relevant document.
 *
 * @param ranked doc ids, best first; no repeats (throws RangeError).
 * @param rels doc id → grade for this query.
 * @param k cut-off rank, a positive integer (throws RangeError otherwise).
 * @param gainOf grade → gain; default {@link gain}.
 */
export function recallAtK(ranked: readonly string[], rels: Judgments, k: number, gainOf: (grade: number | undefined) => number = gain): number {
  checkArgs(ranked, k);
  let relevant = 0;
  for (const grade of rels.values()) if (gainOf(grade) > 0) relevant++;
  if (relevant === 0) return 0;
  let found = 0;
  for (const id of ranked.slice(0, k)) if (gainOf(rels.get(id)) > 0) found++;
  return found / relevant;
}

/** Arithmetic mean; throws RangeError on an empty list (a mean over no queries means nothing). */
export function mean(values: readonly number[]): number {
  if (values.length === 0) throw new RangeError('mean of an empty list');
  let sum = 0;
  for (const v of values) sum += v;
  return sum / values.length;
}
