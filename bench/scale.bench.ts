/**
 * The compressed index against exhaustive fp32 MaxSim on the same data, in one run:
 * bytes per original token (codes, residuals, centroids, buckets, slots and inverted lists
 * amortised; ids excluded) for nbits 1/2/4 and pool factor 1/2; top-10 overlap and nDCG@10
 * against exhaustive fp32 (the exhaustive top 10 as the relevant set, binary gain); median query
 * latency, compressed vs exhaustive, on one CPU thread; and indexing cost (training and code
 * assignment per million tokens).
 *
 *   npx tsx bench/scale.bench.ts [--tokens=100000] [--1m] [--10m] [--sizes=100000,1000000] [--queries=40] [--no-cranfield] [--cranfield-queries=100] [--cranfield-nbits4] [--no-cache] [--default-only] [--breakdown-only [--breakdown=2:1,1:1,2:2]] [--candidates=N]
 *
 * Trained synthetic indexes are cached in .cache/trained (bench/trained-cache.ts), so a second run
 * measures search only; `--no-cache` trains (and times the training) every time.
 *   (or: npm run bench -- scale)
 *
 * The first size runs every (nbits, pool) pair (up to 1M tokens, unless --default-only); larger sizes run nbits 2, pool 1. Each size also
 * prints the resident bytes by part and the process memory (rss, JS heap, ArrayBuffers): the
 * fp32 store's full vectors are resident beside the codes. `--breakdown-only` trains nbits 2, pool 1
 * over an fp16 store (half the memory) and prints only the bytes by part: no baseline, no queries
 * (`--breakdown=nbits:pool,...` for other configs).
 *
 * Data: the synthetic clustered collection of test/fixtures/clustered.ts (documents of 64-256
 * tokens, queries of 8-32 tokens), streamed into the store in batches of 256 documents; and
 * Cranfield encoded by the contextual test model (exhaustive vs compressed through the public
 * API), where ../shared is present. Node only; the exhaustive baseline is the project's WASM SIMD
 * kernel over an fp32 memory store, one thread. Timings on a shared machine are noisy: read them
 * as ratios against the exhaustive baseline of the same run.
 */
import { codecBytes, CompressedIndex, type ResolvedCompression } from '../src/compression.ts';
import { centroidCountFor } from '../src/score/train.ts';
import { createScorer, type Scorer } from '../src/score/scorer.ts';
import { MemoryStore } from '../src/store/memory.ts';
import { poolTokens } from '../src/store/pooling.ts';
import { centroidCount } from '../src/store/residual.ts';
import type { ShardView } from '../src/store/types.ts';
import type { TokenMatrix } from '../src/types.ts';
import { resolve } from 'node:path';
import { createSearch } from '../src/index.ts';
import { clusteredCollection, type ClusteredCollection } from '../test/fixtures/clustered.ts';
import { makeTestModels } from '../test/fixtures/make-models.ts';
import { HAVE_SHARED, REPO_ROOT, TOKENIZER_DIR } from '../test/support/shared.ts';
import { cranfieldMatrices } from './compressed-stages.ts';
import { openTrained } from './trained-cache.ts';
import { mean, ndcgAtK } from './metrics.ts';

const arg = (name: string, fallback: number) => {
  const a = process.argv.find((x) => x.startsWith(`--${name}=`));
  return a ? Number(a.slice(name.length + 3)) : fallback;
};
const BASE_TOKENS = arg('tokens', 100_000);
const QUERIES = arg('queries', 40);
const CRANFIELD_QUERIES = arg('cranfield-queries', 100);
const sizesArg = process.argv.find((x) => x.startsWith('--sizes='));
const SIZES = sizesArg
  ? sizesArg.slice('--sizes='.length).split(',').map(Number)
  : [BASE_TOKENS, ...(process.argv.includes('--1m') ? [1_000_000] : []), ...(process.argv.includes('--10m') ? [10_000_000] : [])];
const BATCH = 256;
const BREAKDOWN_ONLY = process.argv.includes('--breakdown-only');
/** `--breakdown-only` configs, `nbits:pool` pairs (default `2:1`), e.g. `--breakdown=2:1,1:1,2:2`. */
const BREAKDOWN_CONFIGS = (process.argv.find((x) => x.startsWith('--breakdown='))?.slice('--breakdown='.length) ?? '2:1')
  .split(',')
  .map((pair) => pair.split(':').map(Number) as [ResolvedCompression['nbits'], 1 | 2 | 3]);
/** `--candidates=N`: survivors of centroid interaction per query instead of the default knob (both data sets). */
const CANDIDATES = arg('candidates', 0);
const knobs = CANDIDATES > 0 ? { candidates: CANDIDATES } : {};

function median(values: number[]): number {
  const s = [...values].sort((a, b) => a - b);
  return s[Math.floor(s.length / 2)]!;
}

function mib(bytes: number): string {
  return (bytes / 2 ** 20).toFixed(0);
}

interface Built {
  store: MemoryStore;
  index: CompressedIndex;
  originalTokens: number;
  trainMs: number;
}

async function build(data: ClusteredCollection, options: ResolvedCompression): Promise<Built> {
  const own = new MemoryStore({ precision: BREAKDOWN_ONLY ? 'fp16' : 'fp32' });
  let originalTokens = 0;
  for (const batch of data.batches(BATCH)) {
    await own.put(
      batch.map((d) => {
        originalTokens += d.embedding.tokens;
        return { id: d.id, matrix: options.poolFactor > 1 ? poolTokens(d.embedding, options.poolFactor) : d.embedding };
      }),
    );
  }
  // One training over the whole collection (the streamed path re-trains at 4x growth), cached in
  // .cache/trained (bench/trained-cache.ts) unless --no-cache: trainMs is then 0.
  const index = new CompressedIndex(options);
  if (process.argv.includes('--no-cache')) {
    const t = performance.now();
    await index.open(own);
    return { store: own, index, originalTokens, trainMs: performance.now() - t };
  }
  // The centroid count is in the key (besides the training code's hash): a change of the count
  // rule never hands back a codec of the old count.
  const live = (await own.stats()).tokens;
  const key = `synthetic-${data.tokens}-seed7-nbits${options.nbits}${options.poolFactor > 1 ? `-pool${options.poolFactor}` : ''}-c${Math.min(centroidCountFor(live), live)}`;
  const { trainMs } = await openTrained(index, own, key);
  return { store: own, index, originalTokens, trainMs };
}

function exactOver(scorer: Scorer, store: MemoryStore) {
  let run = 0;
  return async (q: TokenMatrix, ids: string[], k: number) => {
    const ms = await Promise.all(ids.map((id) => store.matrix(id)));
    const offsets = new Uint32Array(ids.length + 1);
    ms.forEach((m, i) => (offsets[i + 1] = offsets[i]! + m!.tokens));
    const vectors = new Float32Array(offsets[ids.length]! * q.dim);
    ms.forEach((m, i) => vectors.set(m!.data, offsets[i]! * q.dim));
    const shard: ShardView = { key: `r${run++}`, dim: q.dim, docIds: ids, offsets, precision: 'fp32', vectors };
    return scorer.rank(q, async function* () {
      yield shard;
    }, k);
  };
}

async function main(): Promise<void> {
  const scorer = await createScorer({ scoring: 'cpu', threads: 1 });
  console.log(`scale bench: synthetic clustered collection (test/fixtures/clustered.ts), dim 128, one CPU thread (Node ${process.version})`);
  for (const size of SIZES) {
    const data = clusteredCollection(size, { seed: 7 });
    const queries = data.queries(QUERIES, 3).map((q) => q.embedding);
    const tokens = data.tokens;
    console.log(`\n== ${data.documents} documents, ${tokens} tokens, ${queries.length} queries of 8-32 tokens ==`);
    if (BREAKDOWN_ONLY) {
      for (const [nbits, pool] of BREAKDOWN_CONFIGS) {
        const built = await build(data, { nbits, poolFactor: pool, rerank: true });
        console.log(`training + assignment, nbits ${nbits} pool ${pool}: ${(built.trainMs / 1000).toFixed(1)} s (${built.index.stats().centroids} centroids; fp16 store, no queries)`);
        printBreakdown(nbits, pool, built);
      }
      continue;
    }
    // Exhaustive fp32 baseline on the same data.
    const base = await build(data, { nbits: 2, poolFactor: 1, rerank: true });
    const truth: { ids: string[]; ms: number }[] = [];
    for (const q of queries) {
      const t = performance.now();
      const top = await scorer.rank(q, () => base.store.shards(), 10);
      truth.push({ ids: top.map((h) => h.id), ms: performance.now() - t });
    }
    const exhaustiveMs = median(truth.map((t) => t.ms));
    const fp32Bytes = (await base.store.stats()).vectorBytes;
    console.log(`exhaustive fp32: ${(fp32Bytes / tokens).toFixed(0)} B/token, median ${exhaustiveMs.toFixed(1)} ms/query (baseline)`);
    const stats = base.index.stats();
    console.log(base.trainMs === 0 ? `training + assignment, nbits 2: codes read from .cache/trained (${stats.centroids} centroids; --no-cache to time the training)` : `training + assignment, nbits 2: ${(base.trainMs / 1000).toFixed(1)} s for ${tokens} tokens = ${((base.trainMs / tokens) * 1000).toFixed(0)} s per million tokens (${stats.centroids} centroids)`);
    const rows: string[] = ['| nbits | pool | B/token (per original token) | rerank | top-10 overlap | nDCG@10 | median ms | vs exhaustive | median candidates |', '| ---: | ---: | ---: | --- | ---: | ---: | ---: | ---: | ---: |'];
    const configs: [ResolvedCompression['nbits'], 1 | 2][] = size === SIZES[0] && size <= 1_000_000 && !process.argv.includes('--default-only') ? [[2, 1], [1, 1], [4, 1], [2, 2], [1, 2]] : [[2, 1]];
    const breakdowns: [number, number, Built][] = [];
    for (const [nbits, pool] of configs) {
      const built = nbits === 2 && pool === 1 ? base : await build(data, { nbits, poolFactor: pool, rerank: true });
      breakdowns.push([nbits, pool, built]);
      if (built !== base) console.log(`training + assignment, nbits ${nbits} pool ${pool}: ${built.trainMs === 0 ? 'read from .cache/trained' : `${(built.trainMs / 1000).toFixed(1)} s`} (${built.index.stats().centroids} centroids)`);
      const bpt = built.index.stats().codeBytes / built.originalTokens;
      for (const rerank of [true, false]) {
        const exact = exactOver(scorer, built.store);
        const overlaps: number[] = [];
        const ndcgs: number[] = [];
        const times: number[] = [];
        const candidates: number[] = [];
        for (let i = 0; i < queries.length; i++) {
          const q = queries[i]!;
          const t = performance.now();
          const hits = await built.index.search(q, 10, { rerank, ...knobs }, (ids) => exact(q, ids, 10));
          times.push(performance.now() - t);
          candidates.push(built.index.lastQuery!.candidates.length);
          const want = new Set(truth[i]!.ids);
          overlaps.push(hits.filter((h) => want.has(h.id)).length / 10);
          ndcgs.push(ndcgAtK(hits.map((h) => h.id), new Map(truth[i]!.ids.map((id) => [id, 1])), 10));
        }
        const ms = median(times);
        rows.push(`| ${nbits} | ${pool} | ${bpt.toFixed(1)} | ${rerank} | ${mean(overlaps).toFixed(3)} | ${mean(ndcgs).toFixed(3)} | ${ms.toFixed(1)} | ${(exhaustiveMs / ms).toFixed(1)}x faster | ${median(candidates)} |`);
        console.log(`row: ${rows[rows.length - 1]!}`);
      }
    }
    console.log(rows.join('\n'));
    for (const [nbits, pool, built] of breakdowns) printBreakdown(nbits, pool, built);
    const mem = process.memoryUsage();
    console.log(`process memory after this size: rss ${mib(mem.rss)} MiB, JS heap ${mib(mem.heapUsed)} MiB, ArrayBuffers ${mib(mem.arrayBuffers)} MiB; of which the fp32 store's full vectors ${mib(fp32Bytes)} MiB (every store and trained index of this size included)`);
  }
  scorer.dispose();
  if (!process.argv.includes('--no-cranfield')) await cranfield();
}

/** Resident bytes per original token by part; the codec part counts every copy of its centroids (../src/compression.ts codecBytes). */
function printBreakdown(nbits: number, pool: number, built: Built): void {
  const g = built.index.generation!;
  const b = g.codes.breakdown();
  const codec = g.trained.codec;
  const tree = g.trained.tree;
  const per = (n: number) => (n / built.originalTokens).toFixed(2);
  const all = codecBytes(g.trained);
  const total = b.codes + b.residuals + b.slots + b.lists + all;
  console.log(
    `bytes per original token, nbits ${nbits} pool ${pool}: codes ${per(b.codes)}, residuals ${per(b.residuals)}, codec ${per(all)} (${centroidCount(codec)} x ${codec.dim} fp16 centroids ${per(codec.centroids.byteLength)}, tree of ${tree.starts.length - 1} coarse fp32 + its kernel table ${per(tree.coarse.byteLength * 2 + tree.starts.byteLength)}, buckets), inverted lists ${per(b.lists)}, slots ${per(b.slots)}; total ${per(total)} (codeBytes ${per(built.index.stats().codeBytes)}); codes resident ${mib(built.index.stats().codeBytes)} MiB`,
  );
}

/** Cranfield through the public API with the contextual test model: compressed vs exhaustive: true on one index. */
async function cranfield(): Promise<void> {
  if (!HAVE_SHARED) {
    console.log('\nCranfield: skipped (../shared with the tokenizer and Cranfield is absent)');
    return;
  }
  const models = await makeTestModels(resolve(REPO_ROOT, '.cache/test-models'), TOKENIZER_DIR);
  const t = performance.now();
  const col = await cranfieldMatrices();
  const matrices = col.docs.map((d) => d.embedding);
  const indexable = col.docs;
  const queryMatrices = col.queries.slice(0, CRANFIELD_QUERIES);
  const tokens = matrices.reduce((n, m) => n + m.tokens, 0);
  console.log(`\n== Cranfield, contextual test model: ${indexable.length} documents, ${tokens} tokens, ${queryMatrices.length} queries (encoded or read from .cache/cranfield-contextual.bin in ${((performance.now() - t) / 1000).toFixed(0)} s) ==`);
  const rows = ['| nbits | rerank | centroids | B/token | top-10 overlap | nDCG@10 vs exhaustive fp32 | median ms | exhaustive median ms |', '| ---: | --- | ---: | ---: | ---: | ---: | ---: | ---: |'];
  for (const [nbits, reranks] of process.argv.includes('--cranfield-nbits4') ? ([[2, [true, false]], [4, [false]]] as const) : ([[2, [true, false]]] as const)) {
    for (const rerank of reranks) {
      const s = await createSearch({ model: models.contextualTjs, worker: false, device: 'wasm', dtype: 'fp32', precision: 'fp32', scoring: 'cpu', scoringThreads: 1, compression: { nbits, rerank } });
      for (let i = 0; i < matrices.length; i += BATCH) await s.addEmbeddings(matrices.slice(i, i + BATCH).map((m, j) => ({ id: indexable[i + j]!.id, embedding: m })));
      // The last batches may have started a background re-training (4x growth): measure the settled index.
      while ((await s.stats()).compression!.state === 'training') await new Promise((r) => setTimeout(r, 200));
      const stats = await s.stats();
      const overlaps: number[] = [];
      const ndcgs: number[] = [];
      const times: number[] = [];
      const base: number[] = [];
      for (const q of queryMatrices) {
        let t0 = performance.now();
        const want = await s.searchEmbedding(q, { k: 10, exhaustive: true });
        base.push(performance.now() - t0);
        t0 = performance.now();
        const got = await s.searchEmbedding(q, { k: 10, ...knobs });
        times.push(performance.now() - t0);
        const set = new Set(want.map((h) => h.id));
        overlaps.push(got.filter((h) => set.has(h.id)).length / 10);
        ndcgs.push(ndcgAtK(got.map((h) => h.id), new Map(want.map((h) => [h.id, 1])), 10));
      }
      rows.push(`| ${nbits} | ${rerank} | ${stats.compression!.centroids} | ${(stats.compression!.codeBytes / stats.tokens).toFixed(1)} | ${mean(overlaps).toFixed(3)} | ${mean(ndcgs).toFixed(3)} | ${median(times).toFixed(1)} | ${median(base).toFixed(1)} |`);
      await s.close();
    }
  }
  console.log(rows.join('\n'));
}

await main();
