/**
 * Page memory and query latency of a named compressed index in headless Debian Chromium, on the
 * page's one thread, with its full-precision rows held in memory (what every IndexedDB index did
 * before rows on demand) and read on demand from IndexedDB, on the same index in the same run:
 * the synthetic clustered collection (test/fixtures/clustered.ts) in an fp16 IndexedDB store,
 * the compressed index trained once on all of it (nbits 2, pool 1), then per residency the page
 * memory after a forced GC (CDP Runtime.getHeapUsage: JS heap used + ArrayBuffer backing stores,
 * which hold the rows, the codes and the WASM memories) and the median latency of the compressed
 * search with rerank at the default rerank depth and at 128, and of one `exhaustive` scan. The
 * rerank is the engine's: before, the candidates' matrices decoded to fp32 (`store.matrices`, as
 * the engine did); now their rows as stored (`store.rowsShard`, fp16), both scored by the WASM scorer.
 *
 *   npx tsx bench/memory-browser.ts [--tokens=1000000] [--queries=20]
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { chromium } from '@playwright/test';
import { chromiumLaunchOptions } from '../test/support/browser.ts';
import { buildPageBundle } from '../test/support/scoring-bundle.ts';
import { startServer } from '../test/support/server.ts';
import { REPO_ROOT } from '../test/support/shared.ts';

const arg = (name: string, fallback: number) => {
  const a = process.argv.find((x) => x.startsWith(`--${name}=`));
  return a ? Number(a.slice(name.length + 3)) : fallback;
};
const TOKENS = arg('tokens', 1_000_000);
const QUERIES = arg('queries', 20);
const DIR = '.cache/memory-bench';


/** Runs in the page (a string: tsx would wrap a function's closures in helpers the page lacks). */
const SETUP = `async ({ url, tokens, queries: nq }) => {
  const lib = await import(url);
  const data = lib.clusteredCollection(tokens, { seed: 7 });
  const fingerprint = { model: 'bench/clustered', revision: 'main', content: 'bench', layout: 'transformers.js', dim: 128, pooling: 'none', encoding: { queryPrompt: '', documentPrompt: '', queryLength: 32, documentLength: 180, queryMarkerId: 1, documentMarkerId: 2, maskId: 3, doQueryExpansion: false, attendToExpansionTokens: false, expansion: 'zero', skiplist: [] } };
  await lib.deleteIndex('memory-bench');
  const store = await lib.IdbStore.open({ name: 'memory-bench', fingerprint, precision: 'fp16', sharedMemory: false });
  let t = performance.now();
  for (const batch of data.batches(512)) await store.put(batch.map((d) => ({ id: d.id, matrix: d.embedding })));
  const writeMs = performance.now() - t;
  const index = new lib.CompressedIndex({ nbits: 2, poolFactor: 1, rerank: true });
  t = performance.now();
  await index.open(store);
  const trainMs = performance.now() - t;
  const scorer = await lib.createScorer({ scoring: 'cpu', threads: 1 });
  globalThis.__bench = { lib, store, index, scorer, queries: data.queries(nq, 3).map((q) => q.embedding) };
  const st = await store.stats();
  return { documents: data.documents, tokens: st.tokens, writeMs, trainMs, codeBytes: index.stats().codeBytes, bytesOnDisk: st.bytesOnDisk, centroids: index.stats().centroids };
}`;

const MEASURE = `async ({ residency, via }) => {
  const { lib, store, index, scorer, queries } = globalThis.__bench;
  let t = performance.now();
  await store.setRowResidency(residency);
  const switchMs = performance.now() - t;
  let run = 0;
  let reads = [];
  const exact = async (q, ids) => {
    const r0 = performance.now();
    let shard;
    if (via === 'matrices') {
      const ms = await store.matrices(ids);
      const docs = ids.flatMap((id, i) => (ms[i] ? [{ id, m: ms[i] }] : []));
      shard = lib.matricesShard('rerank:' + run++, q.dim, docs);
    } else {
      shard = await store.rowsShard(ids, 'rerank:' + run++);
    }
    reads.push(performance.now() - r0);
    return scorer.rank(q, async function* () { yield shard; }, 10);
  };
  const median = (v) => [...v].sort((a, b) => a - b)[Math.floor(v.length / 2)];
  const rows = [];
  const tops = [];
  for (const depth of [undefined, 128]) {
    const times = [];
    reads = [];
    for (const q of queries) {
      t = performance.now();
      const hits = await index.search(q, 10, depth === undefined ? {} : { rerankDepth: depth }, (ids) => exact(q, ids));
      times.push(performance.now() - t);
      tops.push(hits.map((h) => h.id + ':' + h.score.toFixed(5)).join());
    }
    rows.push({ depth: depth ?? 'default', ms: median(times), readMs: median(reads) });
  }
  t = performance.now();
  await scorer.rank(queries[0], () => store.shards(), 10);
  const exhaustiveMs = performance.now() - t;
  return { switchMs, rows, exhaustiveMs, vectorBytes: (await store.stats()).vectorBytes, tops };
}`;

const url = await buildPageBundle('bench/memory-entry.ts', DIR, true);
const server = await startServer({ root: REPO_ROOT });
// A profile on disk: a context without one gets a quota too small for 10M tokens.
const profile = mkdtempSync(join(tmpdir(), 'colbert-web-memory-bench-'));
const context = await chromium.launchPersistentContext(profile, chromiumLaunchOptions());
try {
  const page = await context.newPage();
  page.on('pageerror', (err) => console.error(`[page error] ${err.message}`));
  await page.goto(`${server.url}/test/browser/harness.html`);
  const cdp = await context.newCDPSession(page);
  const memory = async () => {
    await cdp.send('HeapProfiler.collectGarbage');
    const heap = (await cdp.send('Runtime.getHeapUsage')) as { usedSize: number; backingStorageSize?: number };
    return { heap: heap.usedSize, buffers: heap.backingStorageSize ?? NaN };
  };
  const setup = (await page.evaluate(`(${SETUP})(${JSON.stringify({ url, tokens: TOKENS, queries: QUERIES })})`)) as { documents: number; tokens: number; writeMs: number; trainMs: number; codeBytes: number; bytesOnDisk: number; centroids: number };
  const mib = (n: number) => (n / 2 ** 20).toFixed(0);
  console.log(`Chromium ${context.browser()?.version() ?? (await page.evaluate('navigator.userAgent'))}, one page thread: ${setup.documents} documents, ${setup.tokens} tokens (fp16 in IndexedDB, written in ${(setup.writeMs / 1000).toFixed(1)} s), nbits 2 pool 1, ${setup.centroids} centroids (trained in ${(setup.trainMs / 1000).toFixed(1)} s), codes ${mib(setup.codeBytes)} MiB, bytesOnDisk ${mib(setup.bytesOnDisk)} MiB, ${QUERIES} queries`);
  console.log('| rows | resident vectorBytes MiB | JS heap MiB | ArrayBuffers MiB | heap + buffers MiB | median ms (rerank default depth; of which reading rows) | median ms (rerank 128) | one exhaustive scan ms |');
  console.log('| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |');
  const tops: string[][] = [];
  const runs = [
    { residency: 'all', via: 'matrices', label: 'in memory, fp32 rerank rows (before)' },
    { residency: 'all', via: 'rowsShard', label: 'in memory, fp16 rerank rows' },
    { residency: 'on-demand', via: 'rowsShard', label: 'on demand, fp16 rerank rows (now)' },
  ];
  for (const { residency, via, label } of runs) {
    const r = (await page.evaluate(`(${MEASURE})(${JSON.stringify({ residency, via })})`)) as { switchMs: number; rows: { depth: string | number; ms: number; readMs: number }[]; exhaustiveMs: number; vectorBytes: number; tops: string[] };
    const m = await memory();
    tops.push(r.tops);
    console.log(`| ${label} | ${mib(r.vectorBytes)} | ${mib(m.heap)} | ${mib(m.buffers)} | ${mib(m.heap + m.buffers)} | ${r.rows[0]!.ms.toFixed(1)} (rows ${r.rows[0]!.readMs.toFixed(1)}) | ${r.rows[1]!.ms.toFixed(1)} (rows ${r.rows[1]!.readMs.toFixed(1)}) | ${r.exhaustiveMs.toFixed(0)} |`);
  }
  const same = tops.every((run) => run.every((t, i) => t === tops[0]![i]));
  console.log(`same top 10 (ids, scores to 1e-5) in every row: ${same}`);
  await page.evaluate(`globalThis.__bench.store.close().then(() => globalThis.__bench.lib.deleteIndex('memory-bench'))`);
} finally {
  await context.close();
  await server.close();
  rmSync(profile, { recursive: true, force: true });
}
