/**
 * Word-clustered unit vectors for the browser specs of the compressed index: a vocabulary of 512
 * word vectors in 16 topics of 32 words, documents of 24-63 tokens drawing on one topic's words
 * (each token its word's vector plus a little context noise), and 16-token queries drawn from one
 * document's words. (test/support/clusters.ts is the Node tests' richer generator.)
 *
 * {@link wordClustered} is self-contained (no imports, no outer names), so a spec runs it in the
 * page from its source: {@link WORD_CLUSTERED_SOURCE} handed to `new Function` there, or the init
 * script {@link WORD_CLUSTERED_INIT}.
 */
import type { TokenMatrix } from '../../src/types.ts';

export interface WordClusteredOptions {
  /** Documents, ids `<prefix>0..`. */
  docs: number;
  /** Queries (default 8). */
  queries?: number;
  /** Seed of the documents and queries (and of the vocabulary, without `vocabularySeed`). */
  seed: number;
  /**
   * The vocabulary's own seed, so that calls with different seeds share topics; without it the
   * vocabulary is drawn first from `seed`'s sequence.
   */
  vocabularySeed?: number;
  /** Id prefix (default 'd'). */
  prefix?: string;
  /** Give each document a `{ topic }` metadata field (default false). */
  topicMetadata?: boolean;
}

export interface WordClustered {
  docs: { id: string; embedding: TokenMatrix; metadata?: { topic: number } }[];
  queries: TokenMatrix[];
}

/** See the module comment. Deterministic in its options. */
export function wordClustered(options: WordClusteredOptions): WordClustered {
  const mulberry = (seed0: number) => {
    let seed = seed0;
    return () => {
      seed = (seed + 0x6d2b79f5) | 0;
      let t = seed;
      t = Math.imul(t ^ (t >>> 15), t | 1);
      t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
      return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
    };
  };
  const dim = 128;
  const rand = mulberry(options.seed);
  const vocabulary = options.vocabularySeed === undefined ? rand : mulberry(options.vocabularySeed);
  const gauss = (next: () => number) => Math.sqrt(-2 * Math.log(1 - next())) * Math.cos(2 * Math.PI * next());
  const unit = (v: Float32Array, o: number) => {
    let n = 0;
    for (let d = 0; d < dim; d++) n += v[o + d]! * v[o + d]!;
    for (let d = 0; d < dim; d++) v[o + d]! /= Math.sqrt(n);
  };
  const words = new Float32Array(512 * dim);
  for (let i = 0; i < words.length; i++) words[i] = gauss(vocabulary);
  for (let w = 0; w < 512; w++) unit(words, w * dim);
  const token = (out: Float32Array, o: number, w: number) => {
    for (let d = 0; d < dim; d++) out[o + d] = words[w * dim + d]! + (0.3 / Math.sqrt(dim)) * gauss(rand);
    unit(out, o);
  };
  const prefix = options.prefix ?? 'd';
  const used: number[][] = [];
  const docs = Array.from({ length: options.docs }, (_, i) => {
    const topic = Math.floor(rand() * 16);
    const tokens = 24 + Math.floor(rand() * 40);
    const data = new Float32Array(tokens * dim);
    const mine: number[] = [];
    for (let j = 0; j < tokens; j++) {
      const w = topic * 32 + Math.floor(rand() * 32);
      mine.push(w);
      token(data, j * dim, w);
    }
    used.push(mine);
    const embedding = { data, tokens, dim, ids: new Int32Array(tokens).fill(-1) };
    return options.topicMetadata ? { id: `${prefix}${i}`, embedding, metadata: { topic } } : { id: `${prefix}${i}`, embedding };
  });
  const queries = Array.from({ length: options.queries ?? 8 }, () => {
    const mine = used[Math.floor(rand() * used.length)]!;
    const data = new Float32Array(16 * dim);
    for (let j = 0; j < 16; j++) token(data, j * dim, mine[Math.floor(rand() * mine.length)]!);
    return { data, tokens: 16, dim, ids: new Int32Array(16).fill(-1) };
  });
  return { docs, queries };
}

/**
 * {@link wordClustered} as a JavaScript expression for the page (`new Function(\`return ${WORD_CLUSTERED_SOURCE}\`)()`):
 * its source, with a no-op `__name` for a transform that keeps function names by wrapping them (esbuild's).
 */
export const WORD_CLUSTERED_SOURCE = `(() => { const __name = (fn) => fn; return (${wordClustered.toString()}); })()`;

/** An init script (`page.addInitScript`) that defines `globalThis.wordClustered`. */
export const WORD_CLUSTERED_INIT = `globalThis.wordClustered = ${WORD_CLUSTERED_SOURCE};`;
