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
 * Per residency it also prints the median of each stage of the compressed search (query x
 * centroids, probes, candidate union, centroid interaction, residual, the rows' read, the exact
 * rerank; from the index's @internal trace where the code under test records it) and, where the
 * store prefetches the likely rerank rows, how many of the reranked documents' rows were already
 * read when the rerank asked.
 *
 * `--against=DIR` runs another checkout's code (DIR's bench/memory-entry.ts, e.g. main's) in the
 * same page on the same stored index, query by query in turn with this checkout's, and prints
 * its rows beside them: a baseline under the same load. Each side's figures are then of the
 * queries it ran first (every other query: give twice the queries), since the side that runs a
 * query second finds its rows in the browser's caches; the top 10 of every query are compared.
 *
 * The IndexedDB index (rows and the trained codes) is kept in a Chromium profile under .cache/
 * (`--profile=DIR` to name another, e.g. one shared with another checkout) and reused by the
 * next run of the same size, which then skips the write and the training; `--fresh` rebuilds it.
 *
 *   npx tsx bench/memory-browser.ts [--tokens=1000000] [--queries=20] [--fresh] [--profile=DIR] [--runs=0,1,2] [--no-exhaustive] [--port=42941] [--against=DIR]
 */
import { createHash } from 'node:crypto';
import { mkdirSync, rmSync } from 'node:fs';
import { resolve } from 'node:path';
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
const FRESH = process.argv.includes('--fresh');
const PORT = arg('port', 42941);
/** `--runs=1,2`: only those rows of the table (0: in memory with fp32 rerank rows, 1: in memory, 2: on demand). */
/** `--no-exhaustive`: skips the exhaustive scan (on demand at 10M tokens it reads every row from IndexedDB: minutes). */
const EXHAUSTIVE = !process.argv.includes('--no-exhaustive');
const RUNS = (process.argv.find((x) => x.startsWith('--runs='))?.slice('--runs='.length) ?? '0,1,2').split(',').map(Number);
const PROFILE = process.argv.find((x) => x.startsWith('--profile='))?.slice('--profile='.length) ?? `.cache/memory-bench-profile-${TOKENS}`;


/** Runs in the page (a string: tsx would wrap a function's closures in helpers the page lacks). */
const SETUP = `async ({ url, tokens, queries: nq, fresh, onDemand }) => {
  const lib = await import(url);
  const data = lib.clusteredCollection(tokens, { seed: 7 });
  const fingerprint = { model: 'bench/clustered', revision: 'main', content: 'bench', layout: 'transformers.js', dim: 128, pooling: 'none', encoding: { queryPrompt: '', documentPrompt: '', queryLength: 32, documentLength: 180, queryMarkerId: 1, documentMarkerId: 2, maskId: 3, doQueryExpansion: false, attendToExpansionTokens: false, expansion: 'zero', skiplist: [] } };
  // Only rows on demand measured: a stored index opens without reading its rows (the engine's way).
  let store = fresh ? undefined : await lib.IdbStore.open({ name: 'memory-bench', fingerprint, precision: 'fp16', sharedMemory: false, rowsOnDemand: onDemand }).catch(() => undefined);
  let writeMs = NaN;
  const have = store ? await store.stats() : undefined;
  let t = performance.now();
  if (!have || have.documents !== data.documents) {
    await store?.close();
    await lib.deleteIndex('memory-bench');
    store = await lib.IdbStore.open({ name: 'memory-bench', fingerprint, precision: 'fp16', sharedMemory: false });
    t = performance.now();
    for (const batch of data.batches(512)) await store.put(batch.map((d) => ({ id: d.id, matrix: d.embedding })));
    writeMs = performance.now() - t;
  }
  const index = new lib.CompressedIndex({ nbits: 2, poolFactor: 1, rerank: true });
  t = performance.now();
  await index.open(store);
  const trainMs = performance.now() - t;
  const scorer = await lib.createScorer({ scoring: 'cpu', threads: 1 });
  globalThis.__bench = { lib, store, index, scorer, queries: data.queries(nq, 3).map((q) => q.embedding) };
  const st = await store.stats();
  return { documents: data.documents, tokens: st.tokens, writeMs, trainMs, codeBytes: index.stats().codeBytes, bytesOnDisk: st.bytesOnDisk, centroids: index.stats().centroids };
}`;

/**
 * Runs in the page: per side (this checkout's code, and with `--against` the other checkout's on
 * the same stored index), the queries in turn, each query on every side before the next (the
 * sides' order alternating), so the sides share the machine's load query by query.
 */
const MEASURE = `async ({ residency, via, exhaustive }) => {
  const { queries } = globalThis.__bench;
  const sides = [globalThis.__bench, ...(globalThis.__against ? [globalThis.__against] : [])];
  let t = performance.now();
  for (const side of sides) await side.store.setRowResidency(residency);
  const switchMs = performance.now() - t;
  let run = 0;
  const median = (v) => [...v].sort((a, b) => a - b)[Math.floor(v.length / 2)];
  const out = sides.map(() => ({ rows: [], tops: [] }));
  for (const depth of [undefined, 128]) {
    const acc = sides.map(() => ({ times: [], reads: [], ranks: [], stages: {}, hits: 0, chunks: 0 }));
    for (const [qi, q] of queries.entries()) {
      const order = qi % 2 === 0 ? sides.map((_, i) => i) : sides.map((_, i) => sides.length - 1 - i);
      for (const [position, si] of order.entries()) {
        const { lib, store, index, scorer } = sides[si];
        // With two sides each counts only its queries run first: the second side of a query would
        // find the same rows in the browser's caches.
        const a = position === 0 ? acc[si] : { times: [], reads: [], ranks: [], stages: {}, hits: 0, chunks: 0 };
        const exact = async (ids) => {
          const r0 = performance.now();
          let shard;
          if (via === 'matrices') {
            const ms = await store.matrices(ids);
            const docs = ids.flatMap((id, i) => (ms[i] ? [{ id, m: ms[i] }] : []));
            shard = lib.matricesShard('rerank:' + run++, q.dim, docs);
          } else {
            shard = await store.rowsShard(ids, 'rerank:' + run++);
          }
          const r1 = performance.now();
          a.reads.push(r1 - r0);
          const found = await scorer.rank(q, async function* () { yield shard; }, 10);
          a.ranks.push(performance.now() - r1);
          return found;
        };
        // What the engine does (src/engine.ts): the rows of the likely rerank set are asked for early, where the store can.
        const prefetch = via === 'rowsShard' && typeof store.prefetchRows === 'function' ? (ids) => store.prefetchRows(ids) : undefined;
        store.lastRead = undefined;
        t = performance.now();
        const found = await index.search(q, 10, depth === undefined ? {} : { rerankDepth: depth }, exact, prefetch);
        a.times.push(performance.now() - t);
        out[si].tops.push(found.map((h) => h.id + ':' + h.score.toFixed(5)).join());
        for (const [name, ms] of Object.entries(index.lastQuery?.stageMs ?? {})) (a.stages[name] ??= []).push(ms);
        const r = store.lastRead;
        if (r) { a.hits += r.prefetched; a.chunks += r.chunks; }
      }
    }
    acc.forEach((a, si) => {
      const stageMedians = Object.fromEntries(Object.entries(a.stages).map(([name, v]) => [name, median(v)]));
      out[si].rows.push({ depth: depth ?? 'default', ms: median(a.times), readMs: median(a.reads), rankMs: median(a.ranks), stages: stageMedians, hitRate: a.chunks ? a.hits / a.chunks : undefined });
    });
  }
  const exhaustiveMs = [];
  for (const side of sides) {
    t = performance.now();
    if (exhaustive) await side.scorer.rank(queries[0], () => side.store.shards(), 10);
    exhaustiveMs.push(exhaustive ? performance.now() - t : NaN);
  }
  return { switchMs, sides: out, exhaustiveMs, vectorBytes: (await sides[0].store.stats()).vectorBytes };
}`;

/** Runs in the page: the other checkout's bundle on the same stored index (`--against`). */
const SETUP_AGAINST = `async ({ url, onDemand }) => {
  const lib = await import(url);
  const fingerprint = { model: 'bench/clustered', revision: 'main', content: 'bench', layout: 'transformers.js', dim: 128, pooling: 'none', encoding: { queryPrompt: '', documentPrompt: '', queryLength: 32, documentLength: 180, queryMarkerId: 1, documentMarkerId: 2, maskId: 3, doQueryExpansion: false, attendToExpansionTokens: false, expansion: 'zero', skiplist: [] } };
  const store = await lib.IdbStore.open({ name: 'memory-bench', fingerprint, precision: 'fp16', sharedMemory: false, rowsOnDemand: onDemand });
  const index = new lib.CompressedIndex({ nbits: 2, poolFactor: 1, rerank: true });
  await index.open(store);
  const scorer = await lib.createScorer({ scoring: 'cpu', threads: 1 });
  globalThis.__against = { lib, store, index, scorer };
}`;

const url = await buildPageBundle('bench/memory-entry.ts', DIR, true);
// `--against=DIR`: another checkout's code (say main's), bundled from there and served from here.
const AGAINST = process.argv.find((x) => x.startsWith('--against='))?.slice('--against='.length);
let againstUrl: string | undefined;
if (AGAINST) {
  const { build } = await import('vite');
  const outDir = `${DIR}-against`;
  await build({
    configFile: false,
    root: resolve(AGAINST),
    logLevel: 'warn',
    base: './',
    worker: { format: 'es' },
    build: { outDir: resolve(REPO_ROOT, outDir), emptyOutDir: true, target: 'es2022', minify: true, lib: { entry: resolve(AGAINST, 'bench/memory-entry.ts'), formats: ['es'], fileName: 'memory-entry' } },
  });
  againstUrl = `/${outDir}/memory-entry.js`;
}
// A fixed port: IndexedDB belongs to the page's origin, port included, so the kept index is found again.
const server = await startServer({ root: REPO_ROOT, port: PORT });
// A profile on disk: a context without one gets a quota too small for 10M tokens.
const profile = resolve(REPO_ROOT, PROFILE);
if (FRESH) rmSync(profile, { recursive: true, force: true });
mkdirSync(profile, { recursive: true });
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
  const setup = (await page.evaluate(`(${SETUP})(${JSON.stringify({ url, tokens: TOKENS, queries: QUERIES, fresh: FRESH, onDemand: !RUNS.includes(0) && !RUNS.includes(1) })})`)) as { documents: number; tokens: number; writeMs: number; trainMs: number; codeBytes: number; bytesOnDisk: number; centroids: number };
  const onDemand = !RUNS.includes(0) && !RUNS.includes(1);
  if (againstUrl) await page.evaluate(`(${SETUP_AGAINST})(${JSON.stringify({ url: againstUrl, onDemand })})`);
  const sideNames = againstUrl ? ['this checkout', `--against ${AGAINST}`] : ['this checkout'];
  const mib = (n: number) => (n / 2 ** 20).toFixed(0);
  console.log(`Chromium ${context.browser()?.version() ?? (await page.evaluate('navigator.userAgent'))}, one page thread: ${setup.documents} documents, ${setup.tokens} tokens (fp16 in IndexedDB, ${Number.isNaN(setup.writeMs) ? 'reused from ' + PROFILE : 'written in ' + (setup.writeMs / 1000).toFixed(1) + ' s'}), nbits 2 pool 1, ${setup.centroids} centroids (${Number.isNaN(setup.writeMs) ? 'opened' : 'trained'} in ${(setup.trainMs / 1000).toFixed(1)} s), codes ${mib(setup.codeBytes)} MiB, bytesOnDisk ${mib(setup.bytesOnDisk)} MiB, ${QUERIES} queries`);
  console.log('| rows | resident vectorBytes MiB | JS heap MiB | ArrayBuffers MiB | heap + buffers MiB | median ms (rerank default depth; of which reading rows) | median ms (rerank 128) | one exhaustive scan ms |');
  console.log('| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |');
  const tops: string[][] = [];
  const stageLines: string[] = [];
  const runs = [
    { residency: 'all', via: 'matrices', label: 'in memory, fp32 rerank rows (before)' },
    { residency: 'all', via: 'rowsShard', label: 'in memory, fp16 rerank rows' },
    { residency: 'on-demand', via: 'rowsShard', label: 'on demand, fp16 rerank rows (now)' },
  ];
  for (const { residency, via, label } of runs.filter((_, i) => RUNS.includes(i))) {
    const r = (await page.evaluate(`(${MEASURE})(${JSON.stringify({ residency, via, exhaustive: EXHAUSTIVE })})`)) as { switchMs: number; sides: { rows: { depth: string | number; ms: number; readMs: number; rankMs: number; stages: Record<string, number>; hitRate?: number }[]; tops: string[] }[]; exhaustiveMs: number[]; vectorBytes: number };
    // With --against the memory is both sides' together (one page).
    const m = await memory();
    r.sides.forEach((side, si) => {
      const name = againstUrl ? `${label} [${sideNames[si]}]` : label;
      tops.push(side.tops);
      for (const row of side.rows) {
        const stages = Object.entries(row.stages).map(([stage, ms]) => `${stage} ${ms.toFixed(1)}`);
        const hit = row.hitRate === undefined ? '' : `; ${(100 * row.hitRate).toFixed(0)}% of the rerank's stored chunks read ahead`;
        stageLines.push(`${name}, rerank ${row.depth}: median ms ${row.ms.toFixed(1)} = ${[...stages, `read ${row.readMs.toFixed(1)}`, `rerank ${row.rankMs.toFixed(1)}`].join(', ')}${hit}`);
      }
      console.log(`| ${name} | ${mib(r.vectorBytes)} | ${mib(m.heap)} | ${mib(m.buffers)} | ${mib(m.heap + m.buffers)} | ${side.rows[0]!.ms.toFixed(1)} (rows ${side.rows[0]!.readMs.toFixed(1)}) | ${side.rows[1]!.ms.toFixed(1)} (rows ${side.rows[1]!.readMs.toFixed(1)}) | ${r.exhaustiveMs[si]!.toFixed(0)} |`);
    });
  }
  console.log('per-stage medians (each its own median, so they need not add up to the total):');
  for (const line of stageLines) console.log(`  ${line}`);
  const same = tops.every((run) => run.every((t, i) => t === tops[0]![i]));
  console.log(`same top 10 (ids, scores to 1e-5) in every row: ${same}; their digest (compare runs of other code): ${createHash('sha256').update(tops[0]!.join('|')).digest('hex').slice(0, 16)}`);
  // Kept for the next run (see the module comment).
  await page.evaluate(`Promise.all([globalThis.__bench.store.close(), globalThis.__against?.store.close()])`);
} finally {
  await context.close();
  await server.close();
}
