/**
 * Where the compressed index loses the exhaustive top 10: recall of the exhaustive fp32 top 10
 * after each stage (candidates from the inverted lists, centroid-interaction survivors, residual
 * top `depth`, the final top 10), for a grid of knobs, on Cranfield encoded by the contextual
 * test model (cached in .cache/cranfield-contextual.bin after the first run) or on the synthetic
 * clustered collection.
 *
 *   npx tsx bench/compressed-stages.ts [--data=cranfield|synthetic] [--tokens=261000] [--queries=100] [--nbits=2] [--incremental] [--nprobe=2,4] [--keep=64,256]
 *
 * `--incremental` builds the index as the engine does from batches of 256 documents (trained at
 * 4,096 tokens, re-trained at 4x growth), so the codec may be trained on a prefix of the collection.
 *
 * A diagnostic, not part of `npm run bench`: it prints a table per knob setting.
 *
 * `--profile` instead times one query's stages (median over the queries, default knobs unless
 * `--nprobe=`, `--keep=` give one value each; `--depth=32,64,128` reports the top-10 overlap
 * after each rerank depth and times the first): query x centroids, probes, candidate
 * union, centroid interaction (+ top `keep`), residual MaxSim of the survivors, and the exact
 * rerank of the residual top `depth` (rows gathered from the fp32 store and scored by the WASM
 * kernel, as the engine's memory store does), each as a share of the whole and against the
 * exhaustive fp32 median of the same run:
 *
 *   npx tsx bench/compressed-stages.ts --profile --data=synthetic --tokens=1000000 --queries=20
 *
 * `--kernels=js` times the plain-JS centroid interaction and residual stages instead of the WASM
 * SIMD ones (src/score/interaction-simd.ts, src/score/residual-simd.ts), for a ratio in one run.
 * The synthetic index is trained once and cached in .cache/trained/ (bench/trained-cache.ts).
 */
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { resolve } from 'node:path';
import { CompressedIndex, defaultKnobs } from '../src/compression.ts';
import { simdCompressedKernels } from '../src/score/centroid-simd.ts';
import { wasmCompressedKernels } from '../src/score/compressed-stages.ts';
import { candidateSlots, probeCentroids, topIndexes } from '../src/score/compressed.ts';
import { createScorer } from '../src/score/scorer.ts';
import { MemoryStore } from '../src/store/memory.ts';
import { centroidCount } from '../src/store/residual.ts';
import type { TokenMatrix } from '../src/types.ts';
import { createSearch } from '../src/index.ts';
import { clusteredCollection } from '../test/fixtures/clustered.ts';
import { loadCranfield } from '../test/fixtures/cranfield.ts';
import { makeTestModels } from '../test/fixtures/make-models.ts';
import { CRANFIELD_DIR, HAVE_SHARED, REPO_ROOT, TOKENIZER_DIR } from '../test/support/shared.ts';
import { matricesShard } from '../src/store/shards.ts';
import type { Scorer } from '../src/score/scorer.ts';
import type { ResidualCodec } from '../src/store/residual.ts';
import type { CodeSet } from '../src/store/codes.ts';
import { openTrained } from './trained-cache.ts';

const arg = (name: string, fallback: string) => {
  const a = process.argv.find((x) => x.startsWith(`--${name}=`));
  return a ? a.slice(name.length + 3) : fallback;
};
const DATA = arg('data', 'cranfield');
const QUERIES = Number(arg('queries', '100'));
const NBITS = Number(arg('nbits', '2')) as 1 | 2 | 4;
/** `--kernels=js` times the plain-JS centroid interaction and residual stages (SIMD query x centroids), the default WASM SIMD ones otherwise. */
const KERNELS = arg('kernels', 'wasm') === 'js' ? simdCompressedKernels : wasmCompressedKernels;

interface Collection {
  docs: { id: string; embedding: TokenMatrix }[];
  queries: TokenMatrix[];
}

function pack(ms: TokenMatrix[]): Buffer {
  const head = new Uint32Array([ms.length, ms[0]!.dim, ...ms.map((m) => m.tokens)]);
  const parts: Buffer[] = [Buffer.from(head.buffer)];
  for (const m of ms) parts.push(Buffer.from(m.data.buffer, m.data.byteOffset, m.data.byteLength));
  return Buffer.concat(parts);
}

function unpack(buf: Buffer, at: number): { ms: TokenMatrix[]; end: number } {
  const view = (o: number, n: number) => new Uint32Array(buf.buffer.slice(buf.byteOffset + o, buf.byteOffset + o + 4 * n));
  const [count, dim] = view(at, 2);
  const lengths = view(at + 8, count!);
  let o = at + 8 + 4 * count!;
  const ms: TokenMatrix[] = [];
  for (const tokens of lengths) {
    const data = new Float32Array(buf.buffer.slice(buf.byteOffset + o, buf.byteOffset + o + tokens * dim! * 4));
    ms.push({ data, tokens, dim: dim!, ids: new Int32Array(tokens) });
    o += tokens * dim! * 4;
  }
  return { ms, end: o };
}

/** Cranfield documents and queries as the contextual test model encodes them (cached). */
export async function cranfieldMatrices(): Promise<Collection & { ids: string[] }> {
  if (!HAVE_SHARED) throw new Error('../shared is absent');
  const { docs, queries } = await loadCranfield(CRANFIELD_DIR);
  const indexable = docs.filter((d) => d.text.trim() !== '');
  const cache = resolve(REPO_ROOT, '.cache/cranfield-contextual.bin');
  let dm: TokenMatrix[];
  let qm: TokenMatrix[];
  if (existsSync(cache)) {
    const buf = readFileSync(cache);
    const a = unpack(buf, 0);
    dm = a.ms;
    qm = unpack(buf, a.end).ms;
  } else {
    const models = await makeTestModels(resolve(REPO_ROOT, '.cache/test-models'), TOKENIZER_DIR);
    const encoder = await createSearch({ model: models.contextualTjs, worker: false, device: 'wasm', dtype: 'fp32' });
    dm = await encoder.encodeDocuments(indexable.map((d) => d.text));
    qm = [];
    for (const q of queries) qm.push(await encoder.encodeQuery(q.text));
    await encoder.close();
    mkdirSync(resolve(REPO_ROOT, '.cache'), { recursive: true });
    writeFileSync(cache, Buffer.concat([pack(dm), pack(qm)]));
  }
  return { docs: dm.map((m, i) => ({ id: indexable[i]!.id, embedding: m })), queries: qm, ids: indexable.map((d) => d.id) };
}

async function main(): Promise<void> {
  // Documents in batches of 256, streamed for the synthetic set (10M tokens are 5 GB at fp32: only the store holds them).
  let batches: () => Iterable<Collection['docs']>;
  let documents: number;
  let tokens: number;
  let allQueries: TokenMatrix[];
  if (DATA === 'cranfield') {
    const col = await cranfieldMatrices();
    batches = function* () {
      for (let i = 0; i < col.docs.length; i += 256) yield col.docs.slice(i, i + 256);
    };
    documents = col.docs.length;
    tokens = col.docs.reduce((n, d) => n + d.embedding.tokens, 0);
    allQueries = col.queries;
  } else {
    const data = clusteredCollection(Number(arg('tokens', '261000')), { seed: 7 });
    batches = () => data.batches(256);
    documents = data.documents;
    tokens = data.tokens;
    allQueries = data.queries(QUERIES, 3).map((q) => q.embedding);
  }
  const queries = allQueries.slice(0, QUERIES);
  const store = new MemoryStore({ precision: 'fp32' });
  const index = new CompressedIndex({ nbits: NBITS, poolFactor: 1, rerank: true });
  const t0 = performance.now();
  if (process.argv.includes('--incremental')) {
    // As the engine builds it from addEmbeddings batches of 256: trained at 4,096 tokens, re-trained at 4x growth.
    for (const docs of batches()) {
      const batch = docs.map((d) => ({ id: d.id, matrix: d.embedding }));
      await store.put(batch);
      await index.update(store, batch.map((d) => d.id));
    }
    await index.settled();
    console.log(`incremental: codec trained for ${index.generation!.trained.trainedTokens} tokens`);
  } else {
    for (const docs of batches()) await store.put(docs.map((d) => ({ id: d.id, matrix: d.embedding })));
    if (DATA === 'cranfield') await index.open(store);
    else console.log(`codes: ${(await openTrained(index, store, `synthetic-${tokens}-seed7-nbits${NBITS}`)).cached ? 'read from .cache/trained' : 'trained and cached'}`);
  }
  const g = index.generation!;
  const codec = g.trained.codec;
  const count = centroidCount(codec);
  console.log(`${DATA}: ${documents} documents, ${tokens} tokens, ${queries.length} queries (mean ${(queries.reduce((n, q) => n + q.tokens, 0) / queries.length).toFixed(1)} tokens); ${count} centroids, trained in ${((performance.now() - t0) / 1000).toFixed(1)} s; defaults ${JSON.stringify(defaultKnobs(tokens, 10))}`);
  const scorer = await createScorer({ scoring: 'cpu', threads: 1 });
  const truth: Set<string>[] = [];
  for (const q of queries) truth.push(new Set((await scorer.rank(q, () => store.shards(), 10)).map((h) => h.id)));
  const codes = g.codes;
  if (process.argv.includes('--profile')) {
    await profile(queries, codec, codes, store, scorer, tokens);
    scorer.dispose();
    return;
  }
  const lists = codes.invertedLists();
  const view = codes.view();
  const k = KERNELS;
  const grid = (arg('nprobe', '2,4,8,16')).split(',').map(Number);
  const keeps = (arg('keep', '64,128,256,512')).split(',').map(Number);
  console.log('| nprobe | candidates (mean) | recall cand | keep | recall CI | recall residual top-keep | recall residual top-10 |');
  console.log('| ---: | ---: | ---: | ---: | ---: | ---: | ---: |');
  for (const nprobe of grid) {
    for (const keep of keeps) {
      let rc = 0;
      let rci = 0;
      let rr = 0;
      let r10 = 0;
      let nc = 0;
      for (let qi = 0; qi < queries.length; qi++) {
        const q = queries[qi]!;
        const want = truth[qi]!;
        const scores = k.centroidScores(q, codec);
        let docs = candidateSlots(lists, probeCentroids(scores, q.tokens, count, nprobe), codes.slots, (s) => codes.live(s));
        nc += docs.length;
        const recall = (slots: ArrayLike<number>) => Array.from(slots).filter((s) => want.has(codes.id(s)!)).length / want.size;
        rc += recall(docs);
        if (docs.length > keep) {
          const ci = new Float32Array(docs.length);
          k.centroidInteraction(scores, q.tokens, count, view, docs, ci);
          docs = Uint32Array.from(topIndexes(ci, keep), (i) => docs[i]!).sort();
        }
        rci += recall(docs);
        const rs = new Float32Array(docs.length);
        k.residualMaxSim(q, codec, scores, view, docs, rs);
        rr += recall(Array.from(topIndexes(rs, keep), (i) => docs[i]!));
        r10 += recall(Array.from(topIndexes(rs, 10), (i) => docs[i]!));
      }
      const n = queries.length;
      console.log(`| ${nprobe} | ${(nc / n).toFixed(0)} | ${(rc / n).toFixed(3)} | ${keep} | ${(rci / n).toFixed(3)} | ${(rr / n).toFixed(3)} | ${(r10 / n).toFixed(3)} |`);
    }
  }
  scorer.dispose();
}

function median(v: number[]): number {
  const s = [...v].sort((a, b) => a - b);
  return s[Math.floor(s.length / 2)]!;
}

/** Per-stage medians of the default search flow (see the module comment). */
async function profile(queries: TokenMatrix[], codec: ResidualCodec, codes: CodeSet, store: MemoryStore, scorer: Scorer, tokens: number): Promise<void> {
  const defaults = defaultKnobs(tokens, 10);
  const one = (name: string, fallback: number) => (arg(name, '') === '' ? fallback : Number(arg(name, '')));
  const nprobe = one('nprobe', defaults.nprobe);
  const keep = one('keep', defaults.candidates);
  // `--depth=32,64,128`: the stages are timed at the first depth; the top-10 overlap is reported for each.
  const depths = arg('depth', '') === '' ? [defaults.rerankDepth] : arg('depth', '').split(',').map(Number);
  const depth = depths[0]!;
  const count = centroidCount(codec);
  const k = KERNELS;
  const view = codes.view();
  codes.invertedLists();
  const stages = ['query x centroids', 'probes', 'candidate union', 'centroid interaction', 'residual MaxSim', 'exact rerank'] as const;
  const times: number[][] = stages.map(() => []);
  const totals: number[] = [];
  const exhaustive: number[] = [];
  let candidates = 0;
  const overlaps = depths.map(() => 0);
  let run = 0;
  for (const q of queries) {
    let t = performance.now();
    const want = await scorer.rank(q, () => store.shards(), 10);
    exhaustive.push(performance.now() - t);
    const lap: number[] = [];
    const tick = () => {
      const now = performance.now();
      lap.push(now - t);
      t = now;
    };
    t = performance.now();
    const scores = k.centroidScores(q, codec);
    tick();
    const probes = probeCentroids(scores, q.tokens, count, nprobe);
    tick();
    let docs = candidateSlots(codes.invertedLists(), probes, codes.slots, (s) => codes.live(s));
    tick();
    candidates += docs.length;
    if (docs.length > keep) {
      const ci = new Float32Array(docs.length);
      k.centroidInteraction(scores, q.tokens, count, view, docs, ci);
      const all = docs;
      docs = Uint32Array.from(topIndexes(ci, keep), (i) => all[i]!).sort();
    }
    tick();
    const survivors = docs;
    const residual = depths.some((d) => d < survivors.length) ? new Float32Array(survivors.length) : undefined;
    if (residual) k.residualMaxSim(q, codec, scores, view, survivors, residual);
    tick();
    const set = new Set(want.map((h) => h.id));
    for (let di = 0; di < depths.length; di++) {
      const d = depths[di]!;
      const rescore = residual && d < survivors.length ? Uint32Array.from(topIndexes(residual, d), (i) => survivors[i]!) : survivors;
      if (di === 0) t = performance.now();
      const ids = Array.from(rescore, (s) => codes.id(s)!);
      const ms = await Promise.all(ids.map(async (id) => ({ id, m: (await store.matrix(id))! })));
      const shard = matricesShard(`profile:${run++}`, q.dim, ms);
      const hits = await scorer.rank(q, async function* () {
        yield shard;
      }, 10);
      if (di === 0) tick();
      overlaps[di]! += hits.filter((h) => set.has(h.id)).length / 10;
    }
    lap.forEach((x, i) => times[i]!.push(x));
    totals.push(lap.reduce((a, b) => a + b, 0));
  }
  const total = median(totals);
  const base = median(exhaustive);
  console.log(`profile: nprobe ${nprobe}, keep ${keep}, rerank depth ${depth} (${depth >= keep ? 'no residual stage' : 'residual stage on'}), mean ${(candidates / queries.length).toFixed(0)} candidates; top-10 overlap with exhaustive fp32 ${depths.map((d, i) => `${(overlaps[i]! / queries.length).toFixed(3)} at depth ${d}`).join(', ')}`);
  console.log('| stage | median ms | share of the total |');
  console.log('| --- | ---: | ---: |');
  stages.forEach((name, i) => {
    const m = median(times[i]!);
    console.log(`| ${name} | ${m.toFixed(2)} | ${((100 * m) / total).toFixed(0)}% |`);
  });
  console.log(`| total (median of sums) | ${total.toFixed(2)} | exhaustive fp32 median ${base.toFixed(1)} ms: ${(base / total).toFixed(1)}x faster |`);
}

if (process.argv[1] && resolve(process.argv[1]) === resolve(import.meta.filename)) await main();
