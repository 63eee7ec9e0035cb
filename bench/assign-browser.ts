/**
 * Code assignment per million tokens in Chromium, CPU against WebGPU, on one codec:
 * `npx tsx bench/assign-browser.ts [--tokens=16384] [--centroids=1024,4096]`.
 *
 * The CPU rows are what the engine runs (src/score/train.ts `assignCodes`, the WASM SIMD block
 * kernel): the two-level tree (a token's code is the nearest fine centroid of its 2 nearest coarse
 * clusters) and, for comparison, flat (every centroid). The WebGPU row is what the existing WGSL
 * can do (src/score/compressed.wgsl): `centroid_scores` over a block of tokens as if they were
 * query rows, then `top_centroids` with nprobe 1, i.e. flat assignment, in blocks of 4,096 tokens.
 * The engine does not assign on the GPU. Agreement columns: the share of tokens given the same
 * code as CPU flat. Without a GPU the adapter is SwiftShader, a CPU emulation: its figure shows
 * the path runs, not what a GPU does. Training (k-means) is not timed here: its iterations are
 * this assignment over the sample plus means on the CPU.
 */
import { launchChromium } from '../test/support/browser.ts';
import { buildPageBundle } from '../test/support/scoring-bundle.ts';
import { startServer } from '../test/support/server.ts';
import { REPO_ROOT } from '../test/support/shared.ts';

const BUNDLE_DIR = '.cache/assign-bench';

const arg = (name: string, fallback: string): string => process.argv.find((a) => a.startsWith(`--${name}=`))?.slice(name.length + 3) ?? fallback;
const tokens = Number(arg('tokens', '16384'));
const centroidCounts = arg('centroids', '1024,4096').split(',').map(Number);
const dim = 128;

/** Runs in the page (a string: tsx would wrap a function's closures in helpers the page lacks). */
const PAGE_SCRIPT = `async ({ url, tokens, centroids, dim }) => {
  const lib = await import(url);
  const next = lib.mulberry32(centroids);
  const data = lib.randomMatrix(tokens, dim, next).data;
  const trained = await lib.trainCodec(data, tokens, dim, { nbits: 2, centroids, seed: 1 });
  const codec = trained.codec;
  const time = async (fn) => { const t0 = performance.now(); await fn(); return performance.now() - t0; };
  const tree = new Uint16Array(tokens);
  const flat = new Uint16Array(tokens);
  lib.assignCodes(data, 0, 256, dim, codec.centroids, trained.tree, tree); // warm-up (compiles the kernel)
  const treeMs = await time(() => lib.assignCodes(data, 0, tokens, dim, codec.centroids, trained.tree, tree));
  const flatMs = await time(() => lib.assignCodes(data, 0, tokens, dim, codec.centroids, null, flat));
  const device = await lib.requestScoringDevice();
  const index = await lib.CompressedGpuIndex.create(device, codec);
  const gpu = new Uint32Array(tokens);
  const block = 4096;
  const assign = async (from, n) => {
    const rows = { data: data.subarray(from * dim, (from + n) * dim), tokens: n, dim, ids: new Int32Array(n) };
    const s = await index.centroidScores(rows);
    try { gpu.set(await index.topCentroids(s, 1), from); } finally { s.release(); }
  };
  await assign(0, Math.min(block, tokens)); // warm-up (compiles the pipelines)
  const gpuMs = await time(async () => { for (let from = 0; from < tokens; from += block) await assign(from, Math.min(block, tokens - from)); });
  const same = (a, b) => { let n = 0; for (let i = 0; i < tokens; i++) if (a[i] === b[i]) n++; return n / tokens; };
  const info = (await navigator.gpu.requestAdapter())?.info;
  index.destroy();
  device.destroy();
  return { treeMs, flatMs, gpuMs, treeAgree: same(tree, flat), gpuAgree: same(gpu, flat), adapter: info ? (info.description || info.architecture || info.vendor || 'unknown') : 'none' };
}`;

async function main(): Promise<void> {
  const url = await buildPageBundle('bench/assign-entry.ts', BUNDLE_DIR, true);
  const server = await startServer({ root: REPO_ROOT });
  const browser = await launchChromium();
  try {
    const page = await browser.newPage();
    page.on('pageerror', (err) => console.error(`[page error] ${err.message}`));
    await page.goto(`${server.url}/test/browser/harness.html`);
    console.log(`Code assignment in Chromium, ${tokens} tokens of dim ${dim} (s per million tokens; agreement = same code as CPU flat)`);
    console.log(`${'centroids'.padEnd(11)}${'CPU tree'.padStart(10)}${'CPU flat'.padStart(10)}${'WebGPU flat'.padStart(13)}${'tree agree'.padStart(12)}${'GPU agree'.padStart(11)}  adapter`);
    for (const centroids of centroidCounts) {
      const r = (await page.evaluate(`(${PAGE_SCRIPT})(${JSON.stringify({ url, tokens, centroids, dim })})`)) as { treeMs: number; flatMs: number; gpuMs: number; treeAgree: number; gpuAgree: number; adapter: string };
      const perM = (ms: number) => ((ms / tokens) * 1e6 / 1000).toFixed(1);
      console.log(`${String(centroids).padEnd(11)}${perM(r.treeMs).padStart(10)}${perM(r.flatMs).padStart(10)}${perM(r.gpuMs).padStart(13)}${r.treeAgree.toFixed(3).padStart(12)}${r.gpuAgree.toFixed(3).padStart(11)}  ${r.adapter}`);
    }
  } finally {
    await browser.close();
    await server.close();
  }
}

await main();
