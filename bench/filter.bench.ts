/**
 * Filtered search: 10k documents (fp16, 24-40 tokens of dim 128) in a memory store, one CPU
 * thread, a 32-token query. The same query with no filter (the baseline, same run) and with a
 * filter that keeps 1% / 10% / 50% of the documents; every filtered figure includes compiling the
 * filter and building the allowed set from the store's metadata, as the engine does per query.
 *
 *   npx tsx bench/filter.bench.ts        (or: npm run bench -- filter)
 *
 * The issue's bar: a filter keeping 1% searches at least 10x faster than no filter. The last line
 * says whether it held (the exit status stays 0: timings on a shared machine are noisy).
 */
import { allowedIds, compileFilter, type Filter } from '../src/filter/index.ts';
import { CpuScorer } from '../src/score/scorer.ts';
import { MemoryStore } from '../src/store/memory.ts';
import { mulberry32 } from '../test/support/rng.ts';
import { randomMatrix } from '../test/support/shards.ts';

const DOCS = 10_000;
const DIM = 128;
const K = 10;
const next = mulberry32(2024);
const store = new MemoryStore({ precision: 'fp16' });
for (let start = 0; start < DOCS; start += 1000) {
  await store.put(
    Array.from({ length: 1000 }, (_, j) => {
      const i = start + j;
      return { id: `doc${i}`, matrix: randomMatrix(24 + Math.floor(next() * 17), DIM, next), metadata: { bucket: i % 100, tag: i % 10 === 0 ? 'ten' : 'other', year: 2000 + (i % 2) } };
    }),
  );
}
const query = randomMatrix(32, DIM, next);
const scorer = new CpuScorer(undefined);

async function timeOf(filter: Filter | undefined): Promise<{ ms: number; hits: number }> {
  const run = async () => {
    const allowed = filter ? allowedIds(compileFilter(filter), await store.allMetadata()) : undefined;
    return scorer.rank(query, () => store.shards(), K, allowed);
  };
  await run();
  await run();
  const times: number[] = [];
  let hits = 0;
  for (let i = 0; i < 7; i++) {
    const t0 = performance.now();
    hits = (await run()).length;
    times.push(performance.now() - t0);
  }
  times.sort((a, b) => a - b);
  return { ms: times[3]!, hits };
}

const cases: [string, Filter | undefined][] = [
  ['no filter (baseline)', undefined],
  ['1%   { bucket: 7 }', { bucket: 7 }],
  ['10%  { tag: "ten" }', { tag: 'ten' }],
  ['50%  { year: { $gte: 2001 } }', { year: { $gte: 2001 } }],
];
const stats = await store.stats();
console.log(`${stats.documents} documents, ${stats.tokens} tokens (fp16, dim ${DIM}), 32-token query, k ${K}, CPU kernel, 1 thread; median of 7`);
console.log(`${'case'.padEnd(34)} ${'ms'.padStart(9)} ${'speed-up'.padStart(9)} hits`);
let base = 0;
let onePercent = 0;
for (const [name, filter] of cases) {
  const { ms, hits } = await timeOf(filter);
  if (!filter) base = ms;
  const ratio = base / ms;
  if (name.startsWith('1%')) onePercent = ratio;
  console.log(`${name.padEnd(34)} ${ms.toFixed(2).padStart(9)} ${`${ratio.toFixed(1)}x`.padStart(9)} ${hits}`);
}
console.log(`1% filter vs no filter: ${onePercent.toFixed(1)}x ${onePercent >= 10 ? '(>= 10x: holds)' : '(BELOW the 10x bar)'} [kernel ${scorer.kernel}]`);
scorer.dispose();
