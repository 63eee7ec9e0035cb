/**
 * The browser half of bench/maxsim.bench.ts: builds the scoring test bundle, serves it, and in
 * headless Chromium times the library's CPU kernels and the WebGPU shader on the same corpus
 * (generated in the page from the same seed). On a machine without a GPU the adapter is
 * SwiftShader, a CPU emulation: its figure proves the WebGPU path runs, not what a GPU does.
 */
import { resolve } from 'node:path';
import { launchChromium } from '../test/support/browser.ts';
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

/** Runs the browser figures for each corpus size and prints them with `print` (naive = the page's triple loop). */
export async function runBrowserBench(sizes: number[], dim: number, print: (title: string, gmac: number, rows: Row[], baseline: number) => void): Promise<void> {
  const { build } = await import('vite');
  await build({
    configFile: false,
    root: REPO_ROOT,
    logLevel: 'error',
    build: {
      outDir: resolve(REPO_ROOT, BUNDLE_DIR),
      emptyOutDir: true,
      target: 'es2022',
      lib: { entry: resolve(REPO_ROOT, 'test/browser/scoring-entry.ts'), formats: ['es'], fileName: 'scoring-entry' },
    },
  });
  const server = await startServer({ root: REPO_ROOT });
  const browser = await launchChromium();
  try {
    const page = await browser.newPage();
    page.on('pageerror', (err) => console.error(`[page error] ${err.message}`));
    await page.goto(`${server.url}/test/browser/harness.html`);
    for (const count of sizes) {
      // A string, not a function: tsx would wrap a function's inner closures in helpers the page lacks.
      const result = (await page.evaluate(`(${PAGE_SCRIPT})(${JSON.stringify({ url: `/${BUNDLE_DIR}/scoring-entry.js`, count, dim })})`)) as PageResult;
      const gmac = (32 * result.tokens * dim) / 1e9;
      const rows = result.rows.map((r) => (r.name === 'library CPU kernel' ? { ...r, name: `library CPU kernel (${result.kernel})` } : r));
      print(`Chromium, ${count} documents, ${result.tokens} tokens (x naive = vs plain JS in the page)`, gmac, rows, result.naiveMs);
    }
  } finally {
    await browser.close();
    await server.close();
  }
}
