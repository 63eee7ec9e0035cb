/** The fast CPU kernels (WASM SIMD, relaxed SIMD where present, plain JS) against the oracle. */
import { describe, expect, it } from 'vitest';
import { maxSimShard } from '../../src/score/cpu.ts';
import { loadMaxSimKernel, wasmSimdSupported, type KernelOptions } from '../../src/score/simd.ts';
import { decodeRows, VECTOR_PRECISIONS } from '../../src/store/precision.ts';
import type { TokenMatrix } from '../../src/types.ts';
import { mulberry32 as rng } from '../fixtures/make-models.ts';
import { randomMatrix, shardOf } from '../support/shards.ts';

const variants: [string, KernelOptions][] = [
  ['wasm-simd', { relaxed: false }],
  ['best available', {}],
  ['plain js', { wasm: false }],
];

describe('CPU MaxSim kernels', () => {
  it('finds WebAssembly SIMD128 in this Node (the fast path is the one under test)', () => {
    expect(wasmSimdSupported(false)).toBe(true);
  });

  describe.each(variants)('%s', (_, options) => {
    it.each(VECTOR_PRECISIONS)('matches the oracle on %s shards, with empty, single-token and deleted documents', async (precision) => {
      const next = rng(precision.length * 31);
      const dim = 128;
      const kernel = await loadMaxSimKernel(dim, options);
      for (const queryTokens of [32, 1, 5]) {
        const q = randomMatrix(queryTokens, dim, next);
        const docs: (TokenMatrix | null)[] = Array.from({ length: 60 }, (_, i) =>
          i % 11 === 3 ? null : randomMatrix(i % 13 === 0 ? 0 : i % 7 === 0 ? 1 : 1 + Math.floor(next() * 90), dim, next),
        );
        const shard = shardOf(docs, dim, precision);
        const expected = maxSimShard(q, shard);
        const got = kernel.scoreShard(q, shard);
        expect(got.length).toBe(docs.length);
        docs.forEach((d, i) => {
          if (d === null) expect(got[i]).toBe(-Infinity);
          else if (d.tokens === 0) expect(got[i]).toBe(0);
          else expect(Math.abs(got[i]! - expected[i]!)).toBeLessThan(1e-4);
        });
      }
    });

    it.each([1, 3, 5, 7, 130])('handles dim %i (not a multiple of 4 pads with zeros)', async (dim) => {
      const next = rng(dim);
      const kernel = await loadMaxSimKernel(dim, options);
      const q = randomMatrix(6, dim, next);
      const docs = [randomMatrix(3, dim, next), randomMatrix(0, dim, next), randomMatrix(1, dim, next), randomMatrix(8, dim, next)];
      for (const precision of VECTOR_PRECISIONS) {
        const shard = shardOf(docs, dim, precision);
        const expected = maxSimShard(q, shard);
        const got = kernel.scoreShard(q, shard);
        docs.forEach((_, i) => expect(Math.abs(got[i]! - expected[i]!)).toBeLessThan(1e-4));
      }
    });

    it('streams a shard larger than one chunk and a document larger than the chunk budget', async () => {
      const next = rng(5);
      const dim = 128;
      const kernel = await loadMaxSimKernel(dim, options);
      const q = randomMatrix(32, dim, next);
      // 4 MiB chunks hold 8192 rows of 128 floats: 3000 documents of 1-8 rows need several, and one of 9000 rows needs its own.
      const docs = Array.from({ length: 3000 }, (_, i) => randomMatrix(i === 1234 ? 9000 : 1 + (i % 8), dim, next));
      const shard = shardOf(docs, dim);
      const expected = maxSimShard(q, shard);
      const got = kernel.scoreShard(q, shard);
      let worst = 0;
      for (let i = 0; i < docs.length; i++) worst = Math.max(worst, Math.abs(got[i]! - expected[i]!));
      expect(worst).toBeLessThan(1e-4);
    });

    it('gives identical documents identical scores (ties stay ties)', async () => {
      const next = rng(9);
      const dim = 64;
      const kernel = await loadMaxSimKernel(dim, options);
      const d = randomMatrix(17, dim, next);
      const got = kernel.scoreShard(randomMatrix(9, dim, next), shardOf([d, randomMatrix(4, dim, next), d], dim));
      expect(got[0]).toBe(got[2]);
    });
  });
});

describe('WASM decoding of stored rows', () => {
  it.each(['fp16', 'int8'] as const)('decodes %s rows bit-exactly as precision.ts does (subnormal halves, large and negative values)', async (precision) => {
    const dim = 32;
    const values = new Float32Array(dim);
    const specials = [0, -0, 1e-7, -3e-6, 6.1e-5, 0.33, -0.5, 1, 2.5, 1000, -60000, 65000];
    for (let k = 0; k < dim; k++) values[k] = specials[k % specials.length]! * (k < specials.length ? 1 : 0.37);
    const doc: TokenMatrix = { data: values, tokens: 1, dim, ids: new Int32Array(1) };
    const shard = shardOf([doc], dim, precision);
    const decoded = decodeRows(shard, 0, 1, dim);
    for (const options of [{ relaxed: false }, {}]) {
      const kernel = await loadMaxSimKernel(dim, options);
      expect(kernel.name).not.toBe('js');
      for (let k = 0; k < dim; k++) {
        // A one-hot query row picks out stored element k: its score is that element exactly.
        const q = new Float32Array(dim);
        q[k] = 1;
        const score = kernel.scoreShard({ data: q, tokens: 1, dim, ids: new Int32Array(1) }, shard)[0]!;
        expect(score, `element ${k}`).toBe(decoded[k]! + 0);
      }
    }
  });
});
