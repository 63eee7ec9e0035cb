/** Random token matrices and shards for scorer tests and benchmarks (deterministic per seed). */
import { allocatePacked, encodeRows, type VectorPrecision } from '../../src/store/precision.ts';
import type { ShardView } from '../../src/store/types.ts';
import type { TokenMatrix } from '../../src/types.ts';

/** `tokens` unit-length rows of `dim` values drawn from `next` (uniform in [0, 1)). */
export function randomMatrix(tokens: number, dim: number, next: () => number): TokenMatrix {
  const data = new Float32Array(tokens * dim);
  for (let i = 0; i < tokens; i++) {
    let norm = 0;
    for (let k = 0; k < dim; k++) {
      const v = next() * 2 - 1;
      data[i * dim + k] = v;
      norm += v * v;
    }
    const inv = norm > 0 ? 1 / Math.sqrt(norm) : 0;
    for (let k = 0; k < dim; k++) data[i * dim + k]! *= inv;
  }
  return { data, tokens, dim, ids: new Int32Array(tokens).fill(-1) };
}

/** A shard holding `docs` in order (null = a deleted slot, which keeps no rows), ids `${prefix}${i}`. */
export function shardOf(docs: readonly (TokenMatrix | null)[], dim: number, precision: VectorPrecision = 'fp32', key = 'test', prefix = 'd'): ShardView {
  const offsets = new Uint32Array(docs.length + 1);
  docs.forEach((d, i) => (offsets[i + 1] = offsets[i]! + (d?.tokens ?? 0)));
  const packed = allocatePacked(precision, offsets[docs.length]!, dim);
  docs.forEach((d, i) => d && encodeRows(d.data, d.tokens, dim, packed, offsets[i]!));
  return { key, dim, offsets, ...packed, docIds: docs.map((d, i) => (d ? `${prefix}${i}` : null)) };
}

/** The benchmark corpus: `count` documents of 64-256 unit rows of `dim` values, and a 32-token query. */
export function benchCorpus(count: number, dim: number, next: () => number): { docs: TokenMatrix[]; query: TokenMatrix } {
  const docs = Array.from({ length: count }, () => randomMatrix(64 + Math.floor(next() * 193), dim, next));
  return { docs, query: randomMatrix(32, dim, next) };
}
