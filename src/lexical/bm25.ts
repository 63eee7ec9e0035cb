/**
 * BM25 (Okapi, k1 = 1.2, b = 0.75, Lucene's idf `ln(1 + (N - df + 0.5) / (df + 0.5))`) over the
 * posting lists a store returns for a query's terms, and the fusion of a lexical ranking with a
 * late-interaction one (reciprocal rank, or min-max relative scores).
 */
import { TopK, type Scored } from '../score/topk.ts';

export const BM25_K1 = 1.2;
export const BM25_B = 0.75;
/** The k of reciprocal rank fusion: score = sum of 1 / (60 + rank). */
export const RRF_K = 60;

/** One document in a term's posting list. */
export interface Posting {
  id: string;
  /** Occurrences of the term in the document. */
  tf: number;
  /** The document's length in terms. */
  length: number;
}

/** What a store returns for a lexical query: collection statistics and the live postings of each term. */
export interface LexicalPostings {
  /** Documents with lexical terms (documents indexed from text). */
  documents: number;
  /** Sum of their lengths in terms. */
  totalLength: number;
  /** Live postings per query term (a term absent from the index has an empty list). */
  lists: Map<string, Posting[]>;
}

/** Inverse document frequency of a term found in `df` of `n` documents. */
export function idf(n: number, df: number): number {
  return Math.log(1 + (n - df + 0.5) / (df + 0.5));
}

/** One term's BM25 contribution for a document. */
export function termScore(tf: number, length: number, avgLength: number, n: number, df: number): number {
  const norm = tf + BM25_K1 * (1 - BM25_B + (BM25_B * length) / (avgLength || 1));
  return (idf(n, df) * tf * (BM25_K1 + 1)) / norm;
}

/** The unique terms of a query, in first-seen order. */
export function queryTerms(terms: readonly string[]): string[] {
  return [...new Set(terms)];
}

/** The k best documents by BM25 (only those in `allowed` when given), best first, ties by id. */
export function rankBm25(terms: readonly string[], postings: LexicalPostings, k: number, allowed?: ReadonlySet<string>): Scored[] {
  const { documents: n, totalLength } = postings;
  const avg = n ? totalLength / n : 0;
  const scores = new Map<string, number>();
  for (const term of queryTerms(terms)) {
    const list = postings.lists.get(term) ?? [];
    const df = list.length;
    for (const p of list) {
      if (allowed && !allowed.has(p.id)) continue;
      scores.set(p.id, (scores.get(p.id) ?? 0) + termScore(p.tf, p.length, avg, n, df));
    }
  }
  const top = new TopK(k);
  for (const [id, score] of scores) top.push(id, score);
  return top.sorted();
}

/** One matched query term of an explanation. */
export interface LexicalTermMatch {
  /** The index term (folded, stemmed for English). */
  term: string;
  /** Occurrences in the document. */
  tf: number;
  /** Documents of the index that contain it. */
  df: number;
  /** Its BM25 contribution (the contributions sum to the lexical score). */
  contribution: number;
}

/** Per-term BM25 contributions of a document with term frequencies `tf` and `length` terms. */
export function explainBm25(terms: readonly string[], postings: LexicalPostings, tf: ReadonlyMap<string, number>, length: number): { score: number; terms: LexicalTermMatch[] } {
  const n = postings.documents;
  const avg = n ? postings.totalLength / n : 0;
  const matched: LexicalTermMatch[] = [];
  let score = 0;
  for (const term of queryTerms(terms)) {
    const f = tf.get(term) ?? 0;
    if (!f) continue;
    const df = Math.max(1, postings.lists.get(term)?.length ?? 0);
    const contribution = termScore(f, length, avg, Math.max(n, df), df);
    score += contribution;
    matched.push({ term, tf: f, df, contribution });
  }
  return { score, terms: matched };
}

/** How two rankings are fused. */
export type Fusion = 'rrf' | 'relative';

/**
 * Fuses a late-interaction ranking and a lexical one (each best first) into the k best, ties by
 * id. 'rrf': sum of 1 / (60 + rank) over the lists a document is in. 'relative': each list's
 * scores min-max normalised to [0, 1] (all 1 when they are equal), then
 * `alpha * semantic + (1 - alpha) * lexical`, 0 where a list lacks the document.
 */
export function fuse(semantic: readonly Scored[], lexical: readonly Scored[], k: number, fusion: Fusion, alpha: number): (Scored & { semantic?: number; lexical?: number })[] {
  const parts = new Map<string, { semantic?: number; lexical?: number; fused: number }>();
  const entry = (id: string) => {
    let e = parts.get(id);
    if (!e) parts.set(id, (e = { fused: 0 }));
    return e;
  };
  const add = (list: readonly Scored[], which: 'semantic' | 'lexical', weight: number) => {
    if (!list.length) return;
    const max = list[0]!.score;
    const min = list[list.length - 1]!.score;
    list.forEach((h, rank) => {
      const e = entry(h.id);
      e[which] = h.score;
      e.fused += fusion === 'rrf' ? 1 / (RRF_K + rank + 1) : weight * (max > min ? (h.score - min) / (max - min) : 1);
    });
  };
  add(semantic, 'semantic', alpha);
  add(lexical, 'lexical', 1 - alpha);
  const top = new TopK(k);
  for (const [id, e] of parts) top.push(id, e.fused);
  return top.sorted().map((h) => ({ ...h, ...pick(parts.get(h.id)!) }));
}

function pick(e: { semantic?: number; lexical?: number }): { semantic?: number; lexical?: number } {
  const out: { semantic?: number; lexical?: number } = {};
  if (e.semantic !== undefined) out.semantic = e.semantic;
  if (e.lexical !== undefined) out.lexical = e.lexical;
  return out;
}
