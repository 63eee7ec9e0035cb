/**
 * The compressed index's WGSL stages (src/score/compressed-gpu.ts, compressed.wgsl) against the
 * plain-JS references (src/score/compressed-ref.ts) on SwiftShader, in Debian Chromium:
 * - for nbits 1, 2, 4 at dims 128 and 24: S = query x centroids (C not a multiple of the
 *   workgroup size, a query longer than one pass of rows), the nprobe best centroids per query
 *   row with exact ties ordered by index, centroid interaction and residual MaxSim of every
 *   document (empty ones included, candidates shuffled and repeated) and the top-k they give,
 *   over an index appended in batches into buffers that must grow, uploading only what is new;
 * - many candidates over many rows of the dispatch grid, C = 1000, and more than 65,536
 *   centroids (u32 codes);
 * - argument errors (RangeError) and a destroyed index or lost device (GpuScoringError).
 * Everything runs in one page on one device, inside a validation error scope, so each pipeline is
 * compiled once for the file. In CI a missing WebGPU adapter fails these tests; elsewhere they
 * skip with the reason.
 */
import { expect, test, type Page } from '@playwright/test';
import { resolve } from 'node:path';
import { harnessUrl } from '../support/browser.ts';
import { REPO_ROOT } from '../support/shared.ts';

const IN_CI = !!process.env['CI'];
const BUNDLE_DIR = '.cache/compressed-gpu-test';
const BUNDLE_URL = `/${BUNDLE_DIR}/compressed-gpu-entry.js`;

test.describe.configure({ mode: 'serial' });

let page: Page;
let skipReason: string | null = null;

test.beforeAll(async ({ browser }) => {
  test.setTimeout(180_000);
  const { build } = await import('vite');
  await build({
    configFile: false,
    root: REPO_ROOT,
    logLevel: 'warn',
    base: './',
    build: {
      outDir: resolve(REPO_ROOT, BUNDLE_DIR),
      emptyOutDir: true,
      target: 'es2022',
      minify: false,
      lib: { entry: resolve(REPO_ROOT, 'test/browser/compressed-gpu-entry.ts'), formats: ['es'], fileName: 'compressed-gpu-entry' },
    },
  });
  page = await browser.newPage();
  page.on('pageerror', (err) => console.error(`[page error] ${err.message}`));
  page.on('console', (msg) => msg.type() === 'error' && console.log(`[page console] ${msg.text()}`));
  await page.goto(harnessUrl());
  const ok = await page.evaluate(async () => Boolean(await navigator.gpu?.requestAdapter()));
  if (!ok) {
    expect(IN_CI, 'no WebGPU adapter in CI: the compressed GPU tests must run there').toBe(false);
    skipReason = 'no WebGPU adapter in this browser';
  }
});

test.afterAll(async () => {
  await page?.close();
});

test.beforeEach(() => {
  test.skip(skipReason !== null, skipReason ?? '');
});

interface StageConfig {
  dim: number;
  nbits: 1 | 2 | 4;
  centroids: number;
  docs: number;
  maxTokens: number;
  queryTokens: number;
  /** Times every document appears among the candidates (shuffled). */
  repeats: number;
  batches: number;
  nprobe: number[];
  seed: number;
  initialBufferBytes: number;
  /** Workgroups per row of the candidate dispatch grid (default: WebGPU's 65,535). */
  maxGridX?: number;
}

interface StageResult {
  validationError: string | null;
  codeBits: number;
  worstS: number;
  topMismatches: string[];
  /** Whether some probe list held an exact tie (duplicated centroids), and its order. */
  tieRows: number[][];
  worstInteraction: number;
  worstResidual: number;
  /** Largest |GPU - reference| of centroid interaction when the reference is given the GPU's own S. */
  worstInteractionOwnS: number;
  emptyInteraction: number[];
  emptyResidual: number[];
  topInteraction: { gpu: number[]; ref: number[] };
  topResidual: { gpu: number[]; ref: number[] };
  candidates: number;
  residency: { documents: number; tokens: number; residentBytes: number; uploadedBytes: number; readBacks: number };
  sentBytes: number;
  appends: number;
  firstNumbers: number[];
}

/** Builds a random index for `config`, scores every stage on the GPU and by the references, and compares. */
function runStages(config: StageConfig): Promise<StageResult> {
  return page.evaluate(
    async ({ url, config }) => {
      const lib = await import(/* @vite-ignore */ url);
      const g = globalThis as unknown as { compressedGpuDevice?: Promise<GPUDevice> };
      g.compressedGpuDevice ??= lib.requestScoringDevice();
      const device = await g.compressedGpuDevice!;
      device.pushErrorScope('validation');
      const { dim, nbits, centroids: C, docs: D } = config;
      const next = lib.mulberry32(config.seed);
      const floats: Float32Array = lib.randomMatrix(C, dim, next).data;
      // Exact ties: centroids 40 % C and C - 1 are copies of centroid 3.
      for (const j of [40 % C, C - 1]) if (j !== 3) floats.copyWithin(j * dim, 3 * dim, 4 * dim);
      // The codec holds them as IEEE halves (the WGSL reads them packed, two per word).
      const centroids: Uint16Array = lib.halfCentroids(floats);
      const buckets = 1 << nbits;
      const weights = Float32Array.from({ length: buckets }, (_, b) => (b - (buckets - 1) / 2) * 0.08 + (next() - 0.5) * 0.01);
      const codec = { dim, nbits, centroids, cutoffs: new Float32Array(buckets - 1), weights };
      const bytes: number = lib.residualBytes(dim, nbits);
      const counts = Array.from({ length: D }, (_, i) => (i % 11 === 0 ? 0 : i % 7 === 1 ? 1 : 1 + Math.floor(next() * config.maxTokens)));
      const starts: number[] = [];
      let tokens = 0;
      for (const n of counts) {
        starts.push(tokens);
        tokens += n;
      }
      const codes = Uint32Array.from({ length: tokens }, () => Math.floor(next() * C));
      // Every byte pattern is a valid residual: random bytes exercise every bucket of every position.
      const residuals = Uint8Array.from({ length: tokens * bytes }, () => Math.floor(next() * 256));

      const index = await lib.CompressedGpuIndex.create(device, codec, { initialBufferBytes: config.initialBufferBytes, ...(config.maxGridX ? { maxGridX: config.maxGridX } : {}) });
      const uploadedAtCreate: number = index.residency().uploadedBytes;
      const firstNumbers: number[] = [];
      let sentBytes = 0;
      for (let b = 0; b < config.batches; b++) {
        const from = Math.floor((b * D) / config.batches);
        const to = Math.floor(((b + 1) * D) / config.batches);
        const t0 = starts[from] ?? tokens;
        const t1 = to < D ? starts[to]! : tokens;
        firstNumbers.push(
          await index.append({ codes: codes.subarray(t0, t1), residuals: residuals.subarray(t0 * bytes, t1 * bytes), tokenCounts: counts.slice(from, to) }),
        );
        sentBytes += (t1 - t0) * (index.codeBits / 8 + bytes) + (to - from) * 8;
      }

      const query = lib.randomMatrix(config.queryTokens, dim, next);
      // Query row 0 is centroid 3 itself: its copies tie at the top of that row's probes.
      query.data.set(lib.centroidFloats(codec).subarray(3 * dim, 4 * dim), 0);
      const s = await index.centroidScores(query);
      const S: Float32Array = await index.readCentroidScores(s);
      const Sref: Float32Array = lib.centroidScoresRef(query, codec);
      let worstS = 0;
      for (let i = 0; i < S.length; i++) worstS = Math.max(worstS, Math.abs(S[i]! - Sref[i]!));
      if (S.length !== Sref.length) worstS = Infinity;

      const Q = config.queryTokens;
      const topMismatches: string[] = [];
      const tieRows: number[][] = [];
      for (const nprobe of config.nprobe) {
        const n = Math.min(nprobe, C);
        const tops: Uint32Array = await index.topCentroids(s, nprobe);
        if (tops.length !== Q * n) topMismatches.push(`nprobe ${nprobe}: ${tops.length} indexes for ${Q} rows`);
        for (let i = 0; i < Q; i++) {
          const row = S.subarray(i * C, (i + 1) * C);
          const order = Array.from({ length: C }, (_, c) => c).sort((a, b) => row[b]! - row[a]! || a - b);
          const want = order.slice(0, n);
          const got = Array.from(tops.subarray(i * n, (i + 1) * n));
          if (want.join() !== got.join()) topMismatches.push(`nprobe ${nprobe} row ${i}: want ${want.join(' ')} got ${got.join(' ')}`);
          if (i === 0 && n >= 3) tieRows.push(got.slice(0, 3));
        }
      }

      // Every document, `repeats` times, shuffled.
      const cands = Array.from({ length: D * config.repeats }, (_, i) => i % D);
      for (let i = cands.length - 1; i > 0; i--) {
        const j = Math.floor(next() * (i + 1));
        [cands[i], cands[j]] = [cands[j]!, cands[i]!];
      }
      const inter: Float32Array = await index.centroidInteraction(s, cands);
      const resid: Float32Array = await index.residualScores(s, cands);
      const perDoc = (f: (d: number) => number) => Array.from({ length: D }, (_, d) => f(d));
      const interRef = perDoc((d) => lib.centroidInteractionRef(Sref, Q, C, codes, starts[d]!, counts[d]!));
      const interOwn = perDoc((d) => lib.centroidInteractionRef(S, Q, C, codes, starts[d]!, counts[d]!));
      const residRef = perDoc((d) => lib.residualMaxSimRef(query, codec, codes, residuals, starts[d]!, counts[d]!));
      let worstInteraction = inter.length === cands.length ? 0 : Infinity;
      let worstResidual = resid.length === cands.length ? 0 : Infinity;
      let worstInteractionOwnS = 0;
      const gpuInter = new Array<number>(D);
      const gpuResid = new Array<number>(D);
      cands.forEach((d, i) => {
        worstInteraction = Math.max(worstInteraction, Math.abs(inter[i]! - interRef[d]!));
        worstInteractionOwnS = Math.max(worstInteractionOwnS, Math.abs(inter[i]! - interOwn[d]!));
        worstResidual = Math.max(worstResidual, Math.abs(resid[i]! - residRef[d]!));
        gpuInter[d] = inter[i]!;
        gpuResid[d] = resid[i]!;
      });
      const empty = counts.flatMap((n, d) => (n === 0 ? [d] : []));
      const topOf = (scores: number[]) =>
        scores
          .map((score, d) => ({ score, d }))
          .sort((a, b) => b.score - a.score || a.d - b.d)
          .slice(0, 20)
          .map((h) => h.d);
      const residency = index.residency();
      s.release();
      index.destroy();
      const error = await device.popErrorScope();
      return {
        validationError: error ? error.message : null,
        codeBits: index.codeBits,
        worstS,
        topMismatches: topMismatches.slice(0, 5),
        tieRows,
        worstInteraction,
        worstResidual,
        worstInteractionOwnS,
        emptyInteraction: empty.map((d) => gpuInter[d]!),
        emptyResidual: empty.map((d) => gpuResid[d]!),
        topInteraction: { gpu: topOf(gpuInter), ref: topOf(interRef) },
        topResidual: { gpu: topOf(gpuResid), ref: topOf(residRef) },
        candidates: cands.length,
        residency: { ...residency, uploadedBytes: residency.uploadedBytes - uploadedAtCreate },
        sentBytes,
        appends: config.batches,
        firstNumbers,
      };
    },
    { url: BUNDLE_URL, config },
  );
}

/** The checks every stage run must pass. */
function expectStagesMatch(run: StageResult, config: StageConfig): void {
  expect(run.validationError).toBeNull();
  expect(run.worstS, 'S against centroidScoresRef').toBeLessThan(1e-5);
  expect(run.topMismatches, 'top centroids against a sort of S').toEqual([]);
  // Row 0 is centroid 3, copied at 40 % C and C - 1: the exact ties come first, by index.
  for (const row of run.tieRows) expect(row).toEqual([3, 40 % config.centroids, config.centroids - 1].sort((a, b) => a - b));
  expect(run.worstInteraction, 'centroid interaction against centroidInteractionRef').toBeLessThan(1e-4);
  expect(run.worstInteractionOwnS, 'centroid interaction against the reference on the GPU S').toBeLessThan(1e-5);
  expect(run.worstResidual, 'residual MaxSim against residualMaxSimRef').toBeLessThan(1e-4);
  expect(run.emptyInteraction.length).toBeGreaterThan(0);
  expect(new Set([...run.emptyInteraction, ...run.emptyResidual])).toEqual(new Set([0]));
  expect(run.topInteraction.gpu, 'top-20 by centroid interaction').toEqual(run.topInteraction.ref);
  expect(run.topResidual.gpu, 'top-20 by residual MaxSim').toEqual(run.topResidual.ref);
  // Document numbers run on across appends; only the new bytes (plus word alignment) are sent.
  expect(run.firstNumbers).toEqual(Array.from({ length: config.batches }, (_, b) => Math.floor((b * config.docs) / config.batches)));
  expect(run.residency.documents).toBe(config.docs);
  expect(run.residency.uploadedBytes).toBeGreaterThanOrEqual(run.sentBytes);
  expect(run.residency.uploadedBytes).toBeLessThanOrEqual(run.sentBytes + 3 * 6 * run.appends);
}

for (const dim of [128, 24]) {
  for (const nbits of [1, 2, 4] as const) {
    test(`dim ${dim}, nbits ${nbits}: every stage matches the reference over an index appended in batches`, async () => {
      test.setTimeout(180_000);
      const config: StageConfig = {
        dim,
        nbits,
        // Not multiples of the 64-thread workgroup.
        centroids: dim === 128 ? 300 : 77,
        docs: 120,
        maxTokens: 40,
        // Longer than the 32 query rows one pass holds.
        queryTokens: 37,
        repeats: 2,
        batches: 3,
        nprobe: [1, 4, 16],
        seed: dim * 10 + nbits,
        // Tiny first buffers: the appends must grow them on the GPU.
        initialBufferBytes: 256,
      };
      const run = await runStages(config);
      expectStagesMatch(run, config);
      expect(run.codeBits).toBe(16);
    });
  }
}

test('many candidates over many rows of the dispatch grid, C = 1000 and the widest probe', async () => {
  test.setTimeout(300_000);
  // 3000 candidates in rows of 251 workgroups: 12 rows, the last one partly empty (SwiftShader is
  // too slow for the 65,536 candidates that need a second row by default).
  const config: StageConfig = { dim: 24, nbits: 2, centroids: 1000, docs: 1000, maxTokens: 6, queryTokens: 8, repeats: 3, batches: 2, nprobe: [64], seed: 7, initialBufferBytes: 65536, maxGridX: 251 };
  const run = await runStages(config);
  expect(run.candidates).toBe(3000);
  expectStagesMatch(run, config);
});

test('more than 65,536 centroids: codes stored as u32', async () => {
  test.setTimeout(300_000);
  const config: StageConfig = { dim: 8, nbits: 4, centroids: 70_000, docs: 60, maxTokens: 30, queryTokens: 3, repeats: 1, batches: 2, nprobe: [8], seed: 11, initialBufferBytes: 256 };
  const run = await runStages(config);
  expect(run.codeBits).toBe(32);
  expectStagesMatch(run, config);
});

test('top-k of either stage on the GPU equals sorting every score: ties by position, long lists, overflow', async () => {
  test.setTimeout(180_000);
  const out = await page.evaluate(
    async ({ url }) => {
      const lib = await import(/* @vite-ignore */ url);
      const g = globalThis as unknown as { compressedGpuDevice?: Promise<GPUDevice> };
      g.compressedGpuDevice ??= lib.requestScoringDevice();
      const device = await g.compressedGpuDevice!;
      device.pushErrorScope('validation');
      const next = lib.mulberry32(21);
      const dim = 24;
      const C = 130;
      const codec = { dim, nbits: 2, centroids: lib.halfCentroids(lib.randomMatrix(C, dim, next).data), cutoffs: new Float32Array(3), weights: Float32Array.from([-0.1, -0.03, 0.03, 0.1]) };
      const D = 400;
      const counts = Array.from({ length: D }, (_, i) => (i % 13 === 0 ? 0 : 1 + Math.floor(next() * 12)));
      const tokens = counts.reduce((a, b) => a + b, 0);
      const docs = { codes: Uint32Array.from({ length: tokens }, () => Math.floor(next() * C)), residuals: Uint8Array.from({ length: tokens * 6 }, () => Math.floor(next() * 256)), tokenCounts: counts };
      // Candidate lists always go through the GPU top-k here; the second index's list overflows.
      const index = await lib.CompressedGpuIndex.create(device, codec, { fullReadbackCandidates: 0 });
      const tiny = await lib.CompressedGpuIndex.create(device, codec, { fullReadbackCandidates: 0, candidateCapacity: 8 });
      await index.append(docs);
      await tiny.append(docs);
      const query = lib.randomMatrix(9, dim, next);
      const s = await index.centroidScores(query);
      const st = await tiny.centroidScores(query);
      const mismatches: string[] = [];
      const paths: string[] = [];
      const sorted = (scores: Float32Array, k: number) =>
        Array.from(scores, (score, position) => ({ score, position }))
          .sort((a, b) => b.score - a.score || a.position - b.position)
          .slice(0, k);
      const check = async (label: string, idx: typeof index, sc: typeof s, stage: 'interaction' | 'residual', cands: number[], k: number) => {
        const all: Float32Array = stage === 'interaction' ? await idx.centroidInteraction(sc, cands) : await idx.residualScores(sc, cands);
        const want = sorted(all, k);
        const before = idx.residency();
        const got = await idx.rankCandidates(stage, sc, cands, k);
        const after = idx.residency();
        paths.push(`${label}: ${after.candidateReads - before.candidateReads} list, ${after.readBacks - before.readBacks} read-backs`);
        const gotList = Array.from(got.positions as Uint32Array, (position, i) => ({ score: (got.scores as Float32Array)[i]!, position }));
        if (JSON.stringify(gotList) !== JSON.stringify(want)) mismatches.push(`${label}: want ${JSON.stringify(want.slice(0, 5))}... got ${JSON.stringify(gotList.slice(0, 5))}...`);
      };
      const every = Array.from({ length: D * 3 }, (_, i) => i % D);
      for (const stage of ['interaction', 'residual'] as const) {
        for (const k of [1, 10, 40]) await check(`${stage} k=${k}`, index, s, stage, every, k);
        // The best document 200 times among the rest: 200 tie at T, past the first read-back's 64.
        const scores: Float32Array = stage === 'interaction' ? await index.centroidInteraction(s, every.slice(0, D)) : await index.residualScores(s, every.slice(0, D));
        const top = sorted(scores, 1)[0]!.position;
        const crowded = Array.from({ length: 1200 }, (_, i) => (i % 6 === 0 ? top : i % D));
        await check(`${stage} ties`, index, s, stage, crowded, 10);
        await check(`${stage} overflow`, tiny, st, stage, every, 10);
      }
      await check('k past the candidates', index, s, 'residual', [5, 0, 7], 10);
      s.release();
      st.release();
      index.destroy();
      tiny.destroy();
      const error = await device.popErrorScope();
      return { mismatches, paths, validationError: error ? error.message : null };
    },
    { url: BUNDLE_URL },
  );
  expect(out.validationError).toBeNull();
  expect(out.mismatches).toEqual([]);
  // Which way each call went: a list in one read-back, a long list in two, an overflow reading every score.
  expect(out.paths).toEqual([
    'interaction k=1: 1 list, 1 read-backs',
    'interaction k=10: 1 list, 1 read-backs',
    'interaction k=40: 1 list, 1 read-backs',
    'interaction ties: 1 list, 2 read-backs',
    'interaction overflow: 0 list, 2 read-backs',
    'residual k=1: 1 list, 1 read-backs',
    'residual k=10: 1 list, 1 read-backs',
    'residual k=40: 1 list, 1 read-backs',
    'residual ties: 1 list, 2 read-backs',
    'residual overflow: 0 list, 2 read-backs',
    'k past the candidates: 0 list, 1 read-backs',
  ]);
});

test('argument errors are RangeErrors; a destroyed index or a lost device rejects with GpuScoringError', async () => {
  test.setTimeout(180_000);
  const out = await page.evaluate(
    async ({ url }) => {
      const lib = await import(/* @vite-ignore */ url);
      const g = globalThis as unknown as { compressedGpuDevice?: Promise<GPUDevice> };
      g.compressedGpuDevice ??= lib.requestScoringDevice();
      const device = await g.compressedGpuDevice!;
      const next = lib.mulberry32(3);
      const codec = { dim: 24, nbits: 2, centroids: lib.halfCentroids(lib.randomMatrix(10, 24, next).data), cutoffs: new Float32Array(3), weights: Float32Array.from([-0.1, -0.03, 0.03, 0.1]) };
      const what = async (f: () => unknown): Promise<string> => {
        try {
          await f();
          return 'no error';
        } catch (err) {
          const e = err as Error;
          return `${e instanceof lib.GpuScoringError ? 'GpuScoringError' : e.name}: ${e.message}`;
        }
      };
      const index = await lib.CompressedGpuIndex.create(device, codec);
      await index.append({ codes: [1, 2, 3], residuals: new Uint8Array(18), tokenCounts: [2, 0, 1] });
      const query = lib.randomMatrix(0, 24, next);
      const emptyQuery = await index.centroidScores(query);
      const emptyScores = Array.from(await index.residualScores(emptyQuery, [0, 1, 2]));
      const emptyTops = (await index.topCentroids(emptyQuery, 3)).length;
      const s = await index.centroidScores(lib.randomMatrix(4, 24, next));
      const errors = {
        badCandidate: await what(() => index.centroidInteraction(s, [3])),
        badCode: await what(() => index.append({ codes: [10], residuals: new Uint8Array(6), tokenCounts: [1] })),
        badResiduals: await what(() => index.append({ codes: [1], residuals: new Uint8Array(5), tokenCounts: [1] })),
        badCounts: await what(() => index.append({ codes: [1, 2], residuals: new Uint8Array(12), tokenCounts: [1] })),
        badProbe: await what(() => index.topCentroids(s, lib.MAX_GPU_PROBE + 1)),
        badDim: await what(() => index.centroidScores(lib.randomMatrix(2, 16, next))),
        badCodec: await what(() => lib.CompressedGpuIndex.create(device, { ...codec, weights: new Float32Array(3) })),
        documentsAfterBadAppends: index.documents,
        stillScores: Array.from(await index.residualScores(s, [1])),
      };
      // Two appends in flight at once: the second's tokens follow the first's.
      const [n1, n2] = await Promise.all([
        index.append({ codes: [4, 5], residuals: new Uint8Array(12), tokenCounts: [2] }),
        index.append({ codes: [7], residuals: new Uint8Array(6), tokenCounts: [1] }),
      ]);
      const S = await index.readCentroidScores(s);
      const allCodes = [1, 2, 3, 4, 5, 7];
      const got = await index.centroidInteraction(s, [3, 4]);
      const want = [lib.centroidInteractionRef(S, 4, 10, allCodes, 3, 2), lib.centroidInteractionRef(S, 4, 10, allCodes, 5, 1)];
      const concurrent = { numbers: [n1, n2], tokens: index.tokens, worst: Math.max(...want.map((w: number, i: number) => Math.abs(w - got[i]!))) };
      s.release();
      const released = await what(() => index.residualScores(s, [0]));
      index.destroy();
      const destroyed = await what(() => index.centroidScores(lib.randomMatrix(1, 24, next)));

      // A device of its own, lost under a live index.
      const own: GPUDevice = await lib.requestScoringDevice();
      const victim = await lib.CompressedGpuIndex.create(own, codec);
      await victim.append({ codes: [1], residuals: new Uint8Array(6), tokenCounts: [1] });
      const before = Array.from(await victim.centroidInteraction(await victim.centroidScores(lib.randomMatrix(2, 24, next)), [0])).length;
      own.destroy();
      await own.lost;
      const lost = await what(async () => victim.centroidInteraction(await victim.centroidScores(lib.randomMatrix(2, 24, next)), [0]));

      // A batch past the (here tiny) buffer limit: the index says it is unusable and later calls reject.
      const small = await lib.CompressedGpuIndex.create(device, codec, { maxBufferBytes: 1024, initialBufferBytes: 16 });
      await small.append({ codes: [1, 2], residuals: new Uint8Array(12), tokenCounts: [2] });
      const overLimit = await what(() => small.append({ codes: Array.from({ length: 200 }, () => 1), residuals: new Uint8Array(1200), tokenCounts: [200] }));
      const afterLimit = await what(() => small.centroidScores(lib.randomMatrix(1, 24, next)));
      const smallReason = small.unusableReason ?? null;
      small.destroy();
      return { emptyScores, emptyTops, errors, released, destroyed, before, lost, unusable: victim.unusableReason ?? null, concurrent, overLimit, afterLimit, smallReason };
    },
    { url: BUNDLE_URL },
  );
  expect(out.emptyScores).toEqual([0, 0, 0]);
  expect(out.emptyTops).toBe(0);
  expect(out.errors.badCandidate).toMatch(/^RangeError: candidate 3 is not a document/);
  expect(out.errors.badCode).toMatch(/^RangeError: code 10 of token 0 is not a centroid/);
  expect(out.errors.badResiduals).toMatch(/^RangeError: 1 tokens need 6 residual bytes/);
  expect(out.errors.badCounts).toMatch(/^RangeError: .* 1 tokens but 2 codes/);
  expect(out.errors.badProbe).toMatch(/^RangeError: nprobe must be/);
  expect(out.errors.badDim).toMatch(/^RangeError: the query has dim 16/);
  expect(out.errors.badCodec).toMatch(/^RangeError: nbits 2 needs 4 bucket weights/);
  expect(out.errors.documentsAfterBadAppends).toBe(3);
  expect(out.errors.stillScores).toHaveLength(1);
  expect(out.errors.stillScores[0]).toBe(0);
  expect(out.concurrent.numbers).toEqual([3, 4]);
  expect(out.concurrent.tokens).toBe(6);
  expect(out.concurrent.worst).toBeLessThan(1e-6);
  expect(out.overLimit).toMatch(/^GpuScoringError: the compressed index's residuals would need 1212 bytes; one GPU binding holds at most 1024/);
  expect(out.afterLimit).toMatch(/^GpuScoringError: an append failed on the GPU/);
  expect(out.smallReason).toMatch(/^an append failed on the GPU/);
  expect(out.released).toMatch(/^RangeError: these centroid scores were released/);
  expect(out.destroyed).toMatch(/^GpuScoringError: the compressed GPU index was destroyed/);
  expect(out.before).toBe(1);
  expect(out.lost).toMatch(/^GpuScoringError: the GPU device was lost/);
  expect(out.unusable).toMatch(/lost/);
});
