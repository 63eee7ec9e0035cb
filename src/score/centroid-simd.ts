/**
 * Query-centroid scores and code assignment on the CPU with WebAssembly SIMD (the first stage of
 * the compressed index, see ./compressed.ts, and ../score/train.ts): rows (query rows or token
 * vectors) against a resident table of centroid rows, 4 rows x 2 centroids per step with eight
 * f32x4 accumulators (the same register blocking as the MaxSim kernel in ./simd.ts), the dimension
 * loop unrolled.
 *
 * Tables are fp32 (k-means while training) or IEEE halves (a codec's centroids,
 * ../store/residual.ts). A half table is decoded two centroids at a time into a 1 KiB scratch
 * (exactly as `fromHalf`), so the only resident copy of a codec's centroids is 2 bytes a
 * dimension; where the table has the codec's own layout (dim a multiple of 4), {@link
 * residentCentroids} leaves a view of it in the codec in place of the codec's array, so one copy
 * is resident in all. A binding's memory is sized once (table plus a fixed scratch of about 1
 * MiB, and for a codec's table 2 MiB more at dim 128 that the residual stage, ./residual-simd.ts,
 * works in: it imports this memory and reads the same halves) and never grows, which keeps such
 * views valid. Where WebAssembly SIMD is missing,
 * {@link centroidScores} of ./compressed.ts (plain JS) is used.
 *
 * The kernel writes the scores centroid-major (`T[c * Qpad + i]`); `centroidScoresSimd` returns
 * the query-major `S[i * C + c]` the stages take. Sums run in float32 in four lanes, so values
 * differ from the plain-JS reference by float32 rounding only (tests: within 1e-5).
 */
import { centroidCount, type ResidualCodec } from '../store/residual.ts';
import type { TokenMatrix } from '../types.ts';
import { centroidScores, cpuCompressedKernels, type CompressedKernels } from './compressed.ts';
import { encodeModule, FunctionBody, I32, pushPairSum, storeHalfSums, V128 } from './wasm-emit.ts';
const QB = 4;
const PAGE = 65536;

/**
 * `dots(q, qBlocks, cs, pairs, out)`: for centroid pairs `0 .. pairs` of an fp32 table at `cs`, the
 * dot products with every query block. `dots16(q, qBlocks, cs, pairs, out, scratch)`: the same
 * over a table of IEEE halves, each pair decoded into `scratch` (2 x dim4 floats) first.
 */
function emitDots(dim4: number, half: boolean): FunctionBody {
  const row = dim4 * 4;
  const f = new FunctionBody(half ? [I32, I32, I32, I32, I32, I32] : [I32, I32, I32, I32, I32]);
  const [q, qBlocks, cs, pairs, out, scratch] = [0, 1, 2, 3, 4, 5];
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
  const h = f.local(V128);
  const src = f.local(I32);
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
    if (half) {
      // The pair's 2 x dim4 halves to floats in scratch, exactly as fromHalf (../store/precision.ts):
      // the magnitude bits shifted into a float's place times 2^112 (normal and subnormal alike),
      // Infinity / NaN set apart, then the sign.
      f.get(pair).i32_const(2 * dim4 * 2).i32_mul().get(cs).i32_add().set(src);
      for (let k = 0; k < (2 * dim4) / 4; k++) {
        f.get(src).v128_load16x4_u(k * 8).set(h);
        f.get(scratch);
        f.get(h).v128_const_i32(0x3ff).v128_and().i32_const(13).i32x4_shl().v128_const_i32(0x7f800000).v128_or();
        f.get(h).v128_const_i32(0x7fff).v128_and().i32_const(13).i32x4_shl().v128_const_f32(2 ** 112).f32x4_mul();
        f.get(h).v128_const_i32(0x7c00).v128_and().v128_const_i32(0x7c00).i32x4_eq().v128_bitselect();
        f.get(h).v128_const_i32(0x8000).v128_and().i32_const(16).i32x4_shl().v128_or();
        f.v128_store(k * 16);
      }
      f.get(scratch).set(p0);
    } else {
      f.get(pair).i32_const(2 * row).i32_mul().get(cs).i32_add().set(p0);
    }
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
  return f;
}

function emitModule(dim4: number): Uint8Array<ArrayBuffer> {
  return encodeModule([{ name: 'dots', body: emitDots(dim4, false), results: [] }, { name: 'dots16', body: emitDots(dim4, true), results: [] }], 1);
}

/** The bound table of a codec's centroids, per centroid array (the codec's own, or the view left in its place). */
const codecTables = new WeakMap<Uint16Array, BlockDots | null>();

/** The binding of a codec's centroids (created once per array; null where WebAssembly SIMD is missing). */
function codecTable(dim: number, centroids: Uint16Array): BlockDots | null {
  let bd = codecTables.get(centroids);
  if (bd === undefined) {
    bd = bindCentroids(dim, [centroids], codecScratchBytes(dim));
    codecTables.set(centroids, bd);
  }
  return bd;
}

/**
 * Bytes of the extra scratch a codec's binding reserves for the residual stage
 * (./residual-simd.ts works in this binding's memory, over the same halves, and the memory
 * never grows): 4,096 fp32 rows' worth (2 MiB at dim 128), fixed, whatever the index's size.
 */
export function codecScratchBytes(dim: number): number {
  return dim % 8 === 0 ? 4096 * dim * 4 : 0;
}

/**
 * The kernel's table of `codec`'s centroids, bound once per centroid array; where its layout is
 * the codec's own (dim a multiple of 4), the codec's `centroids` becomes a view of that table, so
 * that the codec's halves are resident once (the array it held before is no longer referenced by
 * the codec). Null where WebAssembly SIMD is missing.
 */
export function residentCentroids(codec: ResidualCodec): BlockDots | null {
  const bd = codecTable(codec.dim, codec.centroids);
  if (bd) {
    const view = bd.view(0);
    if (view instanceof Uint16Array && view !== codec.centroids && view.length === codec.centroids.length) {
      codecTables.set(view, bd);
      codec.centroids = view;
    }
  }
  return bd;
}

/** The bound table of fp32 rows (a centroid tree's coarse level), per array. */
const floatTables = new WeakMap<Float32Array, BlockDots | null>();

/**
 * The binding of a centroid array that assignment reuses: a codec's halves (shared with
 * {@link residentCentroids}) or fp32 rows (a tree's coarse centroids), bound once per array.
 * `centroids` must not change after it is first bound.
 */
export function boundTable(dim: number, centroids: Float32Array | Uint16Array): BlockDots | null {
  if (centroids instanceof Uint16Array) return codecTable(dim, centroids);
  let bd = floatTables.get(centroids);
  if (bd === undefined) {
    bd = bindCentroids(dim, [centroids]);
    floatTables.set(centroids, bd);
  }
  return bd;
}

/**
 * Bytes of WASM memory holding a copy of `centroids` in a kept binding ({@link boundTable},
 * {@link residentCentroids}), beyond the array itself: 0 when unbound or when the array is a
 * view of its table (then the table is the one copy).
 */
export function kernelCopyBytes(dim: number, centroids: Float32Array | Uint16Array): number {
  const bd = centroids instanceof Uint16Array ? codecTables.get(centroids) : floatTables.get(centroids);
  if (!bd) return 0;
  return bd.view(0) === centroids ? 0 : bd.tableBytes;
}

/** Whether the SIMD kernel runs here (false where WebAssembly SIMD is missing). */
export function centroidSimdAvailable(codec: ResidualCodec): boolean {
  return residentCentroids(codec) !== null;
}

/**
 * Query rows per group of the centroid-major layout {@link centroidMajorScores} gives (the
 * centroid interaction kernel's, ./interaction-simd.ts): each centroid's rows padded to a multiple of this.
 */
export const MAJOR_ROWS = 16;

/** The centroid-major copy of scores that {@link centroidScoresSimd} returned, by those scores. */
const majors = new WeakMap<Float32Array, { t: Float32Array; qp: number }>();

/**
 * The same scores as `scores` (returned by {@link centroidScoresSimd}) laid out centroid-major,
 * `T[c * qp + i]` with `qp` the query rows rounded up to {@link MAJOR_ROWS} and the padding rows
 * 0: the kernel's own output, copied as it came, so that centroid interaction need not transpose
 * `S` back. Undefined for scores made otherwise (plain JS, a query longer than one kernel block).
 */
export function centroidMajorScores(scores: Float32Array): { t: Float32Array; qp: number } | undefined {
  return majors.get(scores);
}

/** `S[i * C + c] = <q_i, centroid_c>` through the SIMD kernel (plain JS where it cannot run). */
export function centroidScoresSimd(query: TokenMatrix, codec: ResidualCodec): Float32Array {
  const bd = query.tokens === 0 ? null : residentCentroids(codec);
  if (!bd) return centroidScores(query, codec);
  const { dim } = codec;
  const count = centroidCount(codec);
  const nq = query.tokens;
  const s = new Float32Array(nq * count);
  const qp = Math.ceil(nq / MAJOR_ROWS) * MAJOR_ROWS;
  const stride = Math.ceil(nq / QB) * QB;
  if (nq <= ASSIGN_BLOCK && 2 * stride <= bd.outFloats) {
    // One block of rows: the kernel's centroid-major output is T's layout but for the padding
    // (rows to a multiple of 4 there, of 16 in T), copied as it lies; S is its transpose.
    const t = new Float32Array(count * qp);
    const width = Math.max(2, Math.floor(bd.outFloats / stride) & ~1);
    for (let c0 = 0; c0 < count; c0 += width) {
      const c1 = Math.min(count, c0 + width);
      const block = bd.scores(query.data, (r) => r * dim, nq, 0, c0, c1).t;
      if (stride === qp) {
        t.set(block.subarray(0, (c1 - c0) * qp), c0 * qp);
        continue;
      }
      for (let c = c0; c < c1; c++) {
        const from = (c - c0) * stride;
        const to = c * qp;
        for (let i = 0; i < nq; i++) t[to + i] = block[from + i]!;
      }
    }
    for (let i = 0; i < nq; i++) {
      const o = i * count;
      for (let c = 0, at = i; c < count; c++, at += qp) s[o + c] = t[at]!;
    }
    majors.set(s, { t, qp });
    return s;
  }
  // Blocks of query rows x centroid ranges that fit the binding's output scratch.
  for (let r0 = 0; r0 < nq; r0 += ASSIGN_BLOCK) {
    const m = Math.min(ASSIGN_BLOCK, nq - r0);
    const width = Math.max(2, Math.floor(bd.outFloats / (Math.ceil(m / QB) * QB)) & ~1);
    for (let c0 = 0; c0 < count; c0 += width) {
      const c1 = Math.min(count, c0 + width);
      const { t, stride } = bd.scores(query.data, (r) => (r0 + r) * dim, m, 0, c0, c1);
      for (let c = c0; c < c1; c++) {
        const o = (c - c0) * stride;
        for (let i = 0; i < m; i++) s[(r0 + i) * count + c] = t[o + i]!;
      }
    }
  }
  return s;
}

/** The CPU stages with the SIMD centroid scores (the compressed index's default). */
export const simdCompressedKernels: CompressedKernels = { ...cpuCompressedKernels, centroidScores: centroidScoresSimd };

/**
 * Block dot products for training, code assignment (../score/train.ts) and the query-centroid
 * scores: rows against a resident table of centroid rows. The table (one or more centroid sets,
 * fp32 or halves, each padded to `dim4` and followed by two zero rows so that an odd range runs
 * as whole pairs) is copied into the module's memory once per {@link bindCentroids} call; each
 * {@link BlockDots.scores} call copies only its rows, at most {@link ASSIGN_BLOCK} of them, and
 * returns the centroid-major scores `T[c * rowsPadded + i]` of centroids `from .. to` of one set.
 */
export const ASSIGN_BLOCK = 256;
/** Most floats of one block's output (1 MiB; at least 4 rows of the widest set); blocks shrink below {@link ASSIGN_BLOCK} rows for large centroid sets. */
const BLOCK_OUT_FLOATS = 1 << 18;

let dotsModules = new Map<number, WebAssembly.Module>();
let blockOk: boolean | undefined;

/** A bound table of centroid sets and scratch space for rows and scores. */
export interface BlockDots {
  readonly dim: number;
  /** Floats of the output scratch: a {@link scores} call's `2 * ceil(width / 2) * stride` must fit. */
  readonly outFloats: number;
  /** Bytes of the bound tables (the copies of the centroids). */
  readonly tableBytes: number;
  /** The module's memory (never grows: views and addresses stay valid), for kernels that import it. */
  readonly memory: WebAssembly.Memory;
  /** The extra scratch asked of {@link bindCentroids}: its byte address and size (size 0 when none). */
  readonly extra: { readonly at: number; readonly bytes: number };
  /** Byte address of set `set`'s table in {@link memory}. */
  tableAt(set: number): number;
  /** Most rows one {@link scores} call takes for `width` centroids. */
  blockRows(width: number): number;
  /**
   * Set `set`'s table in the module's memory, as the set's own type: `rows * dim4` elements (valid
   * for the binding's life: the memory never grows). Read only.
   */
  view(set: number): Float32Array | Uint16Array;
  /**
   * Scores of `n` rows (row `r` is `data[rowAt(r) ..]`) against centroids `from .. to` of set
   * `set`: a view `T[c * stride + i]` (c relative to `from`), valid until the next call.
   */
  scores(data: Float32Array, rowAt: (r: number) => number, n: number, set: number, from: number, to: number): { t: Float32Array; stride: number };
}

/**
 * Binds centroid sets (`rows x dim` each, row-major; fp32 or IEEE half bits) into a fresh WASM
 * SIMD instance whose memory is sized here once (tables, the kernel's scratch, and `extraBytes`
 * for a kernel that imports the memory: {@link BlockDots.extra}); null where WebAssembly SIMD is missing (callers
 * fall back to plain JS).
 */
export function bindCentroids(dim: number, sets: readonly (Float32Array | Uint16Array)[], extraBytes = 0): BlockDots | null {
  if (blockOk === false) return null;
  const dim4 = Math.ceil(dim / 4) * 4;
  const rowBytes = dim4 * 4;
  let memory: WebAssembly.Memory;
  let dots: (q: number, qBlocks: number, cs: number, pairs: number, out: number) => void;
  let dots16: (q: number, qBlocks: number, cs: number, pairs: number, out: number, scratch: number) => void;
  try {
    let module = dotsModules.get(dim4);
    if (!module) {
      module = new WebAssembly.Module(emitModule(dim4));
      dotsModules.set(dim4, module);
    }
    const instance = new WebAssembly.Instance(module);
    memory = instance.exports['memory'] as WebAssembly.Memory;
    dots = instance.exports['dots'] as typeof dots;
    dots16 = instance.exports['dots16'] as typeof dots16;
    blockOk = true;
  } catch {
    blockOk = false;
    dotsModules = new Map();
    return null;
  }
  const align = (n: number) => Math.ceil(n / 16) * 16;
  // Each set: its rows, then two zero rows so an odd centroid range can run as whole pairs.
  const setAt: number[] = [];
  const halfSet: boolean[] = [];
  let at = 64;
  let widest = 0;
  for (const s of sets) {
    const rows = s.length / dim;
    widest = Math.max(widest, rows);
    setAt.push(at);
    halfSet.push(s instanceof Uint16Array);
    at = align(at + (rows + 2) * dim4 * s.BYTES_PER_ELEMENT);
  }
  const tableBytes = at - 64;
  const scratchAt = at;
  const rowsAt = scratchAt + 2 * rowBytes;
  const outAt = rowsAt + ASSIGN_BLOCK * rowBytes;
  const outFloats = Math.max(QB * (widest + 2), Math.min(BLOCK_OUT_FLOATS, ASSIGN_BLOCK * (widest + 2)));
  const extraAt = Math.ceil((outAt + outFloats * 4) / 64) * 64;
  const end = extraAt + extraBytes;
  if (end > memory.buffer.byteLength) memory.grow(Math.ceil((end - memory.buffer.byteLength) / PAGE));
  const buffer = memory.buffer;
  const views = sets.map((s, k) => {
    const rows = s.length / dim;
    const view = halfSet[k] ? new Uint16Array(buffer, setAt[k]!, rows * dim4) : new Float32Array(buffer, setAt[k]!, rows * dim4);
    for (let c = 0; c < rows; c++) view.set(s.subarray(c * dim, (c + 1) * dim), c * dim4);
    return view;
  });
  const blockRows = (width: number) => Math.max(QB, Math.min(ASSIGN_BLOCK, Math.floor(outFloats / Math.max(1, width + 1) / QB) * QB));
  const rows = new Float32Array(buffer, rowsAt, ASSIGN_BLOCK * dim4);
  const out = new Float32Array(buffer, outAt, outFloats);
  return {
    dim,
    outFloats,
    tableBytes,
    memory,
    extra: { at: extraAt, bytes: extraBytes },
    tableAt: (set) => setAt[set]!,
    blockRows,
    view: (set) => views[set]!,
    scores(data, rowAt, n, set, from, to) {
      const pairs = Math.ceil((to - from) / 2);
      const qBlocks = Math.ceil(n / QB);
      const stride = qBlocks * QB;
      if (stride > ASSIGN_BLOCK || pairs * 2 * stride > outFloats) throw new RangeError(`${n} rows x ${to - from} centroids do not fit the kernel's scratch`);
      if (dim4 !== dim || n !== stride) rows.fill(0, 0, stride * dim4);
      for (let r = 0; r < n; r++) {
        const o = rowAt(r);
        rows.set(data.subarray(o, o + dim), r * dim4);
      }
      if (halfSet[set]) dots16(rowsAt, qBlocks, setAt[set]! + from * dim4 * 2, pairs, outAt, scratchAt);
      else dots(rowsAt, qBlocks, setAt[set]! + from * rowBytes, pairs, outAt);
      return { t: out.subarray(0, pairs * 2 * stride), stride };
    },
  };
}
