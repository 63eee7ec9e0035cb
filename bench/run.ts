/**
 * `npm run bench [-- name ...]`: runs the project's benchmarks one after another, each in its own
 * process so that one's memory and JIT state do not colour the next. A benchmark is a file
 * `bench/<name>.bench.ts`; it prints its own table, every figure beside its baseline from the
 * same run. Figures are noisy on shared machines: read them as ratios.
 */
import { spawnSync } from 'node:child_process';
import { readdirSync } from 'node:fs';
import { resolve } from 'node:path';

const dir = import.meta.dirname;
const all = readdirSync(dir)
  .filter((f) => f.endsWith('.bench.ts'))
  .map((f) => f.slice(0, -'.bench.ts'.length))
  .sort();
const wanted = process.argv.slice(2).filter((a) => !a.startsWith('-'));
const unknown = wanted.filter((w) => !all.includes(w));
if (unknown.length) {
  console.error(`Unknown benchmark(s): ${unknown.join(', ')}. Available: ${all.join(', ')}.`);
  process.exit(2);
}
let failed = 0;
for (const name of wanted.length ? wanted : all) {
  console.log(`\n=== bench: ${name} ===`);
  const run = spawnSync(process.execPath, ['--import', 'tsx', resolve(dir, `${name}.bench.ts`)], { stdio: 'inherit' });
  if (run.status !== 0) {
    failed++;
    console.error(`bench ${name} failed (exit ${String(run.status)})`);
  }
}
process.exit(failed ? 1 : 0);
