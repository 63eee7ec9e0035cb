/**
 * MaxSim speed: 1k and 10k documents of 64-256 tokens, a 32-token query, dim 128, every stored
 * precision. Figures, all from this one run:
 * - naive: the reference triple loop (`maxSim` of ../src/score/cpu.ts, fp32, one document at a time);
 * - plain JS: the oracle `maxSimShard` (typed arrays, unrolled, per precision);
 * - wasm-simd / wasm-relaxed-simd: the library's CPU kernels (../src/score/simd.ts), per precision;
 * - in Chromium (when it is installed): the same kernels in the browser, and the WebGPU shader on
 *   the adapter there (SwiftShader on a machine without a GPU: it proves the path, not GPU speed).
 * GMAC = query tokens x document tokens x dim / 1e9; GMAC/s = GMAC / seconds. Times are the best
 * of a few runs after one warm-up run (naive: one run after a warm-up at 1k, one cold run at 10k). Shared machines are noisy: read ratios.
 *
 *   npm run bench -- maxsim
 *   node --import tsx bench/maxsim.bench.ts --quick     (the 1k corpus only)
 */
import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { maxSim, maxSimShard } from '../src/score/cpu.ts';
import { loadMaxSimKernel, wasmSimdSupported, type MaxSimKernel } from '../src/score/simd.ts';
import { VECTOR_PRECISIONS } from '../src/store/precision.ts';
import type { TokenMatrix } from '../src/types.ts';
import { mulberry32 } from '../test/support/rng.ts';
import { benchCorpus, shardOf } from '../test/support/shards.ts';
import { chromiumPath } from '../test/support/browser.ts';
import { runBrowserBench } from './maxsim-browser.ts';

const RELAXED_FLAG = '--experimental-wasm-relaxed-simd';

// Node 20 keeps relaxed SIMD behind a flag (browsers ship it): re-run with the flag so that both
// kernels are measured in one process.
if (!wasmSimdSupported(true) && !process.execArgv.includes(RELAXED_FLAG)) {
  const child = spawnSync(process.execPath, [RELAXED_FLAG, ...process.execArgv, ...process.argv.slice(1)], { stdio: 'inherit' });
  process.exit(child.status ?? 1);
}

const DIM = 128;
const quick = process.argv.includes('--quick');
const sizes = quick ? [1000] : [1000, 10000];

/** Best time of `runs` runs after a warm-up; with 0 runs, the time of a single cold run. */
function best(runs: number, fn: () => void): number {
  if (runs === 0) {
    const t0 = performance.now();
    fn();
    return performance.now() - t0;
  }
  fn();
  let min = Infinity;
  for (let i = 0; i < runs; i++) {
    const t0 = performance.now();
    fn();
    min = Math.min(min, performance.now() - t0);
  }
  return min;
}

interface Row {
  name: string;
  precision: string;
  ms: number;
}

function print(title: string, gmac: number, rows: Row[], baseline: number): void {
  console.log(`\n${title}  (${gmac.toFixed(2)} GMAC per query)`);
  const width = Math.max(46, ...rows.map((r) => r.name.length + 2));
  console.log(`${'kernel'.padEnd(width)}${'precision'.padEnd(11)}${'ms'.padStart(10)}${'GMAC/s'.padStart(9)}${'x naive'.padStart(9)}`);
  for (const r of rows) {
    console.log(`${r.name.padEnd(width)}${r.precision.padEnd(11)}${r.ms.toFixed(1).padStart(10)}${(gmac / (r.ms / 1000)).toFixed(2).padStart(9)}${(baseline / r.ms).toFixed(1).padStart(9)}`);
  }
}

function naive(query: TokenMatrix, docs: TokenMatrix[]): void {
  for (const d of docs) maxSim(query, d);
}

const kernels: MaxSimKernel[] = [await loadMaxSimKernel(DIM, { relaxed: false })];
if (wasmSimdSupported(true)) kernels.push(await loadMaxSimKernel(DIM, { relaxed: true }));
console.log(`Node ${process.version}; kernels: ${kernels.map((k) => k.name).join(', ')}; dim ${DIM}, 32-token query, documents of 64-256 tokens`);

let worstRatio = Infinity;
for (const count of sizes) {
  const next = mulberry32(count);
  const { docs, query } = benchCorpus(count, DIM, next);
  const tokens = docs.reduce((n, d) => n + d.tokens, 0);
  const gmac = (query.tokens * tokens * DIM) / 1e9;
  const runs = count >= 10000 ? 2 : 4;
  const naiveMs = best(count >= 10000 ? 0 : 1, () => naive(query, docs));
  const rows: Row[] = [{ name: 'naive triple loop (baseline)', precision: 'fp32', ms: naiveMs }];
  for (const precision of VECTOR_PRECISIONS) {
    const shard = shardOf(docs, DIM, precision);
    const out = new Float32Array(count);
    rows.push({ name: 'plain JS maxSimShard', precision, ms: best(runs, () => maxSimShard(query, shard, out)) });
    for (const k of kernels) {
      const ms = best(runs, () => k.scoreShard(query, shard, out));
      rows.push({ name: k.name, precision, ms });
      worstRatio = Math.min(worstRatio, naiveMs / ms);
    }
  }
  print(`Node, ${count} documents, ${tokens} tokens`, gmac, rows, naiveMs);
}
console.log(`\nslowest library kernel vs naive: ${worstRatio.toFixed(1)}x (the target is at least 4x)`);

if (existsSync(chromiumPath())) {
  await runBrowserBench(sizes, DIM, print);
} else {
  console.log(`\nChromium not found at ${chromiumPath()}: the browser and WebGPU figures are skipped.`);
}
