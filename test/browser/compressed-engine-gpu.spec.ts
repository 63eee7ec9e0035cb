/**
 * The compressed search on the GPU through the public API, in Debian Chromium on SwiftShader:
 * one collection indexed by `scoring: 'webgpu'` and by `scoring: 'cpu'` searches (in the page's
 * own thread, `worker: false`, so the test can read the engines' internal diagnostics), with
 * `rerank: true` and `rerank: false`, gives the same candidates from the inverted lists, the same
 * survivors of centroid interaction, the same hits and scores (residual scores within 1e-5,
 * reranked scores within the GPU/CPU MaxSim tolerance) after the first training, adds, replaced
 * and deleted documents, a compaction of the codes and a background re-training; and a lost device
 * falls back to the CPU stages with the reason, answering as the CPU does; `scoring: 'auto'` puts
 * the stages where it puts MaxSim (the CPU on SwiftShader, with MaxSim's reason).
 *
 * The GPU side must really run there: its stats say 'webgpu', every query's diagnostics say the
 * stages ran on 'webgpu', and its GPU copy of the codes is rebuilt on compaction and re-training.
 * In CI a missing WebGPU adapter fails these tests (createSearch with scoring 'webgpu' throws
 * DEVICE_UNAVAILABLE, and the check below fails first); elsewhere they skip with the reason.
 */
import { expect, test, type Page } from '@playwright/test';
import { harnessUrl, libraryBuildMissing, testHubUrl, testModelsMissing, TEST_HUB_REPO } from '../support/browser.ts';
import { WORD_CLUSTERED_INIT, type wordClustered } from '../support/word-clusters.ts';

const IN_CI = !!process.env['CI'];

/** The spec's corpora (test/support/word-clusters.ts): documents with a `topic` metadata field. */
function makeCorpus(seed: number, docs: number, queries: number) {
  const g = globalThis as unknown as { wordClustered: typeof wordClustered };
  return g.wordClustered({ docs, queries, seed, topicMetadata: true });
}

let skipReason: string | null = null;

async function setUp(page: Page): Promise<void> {
  const missing = libraryBuildMissing() ?? testModelsMissing();
  test.skip(missing !== null, missing ?? '');
  page.on('pageerror', (err) => console.error(`[page error] ${err.message}`));
  page.on('console', (msg) => msg.type() === 'error' && console.log(`[page console] ${msg.text()}`));
  // The corpus generator, and every GPUDevice the page creates (the device-loss test destroys the scorer's).
  await page.addInitScript(`
    ${WORD_CLUSTERED_INIT}
    globalThis.makeCorpus = ${makeCorpus.toString()};
    globalThis.gpuDevices = [];
    if (globalThis.GPUAdapter) {
      const request = GPUAdapter.prototype.requestDevice;
      GPUAdapter.prototype.requestDevice = async function (...args) {
        const device = await request.apply(this, args);
        globalThis.gpuDevices.push(device);
        return device;
      };
    }
  `);
  await page.goto(harnessUrl());
  const ok = await page.evaluate(async () => Boolean(await navigator.gpu?.requestAdapter()));
  if (!ok) {
    expect(IN_CI, 'no WebGPU adapter in CI: the compressed GPU engine tests must run there').toBe(false);
    skipReason = 'no WebGPU adapter in this browser';
  }
  test.skip(skipReason !== null, skipReason ?? '');
}

interface Hit {
  id: string;
  score: number;
}
interface Trace {
  device: string;
  nprobe: number;
  candidates: string[];
  survivors: string[];
  residual: boolean;
}
interface Comparison {
  phase: string;
  rerank: boolean;
  what: string;
  gpu: { hits: Hit[]; trace: Trace };
  cpu: { hits: Hit[]; trace: Trace };
}
interface Phase {
  phase: string;
  gpuStats: { scoringDevice: string; scoringFallbackReason?: string; centroids: number; trainedTokens: number; state: string }[];
  cpuStats: { scoringDevice: string; scoringFallbackReason?: string; centroids: number; trainedTokens: number; state: string }[];
  gpuCopies: ({ builds: number; queries: number; documents: number; tokens: number; uploadedBytes: number } | undefined)[];
}

function expectSame(c: Comparison): void {
  const what = `${c.phase}, rerank ${c.rerank}, ${c.what}`;
  expect(c.gpu.trace.device, `${what}: GPU stages`).toBe('webgpu');
  expect(c.cpu.trace.device, `${what}: CPU stages`).toBe('cpu');
  expect(c.gpu.trace.nprobe, `${what}: probes`).toBe(c.cpu.trace.nprobe);
  expect(c.gpu.trace.candidates, `${what}: candidates`).toEqual(c.cpu.trace.candidates);
  expect(c.gpu.trace.survivors, `${what}: survivors of centroid interaction`).toEqual(c.cpu.trace.survivors);
  expect(c.gpu.trace.residual, `${what}: residual stage`).toBe(c.cpu.trace.residual);
  expect(c.gpu.hits.map((h) => h.id), `${what}: hits`).toEqual(c.cpu.hits.map((h) => h.id));
  c.gpu.hits.forEach((h, i) => expect(Math.abs(h.score - c.cpu.hits[i]!.score), `${what}: score of ${h.id}`).toBeLessThan(1e-5));
}

test('scoring webgpu and cpu: same candidates, survivors, hits and scores, rerank true and false, through adds, deletes, compaction and re-training', async ({ page }) => {
  test.setTimeout(600_000);
  await setUp(page);
  const run = await page.evaluate(
    async ({ hubUrl, repo }) => {
      const entry = '/dist/index.js';
      const lib = await import(/* @vite-ignore */ entry);
      type Engine = { compressedDiagnostics(): { lastQuery: unknown; gpu: unknown } };
      const g = globalThis as unknown as { makeCorpus: typeof makeCorpus };
      const { docs, queries } = g.makeCorpus(23, 900, 5);
      const base = { model: repo, hubUrl, device: 'wasm', worker: false };
      const pairs: { rerank: boolean; gpu: any; cpu: any }[] = [];
      for (const rerank of [true, false]) {
        const gpu = await lib.createSearch({ ...base, scoring: 'webgpu', compression: { nbits: 2, rerank } });
        const cpu = await lib.createSearch({ ...base, scoring: 'cpu', compression: { nbits: 2, rerank } });
        pairs.push({ rerank, gpu, cpu });
      }
      // Every engine receives the same calls, so they train the same codec and number slots alike.
      const all = (fn: (s: any) => Promise<unknown>) => Promise.all(pairs.flatMap((p) => [fn(p.gpu), fn(p.cpu)]));
      const diag = (s: any) => (s.engine as Engine).compressedDiagnostics();
      const settle = async () => {
        for (const p of pairs) for (const s of [p.gpu, p.cpu]) while ((await s.stats()).compression.state === 'training') await new Promise((r) => setTimeout(r, 50));
      };
      const comparisons: unknown[] = [];
      const phases: unknown[] = [];
      const compare = async (phase: string) => {
        await settle();
        const searches: [string, Record<string, unknown>][] = [
          ['k 10, default knobs', { k: 10 }],
          // Fewer survivors than the default (whatever it is): centroid interaction prunes on the GPU.
          ['k 5, 40 candidates', { k: 5, candidates: 40 }],
          ['k 10, one probe, 20 candidates', { k: 10, nprobe: 1, candidates: 20 }],
          // A filter: its excluded documents are never candidates; probes widen when too few remain.
          ['k 10, filter topic 3', { k: 10, filter: { topic: 3 } }],
        ];
        for (const p of pairs) {
          for (const [qi, q] of queries.entries()) {
            for (const [what, options] of searches) {
              const gpuHits = await p.gpu.searchEmbedding(q, options);
              const gpuTrace = diag(p.gpu).lastQuery;
              const cpuHits = await p.cpu.searchEmbedding(q, options);
              const cpuTrace = diag(p.cpu).lastQuery;
              const strip = (hits: Hit[]) => hits.map((h) => ({ id: h.id, score: h.score }));
              comparisons.push({ phase, rerank: p.rerank, what: `query ${qi}, ${what}`, gpu: { hits: strip(gpuHits), trace: gpuTrace }, cpu: { hits: strip(cpuHits), trace: cpuTrace } });
            }
          }
        }
        const pick = (st: any) => st.compression;
        phases.push({
          phase,
          gpuStats: await Promise.all(pairs.map(async (p) => pick(await p.gpu.stats()))),
          cpuStats: await Promise.all(pairs.map(async (p) => pick(await p.cpu.stats()))),
          gpuCopies: pairs.map((p) => diag(p.gpu).gpu),
        });
      };
      const emb = (d: (typeof docs)[number]) => ({ id: d.id, embedding: { ...d.embedding, data: d.embedding.data.slice() }, metadata: d.metadata });
      // 1. The first training (about 4,400 tokens).
      await all((s) => s.addEmbeddings(docs.slice(0, 100).map(emb)));
      await compare('after training');
      // 2. Adds, replaced documents (new slots, old ones dead) and deletes.
      await all((s) => s.addEmbeddings(docs.slice(100, 160).map(emb)));
      await all((s) => s.addEmbeddings(docs.slice(800, 810).map((d, i) => ({ ...emb(d), id: `d${5 + i}` }))));
      await all((s) => s.delete(docs.slice(20, 40).map((d) => d.id)));
      await compare('after adds, replaces and deletes');
      // 3. Deleting most of what is left: dead tokens outnumber live ones, so the codes compact (slots renumbered).
      await all((s) => s.delete(docs.slice(40, 130).map((d) => d.id)));
      await compare('after a compaction');
      // 4. Growing past 4x the trained tokens: a background re-training swaps in new codes.
      const trainedBefore = (await pairs[0]!.gpu.stats()).compression.trainedTokens;
      for (let from = 160; from < 800; from += 80) {
        await all((s) => s.addEmbeddings(docs.slice(from, from + 80).map(emb)));
        await settle();
        if ((await pairs[0]!.gpu.stats()).compression.trainedTokens !== trainedBefore) break;
      }
      await compare('after a re-training');
      for (const p of pairs) {
        await p.gpu.close();
        await p.cpu.close();
      }
      return { comparisons: comparisons as Comparison[], phases: phases as Phase[], trainedBefore };
    },
    { hubUrl: testHubUrl(), repo: TEST_HUB_REPO },
  );
  const sizes = run.comparisons.map((c) => c.gpu.trace.candidates.length);
  const worst = Math.max(...run.comparisons.flatMap((c) => c.gpu.hits.map((h, i) => Math.abs(h.score - (c.cpu.hits[i]?.score ?? Infinity)))));
  console.log(`[compressed gpu] ${run.comparisons.length} searches compared; ${Math.min(...sizes)}-${Math.max(...sizes)} candidates each; worst |GPU - CPU score| ${worst.toExponential(2)}`);
  for (const c of run.comparisons) expectSame(c);
  // Candidates must not be trivially equal: many queries have more than the survivors kept.
  expect(run.comparisons.filter((c) => c.gpu.trace.candidates.length > c.gpu.trace.survivors.length).length).toBeGreaterThan(run.comparisons.length / 4);
  // Every rerank: false search scores its survivors on the GPU's residual stage.
  for (const c of run.comparisons.filter((x) => !x.rerank)) expect(c.gpu.trace.residual, `${c.phase}, ${c.what}`).toBe(true);
  const [trained, changed, compacted, retrained] = run.phases;
  for (const p of run.phases) {
    for (const [i, s] of p.gpuStats.entries()) {
      expect(s.scoringDevice, `${p.phase}: ${s.scoringFallbackReason ?? ''}`).toBe('webgpu');
      expect(s.state).toBe('ready');
      expect({ centroids: s.centroids, trainedTokens: s.trainedTokens }, `${p.phase}: both devices trained the same codec`).toEqual({ centroids: p.cpuStats[i]!.centroids, trainedTokens: p.cpuStats[i]!.trainedTokens });
    }
    for (const s of p.cpuStats) {
      expect(s.scoringDevice).toBe('cpu');
      expect(s.scoringFallbackReason).toBeUndefined();
    }
  }
  for (let i = 0; i < 2; i++) {
    const copies = run.phases.map((p) => p.gpuCopies[i]!);
    // Built once at training; adds only send the new slots; compaction and re-training rebuild the copy.
    expect(copies.map((c) => c.builds)).toEqual([1, 1, 2, 3]);
    expect(changed!.gpuCopies[i]!.documents, 'adds and replaces append slots').toBe(trained!.gpuCopies[i]!.documents + 60 + 10);
    // Rebuilt from the compacted slots: fewer than before, though deletes after the compaction leave dead ones again.
    expect(compacted!.gpuCopies[i]!.documents, 'the rebuilt copy holds the renumbered slots').toBeLessThan(changed!.gpuCopies[i]!.documents);
    expect(compacted!.gpuCopies[i]!.documents).toBeGreaterThanOrEqual(160 - 20 - 90);
  }
  expect(retrained!.gpuStats[0]!.trainedTokens).toBeGreaterThan(run.trainedBefore);
});

test('a device lost mid-session: the compressed stages fall back to the CPU, say why, and answer as the CPU does', async ({ page }) => {
  test.setTimeout(300_000);
  await setUp(page);
  const run = await page.evaluate(
    async ({ hubUrl, repo }) => {
      const entry = '/dist/index.js';
      const lib = await import(/* @vite-ignore */ entry);
      const g = globalThis as unknown as { makeCorpus: typeof makeCorpus; gpuDevices: GPUDevice[] };
      const { docs, queries } = g.makeCorpus(31, 140, 3);
      const base = { model: repo, hubUrl, device: 'wasm', worker: false, compression: { nbits: 2, rerank: false } };
      const before = g.gpuDevices.length;
      const gpu = await lib.createSearch({ ...base, scoring: 'webgpu' });
      const devices = g.gpuDevices.slice(before);
      const cpu = await lib.createSearch({ ...base, scoring: 'cpu' });
      for (const s of [gpu, cpu]) await s.addEmbeddings(docs.map((d: (typeof docs)[number]) => ({ ...d, embedding: { ...d.embedding, data: d.embedding.data.slice() } })));
      const diag = (s: any) => s.engine.compressedDiagnostics().lastQuery;
      const out: { gpu: Hit[]; cpu: Hit[]; device: string }[] = [];
      const ask = async (q: (typeof queries)[number]) => {
        const gpuHits = await gpu.searchEmbedding(q, { k: 10 });
        const device = diag(gpu).device;
        out.push({ gpu: gpuHits, cpu: await cpu.searchEmbedding(q, { k: 10 }), device });
      };
      await ask(queries[0]!);
      const statsBefore = (await gpu.stats()).compression;
      for (const d of devices) d.destroy(); // what a driver reset or a lost GPU looks like to the page
      await ask(queries[1]!);
      await ask(queries[2]!);
      const statsAfter = (await gpu.stats()).compression;
      const scoring = gpu.info.scoring;
      await gpu.close();
      await cpu.close();
      return { devices: devices.length, out, statsBefore, statsAfter, infoCompressed: scoring.compressed };
    },
    { hubUrl: testHubUrl(), repo: TEST_HUB_REPO },
  );
  expect(run.devices, 'the GPU search requested its own scoring device').toBe(1);
  expect(run.statsBefore.scoringDevice).toBe('webgpu');
  expect(run.infoCompressed.device).toBe('webgpu');
  expect(run.out.map((o) => o.device)).toEqual(['webgpu', 'cpu', 'cpu']);
  expect(run.statsAfter.scoringDevice).toBe('cpu');
  expect(run.statsAfter.scoringFallbackReason).toMatch(/lost|destroyed/);
  for (const [i, o] of run.out.entries()) {
    expect(o.gpu.map((h) => h.id), `query ${i}`).toEqual(o.cpu.map((h) => h.id));
    o.gpu.forEach((h, j) => expect(Math.abs(h.score - o.cpu[j]!.score), `query ${i}: ${h.id}`).toBeLessThan(1e-5));
  }
});

test("scoring 'auto' puts the compressed stages where it puts MaxSim, and 'cpu' keeps them off the GPU without a reason", async ({ page }) => {
  test.setTimeout(120_000);
  await setUp(page);
  const run = await page.evaluate(
    async ({ hubUrl, repo }) => {
      const entry = '/dist/index.js';
      const lib = await import(/* @vite-ignore */ entry);
      const g = globalThis as unknown as { makeCorpus: typeof makeCorpus };
      const { docs, queries } = g.makeCorpus(41, 110, 1);
      const out: Record<string, unknown> = {};
      for (const scoring of ['auto', 'cpu']) {
        const s = await lib.createSearch({ model: repo, hubUrl, device: 'wasm', worker: false, scoring, compression: { nbits: 2 } });
        await s.addEmbeddings(docs);
        await s.searchEmbedding(queries[0]!, { k: 5 });
        out[scoring] = { maxsim: s.scoringDevice, maxsimReason: s.scoringFallbackReason ?? null, stats: (await s.stats()).compression, ran: s.engine.compressedDiagnostics().lastQuery.device, info: s.info.scoring.compressed };
        await s.close();
      }
      return out as Record<string, { maxsim: string; maxsimReason: string | null; stats: { scoringDevice: string; scoringFallbackReason?: string }; ran: string; info: { device: string; fallbackReason?: string } }>;
    },
    { hubUrl: testHubUrl(), repo: TEST_HUB_REPO },
  );
  const auto = run['auto']!;
  expect(auto.stats.scoringDevice, 'the compressed stages follow MaxSim').toBe(auto.maxsim);
  expect(auto.ran).toBe(auto.maxsim);
  expect(auto.info.device).toBe(auto.maxsim);
  // SwiftShader: 'auto' keeps MaxSim and the stages on the CPU, with MaxSim's reason.
  if (auto.maxsim === 'cpu') expect(auto.stats.scoringFallbackReason).toBe(auto.maxsimReason);
  const cpu = run['cpu']!;
  expect([cpu.stats.scoringDevice, cpu.ran, cpu.info.device]).toEqual(['cpu', 'cpu', 'cpu']);
  expect(cpu.stats.scoringFallbackReason).toBeUndefined();
});
