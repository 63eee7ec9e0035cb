/**
 * Encoding throughput of the converted full-shape ColBERT-Zero model (22 layers, hidden 768,
 * random weights: speed and size do not depend on the values) on onnxruntime-web's WASM backend
 * in Node, 1 and 2 threads, per dtype; the fp32 graph on 1 thread is the baseline. Beside it, the
 * same graphs on onnxruntime-node (native CPU kernels, what Node runs; 1 thread), the ratio to
 * onnxruntime-web on 1 thread per dtype. Also the
 * converted size per dtype and each dtype's deviation from the fp32 graph: cosine per token
 * vector (mean, min) and MaxSim ranking agreement on synthetic queries and documents.
 *
 *   npm run bench -- encode          (COLBERT_BENCH_DTYPES=fp32,q8 to narrow)
 *
 * Timings run in child processes (onnxruntime-web fixes its thread count once per process).
 */
import { spawnSync } from 'node:child_process';
import { mkdir, readFile, writeFile } from 'node:fs/promises';
import { basename, resolve } from 'node:path';
import * as ort from 'onnxruntime-web';
import { startModel, transformersVersion } from '../src/model/runtime.ts';
import type { Dtype } from '../src/types.ts';
import { convertCheckpoint } from '../src/model/convert/convert.ts';
import { CONVERT_DTYPES, type ConvertDtype } from '../src/model/convert/quantize.ts';
import { writeSafetensors } from '../src/model/safetensors.ts';
import { checkpointConfig, checkpointTensors, FULL } from '../test/fixtures/make-checkpoint.ts';
import { mulberry32 } from '../test/fixtures/make-models.ts';

const DIR = resolve(import.meta.dirname, '../.cache/bench-encode');
/** Timed batch: 2 sequences of 192 tokens (beyond the 128-token window), 384 tokens per call. */
const BATCH = 2;
const SEQ = 192;
const TIMED_RUNS = 1;

function feeds(batch: number, seq: number, seed: number): Record<string, ort.Tensor> {
  const next = mulberry32(seed);
  const ids = BigInt64Array.from({ length: batch * seq }, (_, i) => (i % seq === 0 ? 50281n : BigInt(100 + Math.floor(next() * 50000))));
  return { input_ids: new ort.Tensor('int64', ids, [batch, seq]), attention_mask: new ort.Tensor('int64', new BigInt64Array(batch * seq).fill(1n), [batch, seq]) };
}

type Runtime = 'web' | 'node';

/** Child: time one ONNX file at one thread count on one runtime; prints a JSON line. */
async function timeOne(file: string, threads: number, runtime: Runtime): Promise<void> {
  ort.env.wasm.numThreads = threads;
  ort.env.logLevel = 'error';
  const bytes = new Uint8Array(await readFile(file));
  let run: () => Promise<void>;
  let release: () => Promise<void>;
  if (runtime === 'node') {
    // What the library runs in Node: @huggingface/transformers on onnxruntime-node (src/model/runtime.ts).
    const dtype = basename(file, '.onnx') as Dtype;
    const model = await startModel(bytes, { device: 'wasm', dtype, node: true, numThreads: threads, config: null });
    const input = feeds(BATCH, SEQ, 7);
    const plain = Object.fromEntries(Object.entries(input).map(([k, t]) => [k, t.data as BigInt64Array]));
    const out = model.outputNames[0]!;
    run = async () => (await model.run(plain, [BATCH, SEQ], out)).dispose();
    release = () => model.release();
  } else {
    const session = await ort.InferenceSession.create(bytes, { executionProviders: ['wasm'], graphOptimizationLevel: 'all', logSeverityLevel: 3 });
    const input = feeds(BATCH, SEQ, 7);
    run = async () => void (await session.run(input));
    release = () => session.release();
  }
  await run();
  const t0 = performance.now();
  const cpu0 = process.cpuUsage();
  for (let r = 0; r < TIMED_RUNS; r++) await run();
  const seconds = (performance.now() - t0) / 1000;
  const cpu = process.cpuUsage(cpu0);
  const cpuSeconds = (cpu.user + cpu.system) / 1e6;
  const tokens = TIMED_RUNS * BATCH * SEQ;
  console.log(JSON.stringify({ tokensPerSecond: tokens / seconds, tokensPerCpuSecond: tokens / cpuSeconds }));
  await release();
}

/** Runs `session` on token-id sequences and returns per-sequence [seq, dim] outputs. */
async function encode(session: ort.InferenceSession, seqs: number[][]): Promise<Float32Array[]> {
  const out: Float32Array[] = [];
  for (const ids of seqs) {
    const n = ids.length;
    const r = await session.run({
      input_ids: new ort.Tensor('int64', BigInt64Array.from(ids, (v) => BigInt(v)), [1, n]),
      attention_mask: new ort.Tensor('int64', new BigInt64Array(n).fill(1n), [1, n]),
    });
    out.push((r['output']!.data as Float32Array).slice());
  }
  return out;
}

function maxSim(q: Float32Array, d: Float32Array, dim: number): number {
  let total = 0;
  for (let i = 0; i < q.length / dim; i++) {
    let best = -Infinity;
    for (let j = 0; j < d.length / dim; j++) {
      let dot = 0;
      for (let k = 0; k < dim; k++) dot += q[i * dim + k]! * d[j * dim + k]!;
      best = Math.max(best, dot);
    }
    total += best;
  }
  return total;
}

async function main(): Promise<void> {
  const dtypes = (process.env['COLBERT_BENCH_DTYPES']?.split(',') ?? [...CONVERT_DTYPES]) as ConvertDtype[];
  if (!dtypes.includes('fp32')) dtypes.unshift('fp32');
  await mkdir(DIR, { recursive: true });
  let t0 = performance.now();
  const { backbone, dense } = checkpointTensors(FULL);
  const weights = writeSafetensors(backbone);
  const config = checkpointConfig(FULL);
  const head = [{ weight: dense, inFeatures: FULL.hidden_size, outFeatures: FULL.dim, bias: null, activation: 'identity' as const }];
  console.log(`full-shape checkpoint: ${(weights.byteLength / 1e6).toFixed(0)} MB safetensors, generated in ${((performance.now() - t0) / 1000).toFixed(1)} s`);

  // Synthetic retrieval set: 16 documents of 80 tokens over a 1,000-id vocabulary slice (so they
  // share tokens), 8 queries of 16 tokens sampled from documents 0..7.
  const next = mulberry32(99);
  const docs = Array.from({ length: 16 }, () => [50281, ...Array.from({ length: 79 }, () => 1000 + Math.floor(next() * 1000))]);
  const queries = Array.from({ length: 8 }, (_, q) => [50281, ...Array.from({ length: 15 }, () => docs[q]![1 + Math.floor(next() * 79)]!)]);

  const rows: { dtype: ConvertDtype; mb: number; convertS: number; meanCos: number; minCos: number; top1: number; top5: number }[] = [];
  let fp32Docs: Float32Array[] = [];
  let fp32Rank: number[][] = [];
  for (const dtype of dtypes) {
    t0 = performance.now();
    const bytes = convertCheckpoint({ config, weights, head }, dtype);
    const convertS = (performance.now() - t0) / 1000;
    await writeFile(resolve(DIR, `${dtype}.onnx`), bytes);
    const session = await ort.InferenceSession.create(bytes, { executionProviders: ['wasm'], graphOptimizationLevel: 'all', logSeverityLevel: 3 });
    const d = await encode(session, docs);
    const q = await encode(session, queries);
    await session.release();
    const ranking = q.map((qv) => d.map((dv, i) => ({ i, s: maxSim(qv, dv, FULL.dim) })).sort((a, b) => b.s - a.s).map((x) => x.i));
    if (dtype === 'fp32') {
      fp32Docs = d;
      fp32Rank = ranking;
    }
    let sum = 0;
    let count = 0;
    let min = 1;
    d.forEach((dv, n) => {
      const ref = fp32Docs[n]!;
      for (let t = 0; t < dv.length / FULL.dim; t++) {
        let c = 0;
        for (let k = 0; k < FULL.dim; k++) c += dv[t * FULL.dim + k]! * ref[t * FULL.dim + k]!;
        sum += c;
        count++;
        min = Math.min(min, c);
      }
    });
    const top1 = ranking.filter((r, n) => r[0] === fp32Rank[n]![0]).length / ranking.length;
    const top5 = ranking.reduce((a, r, n) => a + r.slice(0, 5).filter((x) => fp32Rank[n]!.slice(0, 5).includes(x)).length / 5, 0) / ranking.length;
    rows.push({ dtype, mb: bytes.byteLength / 1e6, convertS, meanCos: sum / count, minCos: min, top1, top5 });
  }

  // Two rounds, the second in reverse order, best of both per configuration: the order in which
  // children run (page cache, other load) otherwise favours whichever runs later.
  const speed: Record<string, { tokensPerSecond: number; tokensPerCpuSecond: number }> = {};
  const configs = dtypes.flatMap((dtype) => [
    ...[1, 2].map((threads) => ({ dtype, threads, runtime: 'web' as Runtime })),
    { dtype, threads: 1, runtime: 'node' as Runtime },
  ]);
  for (const { dtype, threads, runtime } of [...configs, ...[...configs].reverse()]) {
    const child = spawnSync(process.execPath, ['--import', 'tsx', import.meta.filename, '--time', resolve(DIR, `${dtype}.onnx`), String(threads), runtime], { encoding: 'utf8' });
    const line = child.stdout.trim().split('\n').pop() ?? '';
    const key = runtime === 'node' ? `${dtype}/${threads}/node` : `${dtype}/${threads}`;
    try {
      const r = JSON.parse(line) as { tokensPerSecond: number; tokensPerCpuSecond: number };
      const prev = speed[key];
      speed[key] = prev ? { tokensPerSecond: Math.max(prev.tokensPerSecond, r.tokensPerSecond), tokensPerCpuSecond: Math.max(prev.tokensPerCpuSecond, r.tokensPerCpuSecond) } : r;
    } catch {
      console.error(`timing ${dtype} with ${threads} thread(s) on onnxruntime-${runtime} failed: ${child.stderr.slice(-500)}`);
      speed[key] ??= { tokensPerSecond: NaN, tokensPerCpuSecond: NaN };
    }
  }
  const base = speed['fp32/1']!;
  console.log(`\nWASM (onnxruntime-web ${ort.env.versions.web ?? ''}, Node), batch ${BATCH} x ${SEQ} tokens, ${TIMED_RUNS} timed call(s) after one warm-up, best of two rounds (second in reverse order); baseline = fp32 on 1 thread, same run.`);
  console.log('1T cpu = tokens per CPU-second of the whole 1-thread process (Node GC and page-fault time included): less disturbed by other load than wall time, but not a clean kernel speed.');
  console.log('dtype  size MB  convert s  tok/s 1T (x fp32)  tok/1T-cpu-s (x fp32)  tok/s 2T (x fp32)  cos mean  cos min  top1 agree  top5 overlap');
  for (const r of rows) {
    const s1 = speed[`${r.dtype}/1`]!;
    const s2 = speed[`${r.dtype}/2`]!;
    console.log(
      `${r.dtype.padEnd(5)}  ${r.mb.toFixed(1).padStart(7)}  ${r.convertS.toFixed(1).padStart(9)}  ${s1.tokensPerSecond.toFixed(1).padStart(8)} (${(s1.tokensPerSecond / base.tokensPerSecond).toFixed(2)}x)  ` +
        `${s1.tokensPerCpuSecond.toFixed(1).padStart(12)} (${(s1.tokensPerCpuSecond / base.tokensPerCpuSecond).toFixed(2)}x)  ` +
        `${s2.tokensPerSecond.toFixed(1).padStart(8)} (${(s2.tokensPerSecond / base.tokensPerSecond).toFixed(2)}x)  ${r.meanCos.toFixed(5)}  ${r.minCos.toFixed(5)}  ${(r.top1 * 100).toFixed(0).padStart(9)}%  ${(r.top5 * 100).toFixed(0).padStart(11)}%`,
    );
  }
  console.log(`\nThe same graphs, 1 thread: onnxruntime-web WASM (browsers) beside onnxruntime-node through @huggingface/transformers ${transformersVersion()} (native CPU; what the library runs in Node), same batch, same run.`);
  console.log('dtype  web tok/s  node tok/s  node / web');
  for (const r of rows) {
    const web = speed[`${r.dtype}/1`]!.tokensPerSecond;
    const native = speed[`${r.dtype}/1/node`]!.tokensPerSecond;
    console.log(`${r.dtype.padEnd(5)}  ${web.toFixed(1).padStart(9)}  ${native.toFixed(1).padStart(10)}  ${(native / web).toFixed(2).padStart(9)}x`);
  }
}

if (process.argv[2] === '--time') await timeOne(process.argv[3]!, Number(process.argv[4]), (process.argv[5] ?? 'web') as Runtime);
else await main();
