/**
 * Small clustered token data for the compressed index's tests and the scale bench (no Node
 * imports), shaped like a trained encoder's: a vocabulary of word vectors grouped around
 * `topics` directions (related words lie near each other), each token its word's vector plus a
 * little context noise (one word differs by context). A document uses words of 3 topics; a query
 * uses words of one document (and some of their neighbours), so rankings have clear winners
 * and near-ties.
 */
import type { TokenMatrix } from '../../src/types.ts';
import { mulberry32 } from './rng.ts';

function gauss(next: () => number): number {
  return Math.sqrt(-2 * Math.log(1 - next())) * Math.cos(2 * Math.PI * next());
}

function normalise(v: Float32Array, o: number, dim: number): void {
  let n = 0;
  for (let d = 0; d < dim; d++) n += v[o + d]! * v[o + d]!;
  const inv = 1 / Math.sqrt(n);
  for (let d = 0; d < dim; d++) v[o + d]! *= inv;
}

export interface ClusteredData {
  dim: number;
  docs: { id: string; embedding: TokenMatrix }[];
  queries: TokenMatrix[];
}

/** `docs` documents of `minTokens..maxTokens` tokens, each drawing on the words of 3 of `topics` topics. */
export function clusteredData(options: { docs: number; queries: number; dim?: number; topics?: number; words?: number; minTokens?: number; maxTokens?: number; noise?: number; seed?: number }): ClusteredData {
  const dim = options.dim ?? 128;
  const topics = options.topics ?? 64;
  const words = options.words ?? 32 * topics;
  const noise = options.noise ?? 0.3;
  const next = mulberry32(options.seed ?? 11);
  const centers = new Float32Array(topics * dim);
  for (let i = 0; i < centers.length; i++) centers[i] = gauss(next);
  for (let t = 0; t < topics; t++) normalise(centers, t * dim, dim);
  // Word w belongs to topic w % topics, at a spread of 0.8 around it.
  const vocab = new Float32Array(words * dim);
  const spread = 0.8 / Math.sqrt(dim);
  for (let w = 0; w < words; w++) {
    for (let d = 0; d < dim; d++) vocab[w * dim + d] = centers[(w % topics) * dim + d]! + spread * gauss(next);
    normalise(vocab, w * dim, dim);
  }
  const scale = noise / Math.sqrt(dim);
  const row = (out: Float32Array, o: number, word: number) => {
    for (let d = 0; d < dim; d++) out[o + d] = vocab[word * dim + d]! + scale * gauss(next);
    normalise(out, o, dim);
  };
  const perTopic = Math.max(1, Math.floor(words / topics));
  const wordOf = (topic: number) => topic + topics * Math.floor(next() * perTopic);
  const minT = options.minTokens ?? 24;
  const maxT = options.maxTokens ?? 64;
  const docWords: number[][] = [];
  const docs = Array.from({ length: options.docs }, (_, i) => {
    const mine = [0, 1, 2].map(() => Math.floor(next() * topics));
    const tokens = minT + Math.floor(next() * (maxT - minT + 1));
    const used: number[] = [];
    const data = new Float32Array(tokens * dim);
    for (let j = 0; j < tokens; j++) {
      const w = wordOf(mine[Math.floor(next() * 3)]!);
      used.push(w);
      row(data, j * dim, w);
    }
    docWords.push(used);
    return { id: `d${i}`, embedding: { data, tokens, dim, ids: new Int32Array(tokens).fill(-1) } };
  });
  const queries = Array.from({ length: options.queries }, () => {
    const used = docWords[Math.floor(next() * docWords.length)]!;
    const tokens = 16;
    const data = new Float32Array(tokens * dim);
    // Most query words come from the document, some are other words of the same topics.
    for (let j = 0; j < tokens; j++) {
      const w = used[Math.floor(next() * used.length)]!;
      row(data, j * dim, next() < 0.75 ? w : wordOf(w % topics));
    }
    return { data, tokens, dim, ids: new Int32Array(tokens).fill(-1) };
  });
  return { dim, docs, queries };
}
