/**
 * How the compressed search uses another device's stages (src/score/compressed-stages.ts), in
 * Node without a GPU: stand-in "GPU" stages (the CPU kernels under another name, or failing ones)
 * show that the search flow runs on them with the same results, that a stage failure named
 * GpuScoringError answers that query and every later one on the CPU with the reason, that stages
 * whose copy no longer matches the codes answer one query on the CPU without giving up, that other
 * errors reach the caller, and that a compaction of the codes while a query awaits its probes never
 * mixes slot numberings. The real WGSL stages are tested in test/browser/compressed-engine-gpu.spec.ts.
 */
import { describe, expect, it } from 'vitest';
import { CompressedIndex, defaultKnobs } from '../../src/compression.ts';
import { cpuStages, wasmCompressedKernels, type CompressedStages, type QueryStages } from '../../src/score/compressed-stages.ts';
import { createScorer } from '../../src/score/scorer.ts';
import { MemoryStore } from '../../src/store/memory.ts';
import { matricesShard } from '../../src/store/shards.ts';
import type { TokenMatrix } from '../../src/types.ts';
import { clusteredData } from '../support/clusters.ts';

const DIM = 128;

class GpuScoringError extends Error {
  override name = 'GpuScoringError';
}

/** The CPU stages posing as the GPU's, with hooks to make them fail, lag or go stale. */
function fakeGpu(hooks: { fail?: () => boolean; stale?: () => boolean; error?: () => Error | undefined; beforeProbes?: () => Promise<void> } = {}) {
  const cpu = cpuStages(wasmCompressedKernels);
  const counts = { begins: 0, disposed: 0, drops: 0 };
  const stages: CompressedStages = {
    device: 'webgpu',
    async begin(query, codec, codes): Promise<QueryStages> {
      counts.begins++;
      const run = await cpu.begin(query, codec, codes);
      return {
        ...run,
        current: () => !hooks.stale?.(),
        async probes(nprobe) {
          await hooks.beforeProbes?.();
          return run.probes(nprobe);
        },
        async interactionTop(docs, view, keep) {
          const error = hooks.error?.();
          if (error) throw error;
          if (hooks.fail?.()) throw new GpuScoringError('the GPU device was lost (destroyed: test)');
          return run.interactionTop(docs, view, keep);
        },
        async residual(docs, view) {
          if (hooks.fail?.()) throw new GpuScoringError('the GPU device was lost (destroyed: test)');
          return run.residual(docs, view);
        },
      };
    },
    drop: () => void counts.drops++,
    dispose: () => void counts.disposed++,
  };
  return { stages, counts };
}

async function build(rerank: boolean) {
  const data = clusteredData({ docs: 300, queries: 6, seed: 9 });
  const store = new MemoryStore({ precision: 'fp32' });
  const make = async () => {
    const index = new CompressedIndex({ nbits: 2, poolFactor: 1, rerank });
    return index;
  };
  const gpuSide = await make();
  const cpuSide = await make();
  await store.put(data.docs.map((d) => ({ id: d.id, matrix: d.embedding })));
  for (const index of [gpuSide, cpuSide]) {
    await index.update(store, data.docs.map((d) => d.id));
    await index.settled();
  }
  const scorer = await createScorer({ scoring: 'cpu' });
  let run = 0;
  const exact = (q: TokenMatrix, k: number) => async (ids: string[]) => {
    const ms = await Promise.all(ids.map((id) => store.matrix(id)));
    const shard = matricesShard(`t${run++}`, DIM, ids.map((id, i) => ({ id, m: ms[i]! })));
    return scorer.rank(q, async function* () {
      yield shard;
    }, k);
  };
  const search = (index: CompressedIndex, q: TokenMatrix, k = 10, options = {}) => index.search(q, k, options, exact(q, k));
  return { data, store, gpuSide, cpuSide, search };
}

describe('the compressed search on another device\'s stages', () => {
  for (const rerank of [true, false]) {
    it(`runs its flow on them with the CPU's candidates and hits (rerank ${rerank})`, async () => {
      const { data, gpuSide, cpuSide, search } = await build(rerank);
      const { stages, counts } = fakeGpu();
      gpuSide.setGpu(stages);
      expect(gpuSide.stats()).toMatchObject({ scoringDevice: 'webgpu' });
      expect(gpuSide.stats().scoringFallbackReason).toBeUndefined();
      for (const q of data.queries) {
        for (const options of [{}, { candidates: 150 }, { allowed: (id: string) => id.endsWith('3') }]) {
          const got = await search(gpuSide, q, 10, options);
          const gpuTrace = gpuSide.lastQuery!;
          const want = await search(cpuSide, q, 10, options);
          const cpuTrace = cpuSide.lastQuery!;
          expect(gpuTrace.device).toBe('webgpu');
          expect(cpuTrace.device).toBe('cpu');
          expect(gpuTrace.candidates).toEqual(cpuTrace.candidates);
          expect(gpuTrace.survivors).toEqual(cpuTrace.survivors);
          expect(gpuTrace.residual).toBe(!rerank || gpuTrace.survivors.length > defaultKnobs(gpuSide.generation!.codes.tokens, 10).rerankDepth);
          expect(got).toEqual(want);
          if ('allowed' in options) for (const id of gpuTrace.candidates) expect(id.endsWith('3')).toBe(true);
        }
      }
      expect(counts.begins).toBe(3 * data.queries.length);
    });
  }

  it('a GpuScoringError answers that query and every later one on the CPU, with the reason', async () => {
    const { data, gpuSide, cpuSide, search } = await build(false);
    let fail = false;
    const { stages, counts } = fakeGpu({ fail: () => fail });
    gpuSide.setGpu(stages);
    const q = data.queries[0]!;
    await search(gpuSide, q, 10, { candidates: 150 });
    expect(gpuSide.lastQuery!.device).toBe('webgpu');
    fail = true;
    expect(await search(gpuSide, q, 10, { candidates: 150 })).toEqual(await search(cpuSide, q, 10, { candidates: 150 }));
    expect(gpuSide.lastQuery!.device).toBe('cpu');
    expect(gpuSide.stats()).toMatchObject({ scoringDevice: 'cpu', scoringFallbackReason: expect.stringMatching(/lost/) });
    expect(counts.disposed).toBe(1);
    fail = false;
    const begins = counts.begins;
    await search(gpuSide, data.queries[1]!);
    expect(counts.begins, 'no GPU query after the failure').toBe(begins);
  });

  it('stages that no longer match the codes answer one query on the CPU and stay in use', async () => {
    const { data, gpuSide, search } = await build(true);
    let stale = true;
    const { stages, counts } = fakeGpu({ stale: () => stale });
    gpuSide.setGpu(stages);
    await search(gpuSide, data.queries[0]!);
    expect(gpuSide.lastQuery!.device).toBe('cpu');
    expect(gpuSide.stats().scoringDevice).toBe('webgpu');
    stale = false;
    await search(gpuSide, data.queries[0]!);
    expect(gpuSide.lastQuery!.device).toBe('webgpu');
    expect(counts.begins).toBe(2);
  });

  it('other errors of the stages reach the caller', async () => {
    const { data, gpuSide, search } = await build(true);
    gpuSide.setGpu(fakeGpu({ error: () => new RangeError('candidate 9999 is not a document of this index') }).stages);
    await expect(search(gpuSide, data.queries[0]!, 10, { candidates: 10 })).rejects.toThrow(RangeError);
    expect(gpuSide.stats().scoringDevice).toBe('webgpu');
  });

  it('says why the stages are on the CPU when the engine gave none', async () => {
    const { gpuSide } = await build(true);
    gpuSide.setGpu(undefined, 'the only WebGPU adapter is a software one');
    expect(gpuSide.stats()).toMatchObject({ scoringDevice: 'cpu', scoringFallbackReason: 'the only WebGPU adapter is a software one' });
    gpuSide.setGpu(undefined);
    expect(gpuSide.stats().scoringFallbackReason).toBeUndefined();
  });

  it('a compaction while a query awaits its probes never mixes slot numberings', async () => {
    const { data, store, gpuSide, search } = await build(false);
    let release!: () => void;
    const gate = new Promise<void>((resolve) => (release = resolve));
    let gated = true;
    let waiting!: () => void;
    const reached = new Promise<void>((resolve) => (waiting = resolve));
    gpuSide.setGpu(
      fakeGpu({
        beforeProbes: () => {
          if (!gated) return Promise.resolve();
          waiting();
          return gate;
        },
      }).stages,
    );
    const q = data.queries[2]!;
    const pending = search(gpuSide, q, 10);
    await reached;
    // Most documents go while the query waits: dead tokens outnumber live ones, so slots are renumbered.
    const doomed = data.docs.slice(0, 240).map((d) => d.id);
    const before = gpuSide.generation!.codes.compactions;
    await store.delete(doomed);
    await gpuSide.update(store, [], doomed);
    expect(gpuSide.generation!.codes.compactions).toBeGreaterThan(before);
    gated = false;
    release();
    const hits = await pending;
    const trace = gpuSide.lastQuery!;
    const gone = new Set(doomed);
    for (const id of trace.candidates) expect(gone.has(id), `${id} was deleted`).toBe(false);
    // The same candidates and scores as a query that began after the compaction.
    expect(hits).toEqual(await search(gpuSide, q, 10));
    expect(trace.candidates).toEqual(gpuSide.lastQuery!.candidates);
  });
});
