/**
 * Query-centroid scores on the CPU with WebAssembly SIMD (the first stage of the compressed
 * index, see ./compressed.ts): every query row against every centroid, 4 query rows x 2
 * centroids per step with eight f32x4 accumulators (the same register blocking as the MaxSim
 * kernel in ./simd.ts), the dimension loop unrolled. The centroids are copied into the module's
 * memory once per codec; a query copies only its own rows. Where WebAssembly SIMD is missing,
 * {@link centroidScores} of ./compressed.ts (plain JS) is used.
 *
 * The kernel writes the scores centroid-major (`T[c * Qpad + i]`), which is what centroid
 * interaction reads; `centroidScoresSimd` also returns the query-major `S[i * C + c]` the other
 * stages take. Sums run in float32 in four lanes, so values differ from the plain-JS reference by
 * float32 rounding only (tests: within 1e-5).
 */
import { centroidCount, type ResidualCodec } from '../store/residual.ts';
import type { TokenMatrix } from '../types.ts';
import { centroidScores, cpuCompressedKernels, type CompressedKernels } from './compressed.ts';
import { encodeModule, FunctionBody, I32, pushPairSum, storeHalfSums, V128 } from './wasm-emit.ts';

const QB = 4;
const PAGE = 65536;

/** `dots(q, qBlocks, cs, pairs, out)`: for centroid pairs `0 .. pairs`, the dot products with every query block. */
function emitDots(dim4: number): Uint8Array<ArrayBuffer> {
  const row = dim4 * 4;
  const f = new FunctionBody([I32, I32, I32, I32, I32]);
  const [q, qBlocks, cs, pairs, out] = [0, 1, 2, 3, 4];
  const pair = f.local(I32);
  const p0 = f.local(I32);
  const qb = f.local(I32);
  const qEnd = f.local(I32);
  const o0 = f.local(I32);
  const acc = Array.from({ length: 2 * QB }, () => f.local(V128));
  const d0 = f.local(V128);
  const d1 = f.local(V128);
  const qv = f.local(V128);
  const t0 = f.local(V128);
  const t1 = f.local(V128);
  // Pushes [sum(a[0]), sum(a[1]), sum(a[2]), sum(a[3])].
  const reduce = (a: readonly number[]): void => {
    storeHalfSums(f, a, t0, t1);
    pushPairSum(f, t0, t1);
  };
  f.get(q).get(qBlocks).i32_const(QB * row).i32_mul().i32_add().set(qEnd);
  f.i32_const(0).set(pair);
  f.block().loop();
  {
    f.get(pair).get(pairs).i32_ge_u().br_if(1);
    f.get(pair).i32_const(2 * row).i32_mul().get(cs).i32_add().set(p0);
    // Output of centroid 2 * pair: out + 2 * pair * qBlocks * 16 bytes; centroid 2 * pair + 1 follows after qBlocks * 16.
    f.get(pair).get(qBlocks).i32_mul().i32_const(2 * QB * 4).i32_mul().get(out).i32_add().set(o0);
    f.get(q).set(qb);
    f.loop();
    {
      for (const a of acc) f.v128_const_f32(0).set(a);
      for (let k = 0; k < dim4 / 4; k++) {
        f.get(p0).v128_load(k * 16).set(d0);
        f.get(p0).v128_load(row + k * 16).set(d1);
        for (let i = 0; i < QB; i++) {
          f.get(qb).v128_load(i * row + k * 16).set(qv);
          f.get(acc[i]!).get(qv).get(d0).f32x4_mul().f32x4_add().set(acc[i]!);
          f.get(acc[QB + i]!).get(qv).get(d1).f32x4_mul().f32x4_add().set(acc[QB + i]!);
        }
      }
      f.get(o0);
      reduce(acc.slice(0, QB));
      f.v128_store(0);
      f.get(o0).get(qBlocks).i32_const(QB * 4).i32_mul().i32_add();
      reduce(acc.slice(QB));
      f.v128_store(0);
      f.get(o0).i32_const(QB * 4).i32_add().set(o0);
      f.get(qb).i32_const(QB * row).i32_add().tee(qb).get(qEnd).i32_lt_u().br_if(0);
    }
    f.end();
    f.get(pair).i32_const(1).i32_add().set(pair);
    f.br(0);
  }
  f.end().end();
  return encodeModule([{ name: 'dots', body: f, results: [] }], 1);
}

interface Loaded {
  codec: ResidualCodec;
  memory: WebAssembly.Memory;
  dots: (q: number, qBlocks: number, cs: number, pairs: number, out: number) => void;
  dim4: number;
  pairs: number;
  csAt: number;
  qAt: number;
}

let simdOk: boolean | undefined;
let cached: Loaded | null = null;

function load(codec: ResidualCodec, queryRows: number): Loaded | null {
  if (simdOk === false) return null;
  const count = centroidCount(codec);
  const dim4 = Math.ceil(codec.dim / 4) * 4;
  const pairs = Math.ceil(count / 2);
  const qBlocks = Math.ceil(queryRows / QB);
  let l = cached?.codec === codec && cached.dim4 === dim4 ? cached : null;
  try {
    if (!l) {
      const module = new WebAssembly.Module(emitDots(dim4));
      const instance = new WebAssembly.Instance(module);
      const memory = instance.exports['memory'] as WebAssembly.Memory;
      const csAt = 64;
      const qAt = csAt + pairs * 2 * dim4 * 4;
      l = { codec, memory, dots: instance.exports['dots'] as Loaded['dots'], dim4, pairs, csAt, qAt };
      const need = qAt + qBlocks * QB * dim4 * 4 + pairs * 2 * qBlocks * QB * 4;
      if (need > memory.buffer.byteLength) memory.grow(Math.ceil((need - memory.buffer.byteLength) / PAGE));
      const cs = new Float32Array(memory.buffer, csAt, pairs * 2 * dim4);
      for (let c = 0; c < count; c++) cs.set(codec.centroids.subarray(c * codec.dim, (c + 1) * codec.dim), c * dim4);
      simdOk = true;
      cached = l;
    }
  } catch {
    simdOk = false;
    return null;
  }
  const need = l.qAt + qBlocks * QB * dim4 * 4 + pairs * 2 * qBlocks * QB * 4;
  if (need > l.memory.buffer.byteLength) l.memory.grow(Math.ceil((need - l.memory.buffer.byteLength) / PAGE));
  return l;
}

/** Whether the SIMD kernel runs here (false where WebAssembly SIMD is missing). */
export function centroidSimdAvailable(codec: ResidualCodec): boolean {
  return load(codec, 1) !== null;
}

/** `S[i * C + c] = <q_i, centroid_c>` through the SIMD kernel (plain JS where it cannot run). */
export function centroidScoresSimd(query: TokenMatrix, codec: ResidualCodec): Float32Array {
  const l = load(codec, query.tokens);
  if (!l || query.tokens === 0) return centroidScores(query, codec);
  const { dim } = codec;
  const { dim4, pairs, qAt } = l;
  const count = centroidCount(codec);
  const qBlocks = Math.ceil(query.tokens / QB);
  const qpad = qBlocks * QB;
  const qs = new Float32Array(l.memory.buffer, qAt, qpad * dim4);
  qs.fill(0);
  for (let i = 0; i < query.tokens; i++) qs.set(query.data.subarray(i * dim, (i + 1) * dim), i * dim4);
  const outAt = qAt + qpad * dim4 * 4;
  l.dots(qAt, qBlocks, l.csAt, pairs, outAt);
  const t = new Float32Array(l.memory.buffer, outAt, pairs * 2 * qpad);
  const nq = query.tokens;
  const s = new Float32Array(nq * count);
  for (let c = 0; c < count; c++) {
    const o = c * qpad;
    for (let i = 0; i < nq; i++) s[i * count + c] = t[o + i]!;
  }
  return s;
}

/** The CPU stages with the SIMD centroid scores (the compressed index's default). */
export const simdCompressedKernels: CompressedKernels = { ...cpuCompressedKernels, centroidScores: centroidScoresSimd };

/**
 * Block dot products for training and code assignment (../score/train.ts): rows of token
 * vectors against a resident table of centroid rows, through the same kernel. The table (one or
 * two centroid sets, padded to `dim4` and to an even row count) is copied into the module's
 * memory once per {@link bindCentroids} call; each {@link BlockDots.scores} call copies only its
 * rows, at most {@link ASSIGN_BLOCK} of them, and returns the centroid-major scores
 * `T[c * rowsPadded + i]` of centroids `from .. to` of one set.
 */
export const ASSIGN_BLOCK = 256;
/** Most floats of one block's output; blocks shrink below {@link ASSIGN_BLOCK} rows for large centroid sets. */
const BLOCK_OUT_FLOATS = 1 << 22;

let dotsModules = new Map<number, WebAssembly.Module>();
let blockOk: boolean | undefined;

/** A bound table of centroid sets and scratch space for rows and scores. */
export interface BlockDots {
  readonly dim: number;
  /** Most rows one {@link scores} call takes for `width` centroids. */
  blockRows(width: number): number;
  /**
   * Scores of `n` rows (row `r` is `data[rowAt(r) ..]`) against centroids `from .. to` of set
   * `set`: a view `T[c * stride + i]` (c relative to `from`), valid until the next call.
   */
  scores(data: Float32Array, rowAt: (r: number) => number, n: number, set: number, from: number, to: number): { t: Float32Array; stride: number };
}

/**
 * Binds centroid sets (`rows x dim` each, row-major) into a fresh WASM SIMD instance; null where
 * WebAssembly SIMD is missing (callers fall back to plain JS).
 */
export function bindCentroids(dim: number, sets: readonly Float32Array[]): BlockDots | null {
  if (blockOk === false) return null;
  const dim4 = Math.ceil(dim / 4) * 4;
  const rowBytes = dim4 * 4;
  let memory: WebAssembly.Memory;
  let dots: Loaded['dots'];
  try {
    let module = dotsModules.get(dim4);
    if (!module) {
      module = new WebAssembly.Module(emitDots(dim4));
      dotsModules.set(dim4, module);
    }
    const instance = new WebAssembly.Instance(module);
    memory = instance.exports['memory'] as WebAssembly.Memory;
    dots = instance.exports['dots'] as Loaded['dots'];
    blockOk = true;
  } catch {
    blockOk = false;
    dotsModules = new Map();
    return null;
  }
  // Each set: its rows, then one zero row so an odd centroid range can run as whole pairs.
  const setAt: number[] = [];
  let at = 64;
  for (const s of sets) {
    setAt.push(at);
    at += (s.length / dim + 2) * rowBytes;
  }
  const rowsAt = at;
  const grow = (need: number) => {
    if (need > memory.buffer.byteLength) memory.grow(Math.ceil((need - memory.buffer.byteLength) / PAGE));
  };
  grow(rowsAt);
  sets.forEach((s, k) => {
    const view = new Float32Array(memory.buffer, setAt[k]!, (s.length / dim + 2) * dim4);
    view.fill(0);
    const rows = s.length / dim;
    for (let c = 0; c < rows; c++) view.set(s.subarray(c * dim, (c + 1) * dim), c * dim4);
  });
  const blockRows = (width: number) => Math.max(QB, Math.min(ASSIGN_BLOCK, Math.floor(BLOCK_OUT_FLOATS / Math.max(1, width + 1) / QB) * QB));
  return {
    dim,
    blockRows,
    scores(data, rowAt, n, set, from, to) {
      const pairs = Math.ceil((to - from) / 2);
      const qBlocks = Math.ceil(n / QB);
      const stride = qBlocks * QB;
      const outAt = rowsAt + stride * rowBytes;
      grow(outAt + pairs * 2 * stride * 4);
      const rows = new Float32Array(memory.buffer, rowsAt, stride * dim4);
      if (dim4 !== dim || n !== stride) rows.fill(0);
      for (let r = 0; r < n; r++) {
        const o = rowAt(r);
        rows.set(data.subarray(o, o + dim), r * dim4);
      }
      dots(rowsAt, qBlocks, setAt[set]! + from * rowBytes, pairs, outAt);
      return { t: new Float32Array(memory.buffer, outAt, pairs * 2 * stride), stride };
    },
  };
}
