/**
 * Where `compression: { rerank: false }` loses the exhaustive top 10, and what it costs against
 * human judgments. A diagnostic, not part of `npm run bench`:
 *
 *   npx tsx bench/compressed-quality.ts [--data=synthetic|cranfield] [--tokens=1000000] [--queries=100] [--nbits=2]
 *   npx tsx bench/compressed-quality.ts --judgments [--queries=225]
 *
 * Default mode, on the index the engine builds (trained once and cached in .cache/trained/,
 * bench/trained-cache.ts; Cranfield is the contextual test model's encoding, cached by
 * bench/compressed-stages.ts):
 *
 * 1. The codec on held-out tokens (documents spread over the collection, not the codec's training
 *    sample): the relative MSE of the residual values (squared error over their variance) with the
 *    index's buckets, against the 2-bit Gaussian references (Lloyd-Max 0.1175, equal-probability
 *    buckets as ColBERTv2 trains them 0.1394), and with buckets refitted on other held-out tokens
 *    (ColBERTv2's quantile rule, and Lloyd-Max iterations). It also checks that re-encoding the
 *    held-out tokens gives the stored bytes, and that the byte-table decoding equals `decodeToken`.
 * 2. Per query, the same survivors of the default flow (probes and centroid interaction) ranked
 *    by: exact fp32 MaxSim (the pruning ceiling), the residual MaxSim of the search path (WASM
 *    SIMD, the final score of rerank: false), the same from decoded rows in JS (must agree), exact
 *    rows plus i.i.d. Gaussian noise of the codec's measured per-dimension decoding MSE (the noise
 *    ceiling of a codec this accurate), and the tokens re-encoded with refitted buckets at 2 and 4
 *    bits on the same centroids (what a bucket fix, or nbits 4, would give). For each: top-10
 *    overlap with the exhaustive fp32 top 10, and the spread of its score error over the survivors
 *    (the standard deviation of score minus exact score; a common offset does not reorder).
 * 3. The exact score gap between ranks 10 and 11 (over the whole collection) against that error:
 *    the share of queries whose gap is below the residual error, and how many survivors lie
 *    within one error of the rank-10/11 boundary.
 *
 * `--judgments` (Cranfield): nDCG@10 against the human judgments for exhaustive fp32 and the
 * compressed search path (`CompressedIndex.search`, default knobs) with rerank true and false at
 * nbits 1, 2 and 4, and each one's top-10 overlap with exhaustive fp32.
 */
import { resolve } from 'node:path';
import { CompressedIndex, defaultKnobs } from '../src/compression.ts';
import { wasmCompressedKernels } from '../src/score/compressed-stages.ts';
import { maxSim } from '../src/score/cpu.ts';
import { candidateSlots, cpuCompressedKernels, probeCentroids, topIndexes } from '../src/score/compressed.ts';
import { createScorer, type Scorer } from '../src/score/scorer.ts';
import { trainBuckets } from '../src/score/train.ts';
import { MemoryStore } from '../src/store/memory.ts';
import { halfFloats } from '../src/store/precision.ts';
import { centroidCount, decodeToken, encodeResidual, residualByteWeights, residualBytes, type ResidualBits, type ResidualCodec } from '../src/store/residual.ts';
import { matricesShard } from '../src/store/shards.ts';
import type { Scored } from '../src/score/topk.ts';
import type { TokenMatrix } from '../src/types.ts';
import { clusteredCollection } from '../test/fixtures/clustered.ts';
import { loadCranfield } from '../test/fixtures/cranfield.ts';
import { mulberry32, normals } from '../test/support/rng.ts';
import { CRANFIELD_DIR } from '../test/support/shared.ts';
import { cranfieldMatrices } from './compressed-stages.ts';
import { mean, ndcgAtK } from './metrics.ts';
import { openTrained } from './trained-cache.ts';

const arg = (name: string, fallback: string) => {
  const a = process.argv.find((x) => x.startsWith(`--${name}=`));
  return a ? a.slice(name.length + 3) : fallback;
};

/** Relative MSE of the best 2^nbits-level scalar quantiser of a Gaussian (Lloyd-Max). */
export const LLOYD_MAX_GAUSSIAN: Record<ResidualBits, number> = { 1: 0.3634, 2: 0.1175, 4: 0.0095 };
/** Relative MSE of equal-probability buckets decoded to their means, on a Gaussian (ColBERTv2's rule on Gaussian data). */
export const QUANTILE_GAUSSIAN: Record<ResidualBits, number> = { 1: 0.3634, 2: 0.1394, 4: 0.0222 };

interface Data {
  name: string;
  docs: { id: string; embedding: TokenMatrix }[] | null;
  batches: () => Iterable<{ id: string; embedding: TokenMatrix }[]>;
  queries: TokenMatrix[];
  queryIds: string[];
  tokens: number;
  key: string;
}

async function loadData(name: string, queries: number): Promise<Data> {
  if (name === 'cranfield') {
    const col = await cranfieldMatrices();
    const { queries: qs } = await loadCranfield(CRANFIELD_DIR);
    return {
      name,
      docs: col.docs,
      batches: function* () {
        for (let i = 0; i < col.docs.length; i += 256) yield col.docs.slice(i, i + 256);
      },
      queries: col.queries.slice(0, queries),
      queryIds: qs.slice(0, queries).map((q) => q.id),
      tokens: col.docs.reduce((n, d) => n + d.embedding.tokens, 0),
      key: 'cranfield-contextual',
    };
  }
  const data = clusteredCollection(Number(arg('tokens', '1000000')), { seed: 7 });
  const qs = data.queries(queries, 3);
  return { name, docs: null, batches: () => data.batches(256), queries: qs.map((q) => q.embedding), queryIds: qs.map((q) => q.id), tokens: data.tokens, key: `synthetic-${data.tokens}-seed7` };
}

async function buildIndex(data: Data, store: MemoryStore, nbits: ResidualBits, rerank: boolean): Promise<CompressedIndex> {
  const index = new CompressedIndex({ nbits, poolFactor: 1, rerank });
  await openTrained(index, store, `${data.key}-nbits${nbits}`);
  if (!index.generation) throw new Error('the index did not train');
  return index;
}

interface Held {
  /** Row-major original vectors, their codes and stored residual bytes. */
  vectors: Float32Array;
  codes: Uint16Array;
  residuals: Uint8Array;
  tokens: number;
}

/** Whole documents from every `step`-th live slot starting at `first`, up to `want` tokens. */
async function heldOut(index: CompressedIndex, store: MemoryStore, first: number, step: number, want: number): Promise<Held> {
  const g = index.generation!;
  const dim = g.trained.codec.dim;
  const bytes = g.codes.bytesPerToken;
  const vs: Float32Array[] = [];
  const cs: Uint16Array[] = [];
  const rs: Uint8Array[] = [];
  let tokens = 0;
  for (let s = first; s < g.codes.slots && tokens < want; s += step) {
    if (!g.codes.live(s)) continue;
    const id = g.codes.id(s)!;
    const m = (await store.matrix(id))!;
    const d = g.codes.document(id)!;
    vs.push(m.data);
    cs.push(d.codes);
    rs.push(d.residuals);
    tokens += m.tokens;
  }
  const vectors = new Float32Array(tokens * dim);
  const codes = new Uint16Array(tokens);
  const residuals = new Uint8Array(tokens * bytes);
  let at = 0;
  for (let i = 0; i < vs.length; i++) {
    vectors.set(vs[i]!, at * dim);
    codes.set(cs[i]!, at);
    residuals.set(rs[i]!, at * bytes);
    at += cs[i]!.length;
  }
  return { vectors, codes, residuals, tokens };
}

/** Residual values `v - half(centroid)` of held-out tokens, row-major. */
function residualValues(codec: ResidualCodec, h: Held): Float32Array {
  const { dim, centroids } = codec;
  const half = halfFloats();
  const out = new Float32Array(h.tokens * dim);
  for (let t = 0; t < h.tokens; t++) {
    const c = h.codes[t]! * dim;
    for (let d = 0; d < dim; d++) out[t * dim + d] = h.vectors[t * dim + d]! - half[centroids[c + d]!]!;
  }
  return out;
}

/** Squared error of quantising `values` with `buckets` (the codec's rule), over their variance. */
function relativeMse(values: Float32Array, cutoffs: Float32Array, weights: Float32Array): number {
  let sum = 0;
  let sq = 0;
  let err = 0;
  for (const x of values) {
    let b = 0;
    while (b < cutoffs.length && cutoffs[b]! <= x) b++;
    err += (x - weights[b]!) ** 2;
    sum += x;
    sq += x * x;
  }
  const n = values.length;
  return err / (sq - (sum * sum) / n);
}

const fmt = (x: number, d = 4) => x.toFixed(d);

async function diagnose(): Promise<void> {
  const nbits = Number(arg('nbits', '2')) as ResidualBits;
  const data = await loadData(arg('data', 'synthetic'), Number(arg('queries', '100')));
  const store = new MemoryStore({ precision: 'fp32' });
  for (const docs of data.batches()) await store.put(docs.map((d) => ({ id: d.id, matrix: d.embedding })));
  const index = await buildIndex(data, store, nbits, false);
  const g = index.generation!;
  const codec = g.trained.codec;
  const { dim } = codec;
  const count = centroidCount(codec);
  const bytes = residualBytes(dim, nbits);
  const knobs = defaultKnobs(data.tokens, 10);
  console.log(`${data.name}: ${g.codes.documents} documents, ${data.tokens} tokens, ${data.queries.length} queries; nbits ${nbits}, ${count} centroids; knobs ${JSON.stringify(knobs)}`);

  // 1. The codec on held-out tokens: B is measured, A (other documents) refits buckets.
  const slots = g.codes.slots;
  const step = Math.max(2, Math.floor(slots / 400));
  const B = await heldOut(index, store, 0, step, 40_000);
  const A = await heldOut(index, store, Math.floor(step / 2), step, 40_000);
  const rB = residualValues(codec, B);
  const rA = residualValues(codec, A);
  let mismatched = 0;
  const enc = new Uint8Array(bytes);
  for (let t = 0; t < B.tokens; t++) {
    encodeResidual(codec, B.vectors, t * dim, B.codes[t]!, enc, 0);
    for (let p = 0; p < bytes; p++) if (enc[p] !== B.residuals[t * bytes + p]) mismatched++;
  }
  // decodeToken against the byte table, and the per-dimension MSE of the decoded (normalised) vector.
  const table = residualByteWeights(codec);
  const per = 8 / nbits;
  const half = halfFloats();
  const dec = new Float32Array(dim);
  const byTable = new Float32Array(dim);
  const decMse = new Float64Array(dim);
  let tableDiff = 0;
  for (let t = 0; t < B.tokens; t++) {
    decodeToken(codec, B.codes[t]!, B.residuals, t * bytes, dec);
    let norm = 0;
    for (let d = 0; d < dim; d++) {
      const v = B.residuals[t * bytes + Math.floor(d / per)]!;
      byTable[d] = Math.fround(half[codec.centroids[B.codes[t]! * dim + d]!]! + table[v * per + (d % per)]!);
      norm += byTable[d]! ** 2;
    }
    for (let d = 0; d < dim; d++) {
      tableDiff = Math.max(tableDiff, Math.abs(byTable[d]! / Math.sqrt(norm) - dec[d]!));
      decMse[d]! += (dec[d]! - B.vectors[t * dim + d]!) ** 2 / B.tokens;
    }
  }
  let resVar = 0;
  for (const x of rB) resVar += (x * x) / rB.length;
  const quantile = trainBuckets(rA, nbits, 0);
  const lloyd = trainBuckets(rA, nbits);
  const mseCodec = relativeMse(rB, codec.cutoffs, codec.weights);
  const mseQuantile = relativeMse(rB, quantile.cutoffs, quantile.weights);
  const mseLloyd = relativeMse(rB, lloyd.cutoffs, lloyd.weights);
  const decMseMean = decMse.reduce((a, b) => a + b, 0) / dim;
  console.log(`\ncodec on ${B.tokens} held-out tokens (buckets refitted on ${A.tokens} others): residual value RMS ${fmt(Math.sqrt(resVar))}; re-encoding gives the stored bytes: ${mismatched === 0 ? 'yes' : `no, ${mismatched} bytes differ`}; byte-table decode vs decodeToken max |diff| ${resVar > 0 ? tableDiff.toExponential(1) : '-'}`);
  console.log('| buckets | cutoffs | weights | relative MSE (held-out) |');
  console.log('| --- | --- | --- | ---: |');
  const list = (a: Float32Array) => Array.from(a, (x) => x.toFixed(4)).join(', ');
  console.log(`| the index's | ${list(codec.cutoffs)} | ${list(codec.weights)} | ${fmt(mseCodec)} |`);
  console.log(`| quantiles refitted on held-out tokens | ${list(quantile.cutoffs)} | ${list(quantile.weights)} | ${fmt(mseQuantile)} |`);
  console.log(`| Lloyd-Max refitted on held-out tokens | ${list(lloyd.cutoffs)} | ${list(lloyd.weights)} | ${fmt(mseLloyd)} |`);
  console.log(`| Gaussian references: Lloyd-Max / equal-probability buckets | | | ${LLOYD_MAX_GAUSSIAN[nbits]} / ${QUANTILE_GAUSSIAN[nbits]} |`);
  console.log(`decoded (normalised) token vs original: mean squared error per dimension ${decMseMean.toExponential(3)} (residual value variance ${resVar.toExponential(3)})`);

  // Variant codecs on the same centroids, re-encoding each survivor's exact rows.
  const refit = (bits: ResidualBits, b: { cutoffs: Float32Array; weights: Float32Array }): ResidualCodec => ({ dim, nbits: bits, centroids: codec.centroids, cutoffs: b.cutoffs, weights: b.weights });
    const variants: { name: string; codec: ResidualCodec }[] = [
    { name: `refitted quantile buckets, ${nbits} bits`, codec: refit(nbits, quantile) },
    { name: `refitted Lloyd-Max buckets, ${nbits} bits`, codec: refit(nbits, lloyd) },
    ...(nbits !== 4 ? [{ name: 'refitted quantile buckets, 4 bits (same centroids)', codec: refit(4, trainBuckets(rA, 4, 0)) }, { name: 'refitted Lloyd-Max buckets, 4 bits (same centroids)', codec: refit(4, trainBuckets(rA, 4)) }] : []),
  ];

  // 2. and 3. Per query, the same survivors under each scoring.
  const scorer = await createScorer({ scoring: 'cpu', threads: 1 });
  const lists = g.codes.invertedLists();
  const view = g.codes.view();
  const names = ['exact fp32 MaxSim (pruning ceiling)', 'residual MaxSim (search path, WASM)', 'residual MaxSim (decoded rows, JS)', 'exact + Gaussian noise of the decoding MSE', ...variants.map((v) => v.name)];
  const overlap = names.map(() => 0);
  const errSd = names.map(() => [] as number[]);
  const gaps: number[] = [];
  const contenders: number[] = [];
  let kernelDiff = 0;
  let survivorsRecall = 0;
  const noise = normals(mulberry32(11));
  const sdOf = (decMse as Float64Array).map(Math.sqrt);
  const buf = new Uint8Array(bytes);
  for (const q of data.queries) {
    const truth = await scorer.rank(q, () => store.shards(), 11);
    const want = new Set(truth.slice(0, 10).map((h) => h.id));
    const scores = wasmCompressedKernels.centroidScores(q, codec);
    let docs = candidateSlots(lists, probeCentroids(scores, q.tokens, count, knobs.nprobe), g.codes.slots, (s) => g.codes.live(s));
    if (docs.length > knobs.candidates) {
      const ci = new Float32Array(docs.length);
      wasmCompressedKernels.centroidInteraction(scores, q.tokens, count, view, docs, ci);
      const all = docs;
      docs = Uint32Array.from(topIndexes(ci, knobs.candidates), (i) => all[i]!).sort();
    }
    const ids = Array.from(docs, (s) => g.codes.id(s)!);
    survivorsRecall += ids.filter((id) => want.has(id)).length / 10;
    const by = names.map(() => new Float32Array(docs.length));
    wasmCompressedKernels.residualMaxSim(q, codec, scores, view, docs, by[1]!);
    const js = new Float32Array(docs.length);
    cpuCompressedKernels.residualMaxSim(q, codec, scores, view, docs, js);
    for (let n = 0; n < docs.length; n++) {
      const m = (await store.matrix(ids[n]!))!;
      const c = g.codes.document(ids[n]!)!;
      const rows = new Float32Array(m.tokens * dim);
      by[0]![n] = maxSim(q, m);
      for (let t = 0; t < m.tokens; t++) decodeToken(codec, c.codes[t]!, c.residuals, t * bytes, rows, t * dim);
      by[2]![n] = maxSim(q, { ...m, data: rows });
      kernelDiff = Math.max(kernelDiff, Math.abs(by[2]![n]! - by[1]![n]!), Math.abs(js[n]! - by[1]![n]!));
      for (let t = 0; t < m.tokens; t++) {
        let norm = 0;
        for (let d = 0; d < dim; d++) {
          const x = m.data[t * dim + d]! + sdOf[d]! * noise();
          rows[t * dim + d] = x;
          norm += x * x;
        }
        for (let d = 0; d < dim; d++) rows[t * dim + d]! /= Math.sqrt(norm);
      }
      by[3]![n] = maxSim(q, { ...m, data: rows });
      variants.forEach((v, vi) => {
        const vb = residualBytes(dim, v.codec.nbits);
        const res = vb === buf.length ? buf : new Uint8Array(vb);
        for (let t = 0; t < m.tokens; t++) {
          encodeResidual(v.codec, m.data, t * dim, c.codes[t]!, res, 0);
          decodeToken(v.codec, c.codes[t]!, res, 0, rows, t * dim);
        }
        by[4 + vi]![n] = maxSim(q, { ...m, data: rows });
      });
    }
    for (let k = 0; k < names.length; k++) {
      const top = topIndexes(by[k]!, 10);
      overlap[k]! += Array.from(top).filter((i) => want.has(ids[i]!)).length / 10;
      let s = 0;
      let s2 = 0;
      for (let n = 0; n < docs.length; n++) {
        const e = by[k]![n]! - by[0]![n]!;
        s += e;
        s2 += e * e;
      }
      errSd[k]!.push(Math.sqrt(Math.max(0, s2 / docs.length - (s / docs.length) ** 2)));
    }
    const s10 = truth[9]!.score;
    const s11 = truth[10]?.score ?? -Infinity;
    gaps.push(s10 - s11);
    const sd = errSd[1]![errSd[1]!.length - 1]!;
    const mid = (s10 + s11) / 2;
    contenders.push(Array.from(by[0]!).filter((x) => Math.abs(x - mid) < sd).length);
  }
  scorer.dispose();
  const nq = data.queries.length;
  const med = (v: number[]) => [...v].sort((a, b) => a - b)[Math.floor(v.length / 2)]!;
  console.log(`\nsurvivors: ${knobs.candidates} of the candidates after centroid interaction hold ${fmt(survivorsRecall / nq, 3)} of the exhaustive top 10; residual kernels (WASM, JS, decoded rows) agree within ${kernelDiff.toExponential(1)}`);
  console.log('| scoring of the survivors | top-10 overlap with exhaustive fp32 | score error SD (median over queries) |');
  console.log('| --- | ---: | ---: |');
  names.forEach((name, k) => console.log(`| ${name} | ${fmt(overlap[k]! / nq, 3)} | ${k === 0 ? '-' : fmt(med(errSd[k]!))} |`));
  const sdResidual = errSd[1]!;
  const below = gaps.filter((gap, i) => gap < sdResidual[i]!).length;
  console.log(`\nexact gap between ranks 10 and 11: median ${fmt(med(gaps))} (residual score error SD median ${fmt(med(sdResidual))}); ${below} of ${nq} queries (${fmt(below / nq, 2)}) have a gap below their error SD; a median ${med(contenders)} survivors (mean ${fmt(mean(contenders), 1)}) lie within one error SD of the rank-10/11 boundary`);
}

async function judgments(): Promise<void> {
  const data = await loadData('cranfield', Number(arg('queries', '225')));
  const { qrels } = await loadCranfield(CRANFIELD_DIR);
  const store = new MemoryStore({ precision: 'fp32' });
  for (const docs of data.batches()) await store.put(docs.map((d) => ({ id: d.id, matrix: d.embedding })));
  const scorer: Scorer = await createScorer({ scoring: 'cpu', threads: 1 });
  let run = 0;
  const exact = async (q: TokenMatrix, ids: string[]): Promise<Scored[]> => {
    const ms = await Promise.all(ids.map(async (id) => ({ id, m: (await store.matrix(id))! })));
    const shard = matricesShard(`quality:${run++}`, q.dim, ms);
    return scorer.rank(q, async function* () {
      yield shard;
    }, 10);
  };
  const truth: string[][] = [];
  for (const q of data.queries) truth.push((await scorer.rank(q, () => store.shards(), 10)).map((h) => h.id));
  const ndcg = (ranked: string[][]) => mean(ranked.map((r, i) => ndcgAtK(r, qrels.get(data.queryIds[i]!) ?? new Map(), 10)));
  const overlap = (ranked: string[][]) => mean(ranked.map((r, i) => r.filter((id) => truth[i]!.includes(id)).length / 10));
  console.log(`cranfield (contextual test model): ${data.docs!.length} documents, ${data.tokens} tokens, ${data.queries.length} queries with judgments; default knobs ${JSON.stringify(defaultKnobs(data.tokens, 10))}`);
  console.log('| scoring | nbits | nDCG@10 | top-10 overlap with exhaustive fp32 |');
  console.log('| --- | ---: | ---: | ---: |');
  console.log(`| exhaustive fp32 | - | ${fmt(ndcg(truth))} | 1.000 |`);
  for (const nbits of [1, 2, 4] as const) {
    const index = await buildIndex(data, store, nbits, false);
    for (const rerank of [true, false]) {
      const ranked: string[][] = [];
      for (const q of data.queries) ranked.push((await index.search(q, 10, { rerank }, (ids) => exact(q, ids))).map((h) => h.id));
      console.log(`| compressed, rerank: ${rerank} | ${nbits} | ${fmt(ndcg(ranked))} | ${fmt(overlap(ranked), 3)} |`);
    }
  }
  scorer.dispose();
}

if (process.argv[1] && resolve(process.argv[1]) === resolve(import.meta.filename)) {
  if (process.argv.includes('--judgments')) await judgments();
  else await diagnose();
}
