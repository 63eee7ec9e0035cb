/**
 * The Chromium half of bench/scale.bench.ts: in headless Debian Chromium, on the page's one
 * thread, the synthetic clustered collection (test/fixtures/clustered.ts) in an fp32 memory
 * store, the compressed index trained on it (nbits 2, pool 1), and per query the exhaustive fp32
 * top 10 (the CPU WASM SIMD scorer, one thread) against the compressed search with and without
 * rerank: top-10 overlap, nDCG@10, median latency, training time, and the page's memory (CDP
 * Runtime.getHeapUsage: JS heap used and ArrayBuffer backing stores, which hold the store's
 * vectors, the codes and the WASM memories; and performance.measureUserAgentSpecificMemory where
 * the page is cross-origin isolated).
 *
 *   npx tsx bench/scale-browser.ts [--tokens=1000000] [--queries=20]
 */
import { launchChromium } from '../test/support/browser.ts';
import { buildPageBundle } from '../test/support/scoring-bundle.ts';
import { startServer } from '../test/support/server.ts';
import { REPO_ROOT } from '../test/support/shared.ts';

const arg = (name: string, fallback: number) => {
  const a = process.argv.find((x) => x.startsWith(`--${name}=`));
  return a ? Number(a.slice(name.length + 3)) : fallback;
};
const TOKENS = arg('tokens', 1_000_000);
const QUERIES = arg('queries', 20);
const DIR = '.cache/scale-bench';


/** Runs in the page (a string: tsx would wrap a function's closures in helpers the page lacks). */
const PAGE_SCRIPT = `async ({ url, tokens, queries: nq }) => {
  const lib = await import(url);
  const data = lib.clusteredCollection(tokens, { seed: 7 });
  const queries = data.queries(nq, 3).map((q) => q.embedding);
  const store = new lib.MemoryStore({ precision: 'fp32' });
  for (const batch of data.batches(256)) await store.put(batch.map((d) => ({ id: d.id, matrix: d.embedding })));
  const scorer = await lib.createScorer({ scoring: 'cpu', threads: 1 });
  const index = new lib.CompressedIndex({ nbits: 2, poolFactor: 1, rerank: true });
  let t = performance.now();
  await index.open(store);
  const trainMs = performance.now() - t;
  const median = (v) => [...v].sort((a, b) => a - b)[Math.floor(v.length / 2)];
  const truth = [];
  const base = [];
  for (const q of queries) {
    t = performance.now();
    truth.push((await scorer.rank(q, () => store.shards(), 10)).map((h) => h.id));
    base.push(performance.now() - t);
  }
  let run = 0;
  const exact = async (q, ids) => {
    const ms = await Promise.all(ids.map((id) => store.matrix(id)));
    const offsets = new Uint32Array(ids.length + 1);
    ms.forEach((m, i) => (offsets[i + 1] = offsets[i] + m.tokens));
    const vectors = new Float32Array(offsets[ids.length] * q.dim);
    ms.forEach((m, i) => vectors.set(m.data, offsets[i] * q.dim));
    const shard = { key: 'r' + run++, dim: q.dim, docIds: ids, offsets, precision: 'fp32', vectors };
    return scorer.rank(q, async function* () { yield shard; }, 10);
  };
  const rows = [];
  for (const rerank of [true, false]) {
    const times = [];
    let overlap = 0;
    let ndcg = 0;
    for (let i = 0; i < queries.length; i++) {
      const q = queries[i];
      t = performance.now();
      const hits = await index.search(q, 10, { rerank }, (ids) => exact(q, ids));
      times.push(performance.now() - t);
      const want = new Set(truth[i]);
      overlap += hits.filter((h) => want.has(h.id)).length / 10;
      let dcg = 0;
      let idcg = 0;
      for (let r = 0; r < 10; r++) {
        idcg += 1 / Math.log2(r + 2);
        if (hits[r] && want.has(hits[r].id)) dcg += 1 / Math.log2(r + 2);
      }
      ndcg += dcg / idcg;
    }
    rows.push({ rerank, overlap: overlap / queries.length, ndcg: ndcg / queries.length, ms: median(times) });
  }
  const stats = index.stats();
  let uaMemory = null;
  if (globalThis.crossOriginIsolated && performance.measureUserAgentSpecificMemory) {
    try { uaMemory = (await performance.measureUserAgentSpecificMemory()).bytes; } catch (e) { uaMemory = 'failed: ' + e.message; }
  }
  const storeBytes = (await store.stats()).vectorBytes;
  // Keep everything alive until the memory is read.
  globalThis.__keep = { store, index, scorer };
  return { documents: data.documents, tokens: data.tokens, trainMs, exhaustiveMs: median(base), rows, codeBytes: stats.codeBytes, centroids: stats.centroids, storeBytes, uaMemory, isolated: globalThis.crossOriginIsolated };
}`;

const url = await buildPageBundle('bench/scale-entry.ts', DIR, true);
const server = await startServer({ root: REPO_ROOT });
const browser = await launchChromium();
try {
  const page = await browser.newPage();
  page.on('pageerror', (err) => console.error(`[page error] ${err.message}`));
  await page.goto(`${server.url}/test/browser/harness.html`);
  const version = browser.version();
  const r = (await page.evaluate(`(${PAGE_SCRIPT})(${JSON.stringify({ url, tokens: TOKENS, queries: QUERIES })})`)) as {
    documents: number; tokens: number; trainMs: number; exhaustiveMs: number; rows: { rerank: boolean; overlap: number; ndcg: number; ms: number }[];
    codeBytes: number; centroids: number; storeBytes: number; uaMemory: number | string | null; isolated: boolean;
  };
  const cdp = await page.context().newCDPSession(page);
  const heap = (await cdp.send('Runtime.getHeapUsage')) as { usedSize: number; totalSize: number; embedderHeapUsedSize?: number; backingStorageSize?: number };
  const mib = (n: number) => (n / 2 ** 20).toFixed(0);
  console.log(`Chromium ${version}, one page thread: ${r.documents} documents, ${r.tokens} tokens, ${QUERIES} queries of 8-32 tokens, nbits 2 pool 1, ${r.centroids} centroids`);
  console.log(`training + assignment ${(r.trainMs / 1000).toFixed(1)} s (${((r.trainMs / r.tokens) * 1000).toFixed(0)} s per million tokens); exhaustive fp32 median ${r.exhaustiveMs.toFixed(1)} ms/query`);
  console.log('| rerank | B/token | top-10 overlap | nDCG@10 | median ms | vs exhaustive |');
  console.log('| --- | ---: | ---: | ---: | ---: | ---: |');
  for (const row of r.rows) console.log(`| ${row.rerank} | ${(r.codeBytes / r.tokens).toFixed(1)} | ${row.overlap.toFixed(3)} | ${row.ndcg.toFixed(3)} | ${row.ms.toFixed(1)} | ${(r.exhaustiveMs / row.ms).toFixed(1)}x faster |`);
  console.log(`page memory (CDP Runtime.getHeapUsage): JS heap used ${mib(heap.usedSize)} MiB of ${mib(heap.totalSize)}, ArrayBuffer backing stores ${heap.backingStorageSize === undefined ? 'n/a' : mib(heap.backingStorageSize)} MiB; of which the fp32 store's full vectors ${mib(r.storeBytes)} MiB and the codes ${mib(r.codeBytes)} MiB`);
  console.log(`performance.measureUserAgentSpecificMemory: ${typeof r.uaMemory === 'number' ? `${mib(r.uaMemory)} MiB` : String(r.uaMemory ?? `unavailable (crossOriginIsolated ${r.isolated})`)}`);
} finally {
  await browser.close();
  await server.close();
}
