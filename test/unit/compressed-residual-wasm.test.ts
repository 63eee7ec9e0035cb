/**
 * The compressed index's residual stage on its default CPU kernels runs the WASM SIMD kernel
 * (src/score/residual-simd.ts) over the codec's fp16 centroids, not the plain-JS fallback: the
 * fallback (`residualMaxSim` of src/score/compressed.ts, as residual-simd.ts imports it) is
 * wrapped to count its calls, and every score the stage returns is checked against the plain-JS
 * reference (src/score/compressed-ref.ts) within 1e-5. It also checks that the halves are resident
 * once: the codec's `centroids` is a view of the binding's memory, the one the residual kernel
 * imports, and codeBytes counts no second copy.
 */
import { describe, expect, it, vi } from 'vitest';

const calls = vi.hoisted(() => ({ fallback: 0, simd: 0, checked: 0, worst: 0 }));

vi.mock('../../src/score/compressed.ts', async (importOriginal) => {
  const actual = await importOriginal<typeof import('../../src/score/compressed.ts')>();
  return {
    ...actual,
    residualMaxSim: (...args: Parameters<typeof actual.residualMaxSim>) => {
      calls.fallback++;
      return actual.residualMaxSim(...args);
    },
  };
});

vi.mock('../../src/score/residual-simd.ts', async (importOriginal) => {
  const actual = await importOriginal<typeof import('../../src/score/residual-simd.ts')>();
  const { residualMaxSimRef } = await import('../../src/score/compressed-ref.ts');
  return {
    ...actual,
    residualMaxSimSimd: (...args: Parameters<typeof actual.residualMaxSimSimd>) => {
      calls.simd++;
      actual.residualMaxSimSimd(...args);
      const [query, codec, , view, docs, out] = args;
      docs.forEach((slot, n) => {
        const ref = residualMaxSimRef(query, codec, view.codes, view.residuals, view.starts[slot]!, view.counts[slot]!);
        calls.worst = Math.max(calls.worst, Math.abs(out[n]! - ref));
        calls.checked++;
      });
    },
  };
});

const { CompressedIndex } = await import('../../src/compression.ts');
const { residentCentroids, kernelCopyBytes } = await import('../../src/score/centroid-simd.ts');
const { residualSimdAvailable } = await import('../../src/score/residual-simd.ts');
const { MemoryStore } = await import('../../src/store/memory.ts');
const { clusteredData } = await import('../support/clusters.ts');

describe('compressed index residual stage on WASM SIMD with fp16 centroids', () => {
  for (const nbits of [1, 2, 4] as const) {
    it(`runs the WASM kernel, not the JS fallback, and equals the reference within 1e-5 (${nbits} bits)`, async () => {
      const data = clusteredData({ docs: 300, queries: 4, seed: 30 + nbits });
      const store = new MemoryStore({ precision: 'fp32' });
      await store.put(data.docs.map((d) => ({ id: d.id, matrix: d.embedding })));
      const index = new CompressedIndex({ nbits, poolFactor: 1, rerank: false });
      await index.update(store, data.docs.map((d) => d.id));
      await index.settled();
      const codec = index.generation!.trained.codec;
      expect(codec.centroids).toBeInstanceOf(Uint16Array);
      Object.assign(calls, { fallback: 0, simd: 0, checked: 0, worst: 0 });
      for (const q of data.queries) {
        const hits = await index.search(q, 10, {}, () => Promise.reject(new Error('no rerank')));
        expect(hits).toHaveLength(10);
      }
      expect(calls.simd).toBeGreaterThanOrEqual(data.queries.length);
      expect(calls.fallback).toBe(0);
      expect(calls.checked).toBeGreaterThan(10 * data.queries.length);
      expect(calls.worst).toBeLessThan(1e-5);
      // One resident copy of the halves: the codec's array is the binding's table, in the memory the residual kernel imports.
      expect(residualSimdAvailable(codec)).toBe(true);
      const bd = residentCentroids(codec)!;
      expect(codec.centroids.buffer).toBe(bd.memory.buffer);
      expect(bd.view(0)).toBe(codec.centroids);
      expect(kernelCopyBytes(codec.dim, codec.centroids)).toBe(0);
    });
  }
});
