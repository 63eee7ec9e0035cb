/**
 * CPU MaxSim on several threads in Debian Chromium, on pages the test server makes cross-origin
 * isolated (COOP/COEP), with the real sub-workers (workers/maxsim.worker.ts):
 * - the scorers directly (the scoring test bundle): 3 threads (more than this machine's cores is
 *   fine) give bit-identical scores and rankings to 1 thread for every precision over a memory store
 *   and an IndexedDB store (also after reopening it), with zero-token, single-token and deleted
 *   documents, across appends, deletes and compaction; the shards are SharedArrayBuffer-backed;
 * - failures: a worker URL that does not load, and a sub-worker terminated mid-session, fall back
 *   to one thread with a reason and still answer exactly;
 * - the public API in its engine worker: the reported thread count and a search over an index above
 *   the parallel threshold, identical to a `scoringThreads: 1` instance.
 */
import { expect, test, type Page } from '@playwright/test';
import { harnessUrl, libraryBuildMissing, testHubUrl, testModelsMissing, TEST_HUB_REPO } from '../support/browser.ts';
import { buildScoringBundle } from '../support/scoring-bundle.ts';

let bundleUrl = '';

test.beforeAll(async () => {
  test.setTimeout(120_000);
  bundleUrl = await buildScoringBundle('.cache/threads-test');
});

test.beforeEach(async ({ page }) => {
  page.on('pageerror', (err) => console.error(`[page error] ${err.message}`));
  page.on('console', (msg) => msg.type() === 'error' && console.log(`[page console] ${msg.text()}`));
  await page.goto(harnessUrl());
  expect(await page.evaluate(() => crossOriginIsolated), 'the test server must send COOP/COEP').toBe(true);
});

interface Ranked {
  id: string;
  score: number;
}

interface Round {
  what: string;
  live: number;
  one: Ranked[];
  three: Ranked[];
  parallel: boolean;
}

async function directRun(page: Page, precision: string): Promise<{ rounds: Round[]; shared: boolean[]; threads: number; reason: string | null; zeroScores: number[] }> {
  return page.evaluate(
    async ({ url, precision }) => {
      const lib = await import(/* @vite-ignore */ url);
      const dim = 128;
      const next = lib.mulberry32(precision.length * 53);
      const one = new lib.CpuScorer(undefined);
      const three = new lib.CpuScorer(undefined, { threads: 3, parallelMinRows: 0 });
      // Every 17th document has no tokens, every 13th one token.
      const doc = (i: number) => ({ id: `doc-${String(i).padStart(4, '0')}`, matrix: lib.randomMatrix(i % 17 === 0 ? 0 : i % 13 === 1 ? 1 : 2 + Math.floor(next() * 100), dim, next) });
      const rounds: { what: string; live: number; one: unknown[]; three: unknown[]; parallel: boolean }[] = [];
      const shared: boolean[] = [];
      const rank = async (what: string, store: { shards(): AsyncIterable<{ vectors: ArrayBufferView; scales?: ArrayBufferView }>; stats(): Promise<{ documents: number }> }) => {
        const live = (await store.stats()).documents;
        for await (const s of store.shards()) shared.push(s.vectors.buffer instanceof SharedArrayBuffer && (!s.scales || s.scales.buffer instanceof SharedArrayBuffer));
        for (const tokens of [1, 32]) {
          const q = lib.randomMatrix(tokens, dim, next);
          const hits3 = await three.rank(q, () => store.shards(), live + 5);
          const parallel = three.lastParallel;
          rounds.push({ what: `${what}, ${tokens}-token query`, live, one: await one.rank(q, () => store.shards(), live + 5), three: hits3, parallel });
        }
      };
      // Memory store: shared memory by default on an isolated page with more than one core.
      const memory = new lib.MemoryStore({ precision, sharedMemory: true });
      await memory.put(Array.from({ length: 500 }, (_, i) => doc(i)));
      await memory.delete(['doc-0005', 'doc-0044', 'doc-0102', 'doc-0250']);
      await rank('memory', memory);
      await memory.put(Array.from({ length: 80 }, (_, i) => doc(500 + i)));
      await memory.delete(['doc-0501', 'doc-0007']);
      await rank('memory after an append', memory);
      await memory.delete(Array.from({ length: 200 }, (_, i) => `doc-${String(i + 1).padStart(4, '0')}`).filter((id) => !['doc-0005', 'doc-0044', 'doc-0102', 'doc-0007'].includes(id)));
      await rank('memory after compaction', memory);
      // IndexedDB store (its default: shared on this page), then the same index reopened.
      const name = `threads-${precision}-${Date.now()}`;
      const fingerprint = { ...lib.FINGERPRINT, dim };
      const idb = await lib.IdbStore.open({ name, fingerprint, precision });
      await idb.put(Array.from({ length: 300 }, (_, i) => doc(1000 + i)));
      await idb.delete(['doc-1003', 'doc-1100']);
      await rank('indexeddb', idb);
      await idb.close();
      const reopened = await lib.IdbStore.open({ name, fingerprint });
      await rank('indexeddb reopened', reopened);
      await reopened.put(Array.from({ length: 40 }, (_, i) => doc(2000 + i)));
      await rank('indexeddb reopened after an append', reopened);
      await reopened.close();
      indexedDB.deleteDatabase(`colbert-web:${name}`);
      const zeroScores = rounds[0]!.three.filter((h) => Number((h as { id: string }).id.slice(4)) % 17 === 0).map((h) => (h as { score: number }).score);
      const out = { rounds, shared, threads: three.threads, reason: three.threadsFallbackReason ?? null, zeroScores };
      three.dispose();
      return out as never;
    },
    { url: bundleUrl, precision },
  );
}

for (const precision of ['fp32', 'fp16', 'int8']) {
  test(`${precision}: 3 threads score bit-identically to 1 over memory and IndexedDB stores, with empty, single-token and deleted documents, appends and compaction`, async ({ page }) => {
    test.setTimeout(180_000);
    const run = await directRun(page, precision);
    expect(run.reason).toBeNull();
    expect(run.threads).toBe(3);
    expect(run.shared.length).toBeGreaterThan(3);
    expect(run.shared.every(Boolean), 'every shard is SharedArrayBuffer-backed').toBe(true);
    expect(run.rounds).toHaveLength(12);
    for (const r of run.rounds) {
      expect(r.parallel, `${r.what}: split across threads`).toBe(true);
      expect(r.three).toHaveLength(r.live);
      // Same ids, same order, the very same float scores.
      expect(r.three, r.what).toEqual(r.one);
    }
    expect(run.rounds.map((r) => r.live).slice(0, 6)).toEqual([496, 496, 574, 574, 378, 378]);
    expect(run.rounds.some((r) => r.three.some((h) => ['doc-0005', 'doc-0501', 'doc-1003'].includes(h.id)))).toBe(false);
    expect(run.zeroScores.length).toBeGreaterThan(10);
    expect(new Set(run.zeroScores)).toEqual(new Set([0]));
  });
}

test('a worker URL that does not load, or a sub-worker terminated mid-session, falls back to one thread with a reason and answers exactly', async ({ page }) => {
  test.setTimeout(120_000);
  const run = await page.evaluate(
    async ({ url }) => {
      const lib = await import(/* @vite-ignore */ url);
      const dim = 64;
      const next = lib.mulberry32(11);
      const store = new lib.MemoryStore({ precision: 'fp16', sharedMemory: true });
      await store.put(Array.from({ length: 400 }, (_, i) => ({ id: `d${i}`, matrix: lib.randomMatrix(i % 9, dim, next) })));
      const one = new lib.CpuScorer(undefined);
      const queries = [0, 1, 2].map(() => lib.randomMatrix(16, dim, next));
      const out: Record<string, unknown> = {};
      // A worker script that is not there (what a wrong URL or a CSP without worker-src looks like).
      const missing = new lib.CpuScorer(undefined, { threads: 2, parallelMinRows: 0, spawnWorker: () => new Worker('/no-such-maxsim.worker.js', { type: 'module' }) });
      const hits = await missing.rank(queries[0], () => store.shards(), 20);
      out['missing'] = { same: JSON.stringify(hits) === JSON.stringify(await one.rank(queries[0], () => store.shards(), 20)), threads: missing.threads, reason: missing.threadsFallbackReason ?? null, parallel: missing.lastParallel };
      // Real sub-workers, one of which is terminated after the first query (no event reaches the pool).
      const spawned: Worker[] = [];
      const killed = new lib.CpuScorer(undefined, {
        threads: 3,
        parallelMinRows: 0,
        stallMs: 500,
        spawnWorker: (i: number) => {
          const w = lib.spawnMaxSimWorker(i);
          spawned.push(w);
          return w;
        },
      });
      const steps = [];
      for (const [i, q] of queries.entries()) {
        const got = await killed.rank(q, () => store.shards(), 20);
        steps.push({ same: JSON.stringify(got) === JSON.stringify(await one.rank(q, () => store.shards(), 20)), parallel: killed.lastParallel, threads: killed.threads, hits: got.length });
        if (i === 0) spawned[1]!.terminate();
      }
      out['killed'] = { steps, reason: killed.threadsFallbackReason ?? null, spawned: spawned.length };
      return out as never;
    },
    { url: bundleUrl },
  );
  const missing = run['missing'] as { same: boolean; threads: number; reason: string | null; parallel: boolean };
  expect(missing.same).toBe(true);
  expect(missing.parallel).toBe(false);
  expect(missing.threads).toBe(1);
  expect(missing.reason).toMatch(/failed to load|did not start/);
  const killed = run['killed'] as { steps: { same: boolean; parallel: boolean; threads: number; hits: number }[]; reason: string | null; spawned: number };
  expect(killed.spawned).toBe(2);
  expect(killed.steps.map((s) => s.parallel)).toEqual([true, false, false]);
  expect(killed.steps.map((s) => s.threads)).toEqual([3, 1, 1]);
  expect(killed.steps.every((s) => s.same && s.hits === 20)).toBe(true);
  expect(killed.reason).toMatch(/did not answer/);
});

test('public API: the engine worker reports its scoring threads and ranks a large index exactly as scoringThreads: 1', async ({ page }) => {
  const missing = libraryBuildMissing() ?? testModelsMissing();
  test.skip(missing !== null, missing ?? '');
  test.setTimeout(300_000);
  const run = await page.evaluate(
    async ({ url, hubUrl, repo }) => {
      const entry = '/dist/index.js';
      const lib = await import(/* @vite-ignore */ entry);
      const util = await import(/* @vite-ignore */ url);
      const base = { model: repo, hubUrl, device: 'wasm', scoring: 'cpu' };
      let invalid = 'no error';
      await lib.createSearch({ ...base, scoringThreads: 0 }).catch((err: { code: string }) => (invalid = err.code));
      const byDefault = await lib.createSearch(base);
      const three = await lib.createSearch({ ...base, scoringThreads: 3 });
      const single = await lib.createSearch({ ...base, scoringThreads: 1 });
      const next = util.mulberry32(21);
      // 400 documents of 60-140 tokens: about 40,000 rows, above the parallel threshold.
      const items = Array.from({ length: 400 }, (_, i) => ({ id: `e${i}`, embedding: util.randomMatrix(60 + (i % 81), byDefault.dim, next) }));
      const copy = () => items.map((it) => ({ id: it.id, embedding: { ...it.embedding, data: it.embedding.data.slice(), ids: it.embedding.ids.slice() } }));
      for (const s of [byDefault, three, single]) await s.addEmbeddings(copy());
      await three.delete(['e3', 'e200']);
      await single.delete(['e3', 'e200']);
      await byDefault.delete(['e3', 'e200']);
      const results = [];
      for (let q = 0; q < 3; q++) {
        const query = util.randomMatrix(32, byDefault.dim, next);
        const clone = () => ({ ...query, data: query.data.slice(), ids: query.ids.slice() });
        results.push([await byDefault.searchEmbedding(clone(), { k: 30 }), await three.searchEmbedding(clone(), { k: 30 }), await single.searchEmbedding(clone(), { k: 30 })]);
      }
      const status = (s: { scoringDevice: string; scoringThreads: number; scoringThreadsFallbackReason?: string; info: { scoring: unknown } }) => ({ device: s.scoringDevice, threads: s.scoringThreads, reason: s.scoringThreadsFallbackReason ?? null, info: s.info.scoring });
      const out = { invalid, cores: navigator.hardwareConcurrency, statuses: [status(byDefault), status(three), status(single)], results, tokens: (await three.stats()).tokens };
      for (const s of [byDefault, three, single]) await s.close();
      return out as never;
    },
    { url: bundleUrl, hubUrl: testHubUrl(), repo: TEST_HUB_REPO },
  );
  const r = run as { invalid: string; cores: number; statuses: { device: string; threads: number; reason: string | null; info: { threads?: number } }[]; results: Ranked[][][]; tokens: number };
  expect(r.invalid).toBe('INVALID_ARGUMENT');
  expect(r.tokens).toBeGreaterThan(32_768);
  const [byDefault, three, single] = r.statuses;
  expect(byDefault).toMatchObject({ device: 'cpu', threads: Math.min(r.cores, 8), reason: null });
  expect(r.cores, 'this test needs a machine with at least 2 cores').toBeGreaterThan(1);
  // No fallback reason after searching: the sub-workers started and answered.
  expect(three).toMatchObject({ device: 'cpu', threads: 3, reason: null, info: { threads: 3 } });
  expect(single).toMatchObject({ device: 'cpu', threads: 1, reason: null });
  for (const [d, t, s] of r.results) {
    expect(s).toHaveLength(30);
    expect(t).toEqual(s);
    expect(d).toEqual(s);
  }
});
