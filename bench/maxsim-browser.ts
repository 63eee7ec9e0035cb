/**
 * The browser half of bench/maxsim.bench.ts: builds the scoring test bundle, serves it (cross-origin
 * isolated, as the test server always is), and in headless Chromium times the library's CPU
 * kernels, on one thread and on `navigator.hardwareConcurrency` threads (the calling thread plus
 * sub-workers, over a memory store in shared memory), and the WebGPU shader on the same corpus
 * (generated in the page from the same seed). On a machine without a GPU the adapter is
 * SwiftShader, a CPU emulation: its figure proves the WebGPU path runs, not what a GPU does.
 * A last table times 1 vs N threads on small indexes: where the split starts to pay is the
 * scorer's PARALLEL_MIN_ROWS.
 */
import { launchChromium } from '../test/support/browser.ts';
import { buildScoringBundle } from '../test/support/scoring-bundle.ts';
import { startServer } from '../test/support/server.ts';
import { REPO_ROOT } from '../test/support/shared.ts';

const BUNDLE_DIR = '.cache/scoring-bench';

interface Row {
  name: string;
  precision: string;
  ms: number;
}

interface PageResult {
  rows: Row[];
  tokens: number;
  naiveMs: number;
  kernel: string;
}

/** Runs in the page: times the plain-JS oracle, the library CPU kernel and the WebGPU scorer. */
const PAGE_SCRIPT = `async ({ url, count, dim }) => {
  const lib = await import(url);
  const { docs, query } = lib.benchCorpus(count, dim, lib.mulberry32(count));
  const tokens = docs.reduce((n, d) => n + d.tokens, 0);
  const time = async (runs, fn) => {
    await fn();
    let min = Infinity;
    for (let i = 0; i < runs; i++) {
      const t0 = performance.now();
      await fn();
      min = Math.min(min, performance.now() - t0);
    }
    return min;
  };
  const rows = [];
  const shard = lib.shardOf(docs, dim, 'fp32', 'bench-' + count);
  const shards = async function* () { yield shard; };
  const naiveMs = await time(1, () => lib.maxSimShard(query, shard));
  rows.push({ name: 'plain JS maxSimShard (baseline)', precision: 'fp32', ms: naiveMs });
  const cpu = new lib.CpuScorer(undefined);
  rows.push({ name: 'library CPU kernel', precision: 'fp32', ms: await time(3, () => cpu.rank(query, shards, 10)) });
  // The same documents in a memory store in shared memory: 1 thread, then N (this one plus N - 1 sub-workers).
  const threads = navigator.hardwareConcurrency;
  const store = new lib.MemoryStore({ precision: 'fp32', sharedMemory: true });
  await store.put(docs.map((matrix, i) => ({ id: 'd' + i, matrix })));
  const one = new lib.CpuScorer(undefined);
  const many = new lib.CpuScorer(undefined, { threads, parallelMinRows: 0 });
  rows.push({ name: 'CPU kernel, memory store, 1 thread', precision: 'fp32', ms: await time(3, () => one.rank(query, () => store.shards(), 10)) });
  const manyMs = await time(3, () => many.rank(query, () => store.shards(), 10));
  rows.push({ name: 'CPU kernel, memory store, ' + threads + ' threads' + (many.lastParallel ? '' : ' FAILED: ' + many.threadsFallbackReason), precision: 'fp32', ms: many.lastParallel ? manyMs : NaN });
  many.dispose();
  const adapter = await navigator.gpu?.requestAdapter();
  if (adapter) {
    // The GPU scores the index as the engine holds it: a store's shards (2 MiB each), all of them
    // in one submission with one read-back per query.
    const store = new lib.MemoryStore({ precision: 'fp32' });
    await store.put(docs.map((matrix, i) => ({ id: 'd' + i, matrix })));
    let storeShards = 0;
    for await (const _ of store.shards()) storeShards++;
    const scorer = await lib.createScorer({ scoring: 'webgpu' });
    // The warm-up run compiles the pipeline and uploads the rows once; the timed runs are queries.
    const runs = count >= 10000 ? 1 : 2;
    const ms = await time(runs, () => scorer.rank(query, () => store.shards(), 10));
    const reads = scorer.residency ? scorer.residency().readBacks / (runs + 1) : NaN;
    const name = scorer.device === 'webgpu' ? 'WebGPU shader (' + adapter.info.vendor + ' ' + adapter.info.architecture + '), ' + storeShards + ' shards, ' + reads + ' read-back/query' : 'WebGPU failed: ' + scorer.fallbackReason;
    rows.push({ name, precision: 'fp32', ms: scorer.device === 'webgpu' ? ms : NaN });
    scorer.dispose();
  } else {
    rows.push({ name: 'WebGPU: no adapter', precision: 'fp32', ms: NaN });
  }
  return { rows, tokens, naiveMs, kernel: cpu.kernel };
}`;

/** Runs in the page: 1 vs N threads on small indexes (a 32-token query), to place the parallel threshold. */
const THRESHOLD_SCRIPT = `async ({ url, dim, counts }) => {
  const lib = await import(url);
  const threads = navigator.hardwareConcurrency;
  const one = new lib.CpuScorer(undefined);
  const many = new lib.CpuScorer(undefined, { threads, parallelMinRows: 0 });
  const out = [];
  for (const count of counts) {
    const { docs, query } = lib.benchCorpus(count, dim, lib.mulberry32(count));
    const store = new lib.MemoryStore({ precision: 'fp32', sharedMemory: true });
    await store.put(docs.map((matrix, i) => ({ id: 'd' + i, matrix })));
    const rows = docs.reduce((n, d) => n + d.tokens, 0);
    const time = async (scorer) => {
      for (let i = 0; i < 3; i++) await scorer.rank(query, () => store.shards(), 10);
      const all = [];
      for (let i = 0; i < 15; i++) {
        const t0 = performance.now();
        await scorer.rank(query, () => store.shards(), 10);
        all.push(performance.now() - t0);
      }
      return all.sort((a, b) => a - b)[7];
    };
    out.push({ count, rows, one: await time(one), many: await time(many), parallel: many.lastParallel });
  }
  many.dispose();
  return { threads, out };
}`;

/** Runs the browser figures for each corpus size and prints them with `print` (naive = the page's triple loop). */
export async function runBrowserBench(sizes: number[], dim: number, print: (title: string, gmac: number, rows: Row[], baseline: number) => void): Promise<void> {
  const url = await buildScoringBundle(BUNDLE_DIR, true);
  const server = await startServer({ root: REPO_ROOT });
  const browser = await launchChromium();
  try {
    const page = await browser.newPage();
    page.on('pageerror', (err) => console.error(`[page error] ${err.message}`));
    await page.goto(`${server.url}/test/browser/harness.html`);
    for (const count of sizes) {
      // A string, not a function: tsx would wrap a function's inner closures in helpers the page lacks.
      const result = (await page.evaluate(`(${PAGE_SCRIPT})(${JSON.stringify({ url, count, dim })})`)) as PageResult;
      const gmac = (32 * result.tokens * dim) / 1e9;
      const rows = result.rows.map((r) => (r.name === 'library CPU kernel' ? { ...r, name: `library CPU kernel (${result.kernel})` } : r));
      print(`Chromium, ${count} documents, ${result.tokens} tokens (x naive = vs plain JS in the page)`, gmac, rows, result.naiveMs);
    }
    const probe = (await page.evaluate(`(${THRESHOLD_SCRIPT})(${JSON.stringify({ url, dim, counts: [25, 50, 100, 200, 400] })})`)) as { threads: number; out: { count: number; rows: number; one: number; many: number; parallel: boolean }[] };
    console.log(`\nChromium, small indexes: 1 vs ${probe.threads} threads (median of 15 queries, 32-token query, fp32)`);
    console.log(`${'documents'.padEnd(11)}${'rows'.padStart(8)}${'1 thread ms'.padStart(13)}${`${probe.threads} threads ms`.padStart(14)}${'speed-up'.padStart(10)}`);
    for (const p of probe.out) {
      console.log(`${String(p.count).padEnd(11)}${String(p.rows).padStart(8)}${p.one.toFixed(2).padStart(13)}${(p.parallel ? p.many.toFixed(2) : 'failed').padStart(14)}${(p.one / p.many).toFixed(2).padStart(10)}`);
    }
  } finally {
    await browser.close();
    await server.close();
  }
}
