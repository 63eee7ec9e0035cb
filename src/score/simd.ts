/**
 * Fast CPU MaxSim: a WebAssembly SIMD128 kernel built at run time by ./wasm-emit.ts, specialised for
 * the vector dimension, with the plain-JS oracle (./cpu.ts) as the fallback where SIMD is missing.
 *
 * How it is fast: the kernel computes a 4 query rows x 2 document rows block of dot products per
 * step with eight f32x4 accumulators (the dimension loop fully unrolled, memory offsets as
 * immediates), reduces the eight sums with a shuffle transpose straight into a running f32x4 max,
 * and sums the four query blocks' maxima at the end. Where relaxed SIMD exists it uses
 * `f32x4.relaxed_madd` (one fused multiply-add instead of a multiply and an add).
 *
 * Exactness: the kernel computes in float32 over rows decoded exactly as ../store/precision.ts
 * defines (fp16 through a 65,536-entry table, int8 as `q * scale` rounded to float32), so scores
 * differ from the oracle (which sums in float64) only by float32 rounding, far below 1e-4.
 *
 * Memory: shards are streamed through a few MiB of WASM memory in chunks of whole documents (a copy
 * costs about 1/16 of the arithmetic it feeds for a 32-token query), so nothing is held twice.
 */
import { fromHalf } from '../store/precision.ts';
import type { ShardView } from '../store/types.ts';
import type { TokenMatrix } from '../types.ts';
import { maxSimShard } from './cpu.ts';
import { encodeModule, FunctionBody, I32, pushPairSum, storeHalfSums, V128 } from './wasm-emit.ts';

/** A CPU MaxSim implementation over whole shards (same contract as {@link maxSimShard}). */
export interface MaxSimKernel {
  /** 'wasm-relaxed-simd', 'wasm-simd' or 'js'. */
  readonly name: 'wasm-relaxed-simd' | 'wasm-simd' | 'js';
  /** Scores every slot of `shard`: deleted slots -Infinity, zero-token documents 0. */
  scoreShard(query: TokenMatrix, shard: ShardView, out?: Float32Array): Float32Array;
}

/** Query rows per register block (the shuffle transpose below assumes 4). */
const QB = 4;
/** Target bytes of document rows per chunk copied into WASM memory. */
const CHUNK_BYTES = 4 << 20;
/** Most documents per chunk. */
const CHUNK_DOCS = 2048;
const PAGE = 65536;

/**
 * Emits the kernel for vectors padded to `dim4` floats (a multiple of 4).
 * `score(q, qBlocks, docs, offsets, docCount, out)`: for each document d, rows
 * `offsets[d] .. offsets[d + 1]` of `docs` (row stride dim4 floats), writes its MaxSim against the
 * `qBlocks * 4` query rows at `q` to `out[d]` (0 for a document without rows).
 * Invariant: padding query rows are zero (their best dot product is exactly 0).
 */
function emitKernel(dim4: number, relaxed: boolean): Uint8Array<ArrayBuffer> {
  const functions = [{ name: 'score', body: maxSimFunction(dim4, relaxed), results: [] }, { name: 'decode_f16', body: emitDecodeHalf(), results: [] }];
  if (dim4 % 16 === 0) functions.push({ name: 'decode_i8', body: emitDecodeInt8(dim4), results: [] });
  return encodeModule(functions, 1);
}

/**
 * The body of {@link emitKernel}'s `score` function, for modules that score rows they decoded
 * themselves (the compressed index's residual stage, ./residual-simd.ts).
 */
export function maxSimFunction(dim4: number, relaxed: boolean): FunctionBody {
  const row = dim4 * 4;
  const f = new FunctionBody([I32, I32, I32, I32, I32, I32]);
  const [q, qBlocks, docs, offs, docCount, out] = [0, 1, 2, 3, 4, 5];
  const doc = f.local(I32);
  const r0 = f.local(I32);
  const r1 = f.local(I32);
  const last = f.local(I32);
  const qb = f.local(I32);
  const qEnd = f.local(I32);
  const p0 = f.local(I32);
  const p1 = f.local(I32);
  const acc = Array.from({ length: 2 * QB }, () => f.local(V128));
  const d0 = f.local(V128);
  const d1 = f.local(V128);
  const qv = f.local(V128);
  const t0 = f.local(V128);
  const t1 = f.local(V128);
  const best = f.local(V128);
  const total = f.local(V128);

  // best = max(best, [sum(a[0]), sum(a[1]), sum(a[2]), sum(a[3])]).
  const reduceInto = (a: readonly number[]): void => {
    storeHalfSums(f, a, t0, t1);
    f.get(best);
    pushPairSum(f, t0, t1);
    f.f32x4_pmax().set(best);
  };

  f.i32_const(0).set(doc);
  f.block().loop();
  {
    f.get(doc).get(docCount).i32_ge_u().br_if(1);
    f.get(offs).get(doc).i32_const(2).i32_shl().i32_add().tee(p0).i32_load(0).i32_const(row).i32_mul().get(docs).i32_add().set(r0);
    f.get(p0).i32_load(4).i32_const(row).i32_mul().get(docs).i32_add().set(r1);
    f.v128_const_f32(0).set(total);
    f.get(r0).get(r1).i32_ne().if_();
    {
      f.get(r1).i32_const(row).i32_sub().set(last);
      f.get(q).set(qb);
      f.get(q).get(qBlocks).i32_const(QB * row).i32_mul().i32_add().set(qEnd);
      f.loop();
      {
        f.v128_const_f32(-Infinity).set(best);
        f.get(r0).set(p0);
        f.loop();
        {
          // Second row of the pair; past the end it repeats the last row, which leaves the max unchanged.
          f.get(last).get(p0).i32_const(row).i32_add().tee(p1).get(p1).get(last).i32_gt_u().select().set(p1);
          for (const a of acc) f.v128_const_f32(0).set(a);
          for (let k = 0; k < dim4 / 4; k++) {
            f.get(p0).v128_load(k * 16).set(d0);
            f.get(p1).v128_load(k * 16).set(d1);
            for (let i = 0; i < QB; i++) {
              f.get(qb).v128_load(i * row + k * 16).set(qv);
              const a0 = acc[i]!;
              const a1 = acc[QB + i]!;
              if (relaxed) {
                f.get(qv).get(d0).get(a0).f32x4_relaxed_madd().set(a0);
                f.get(qv).get(d1).get(a1).f32x4_relaxed_madd().set(a1);
              } else {
                f.get(a0).get(qv).get(d0).f32x4_mul().f32x4_add().set(a0);
                f.get(a1).get(qv).get(d1).f32x4_mul().f32x4_add().set(a1);
              }
            }
          }
          reduceInto(acc.slice(0, QB));
          reduceInto(acc.slice(QB));
          f.get(p0).i32_const(2 * row).i32_add().tee(p0).get(r1).i32_lt_u().br_if(0);
        }
        f.end();
        f.get(total).get(best).f32x4_add().set(total);
        f.get(qb).i32_const(QB * row).i32_add().tee(qb).get(qEnd).i32_lt_u().br_if(0);
      }
      f.end();
    }
    f.end();
    // out[doc] = the four lanes of total, summed.
    f.get(out).get(doc).i32_const(2).i32_shl().i32_add();
    f.get(total).f32x4_extract_lane(0).get(total).f32x4_extract_lane(1);
    f.f32_add();
    f.get(total).f32x4_extract_lane(2).get(total).f32x4_extract_lane(3);
    f.f32_add();
    f.f32_add();
    f.f32_store(0);
    f.get(doc).i32_const(1).i32_add().set(doc);
    f.br(0);
  }
  f.end().end();
  return f;
}

/**
 * `decode_f16(src, dst, n)`: n (a multiple of 4) IEEE halves at `src` to floats at `dst`, exactly
 * as fromHalf in ../store/precision.ts: the magnitude bits shifted into a float's place and
 * multiplied by 2^112 re-bias normal and subnormal halves alike; Infinity and NaN are set apart.
 */
function emitDecodeHalf(): FunctionBody {
  const f = new FunctionBody([I32, I32, I32]);
  const [src, dst, n] = [0, 1, 2];
  const end = f.local(I32);
  const h = f.local(V128);
  f.get(src).get(n).i32_const(1).i32_shl().i32_add().set(end);
  f.get(n).i32_const(0).i32_ne().if_().loop();
  f.get(src).v128_load16x4_u(0).set(h);
  f.get(dst);
  // Infinity / NaN: exponent all ones, the mantissa moved into place.
  f.get(h).v128_const_i32(0x3ff).v128_and().i32_const(13).i32x4_shl().v128_const_i32(0x7f800000).v128_or();
  // Everything else: (bits & 0x7fff) << 13, as a float, times 2^112.
  f.get(h).v128_const_i32(0x7fff).v128_and().i32_const(13).i32x4_shl().v128_const_f32(2 ** 112).f32x4_mul();
  f.get(h).v128_const_i32(0x7c00).v128_and().v128_const_i32(0x7c00).i32x4_eq().v128_bitselect();
  f.get(h).v128_const_i32(0x8000).v128_and().i32_const(16).i32x4_shl().v128_or();
  f.v128_store(0);
  f.get(dst).i32_const(16).i32_add().set(dst);
  f.get(src).i32_const(8).i32_add().tee(src).get(end).i32_lt_u().br_if(0);
  f.end().end();
  return f;
}

/**
 * `decode_i8(src, scales, dst, rows)`: rows of `dim` int8 values times their row's float scale,
 * rounded to float32 once, exactly as decodeRow does. Needs dim % 16 == 0.
 */
function emitDecodeInt8(dim: number): FunctionBody {
  const f = new FunctionBody([I32, I32, I32, I32]);
  const [src, scales, dst, rows] = [0, 1, 2, 3];
  const end = f.local(I32);
  const scale = f.local(V128);
  const bytes = f.local(V128);
  const half = f.local(V128);
  f.get(scales).get(rows).i32_const(2).i32_shl().i32_add().set(end);
  f.get(rows).i32_const(0).i32_ne().if_().loop();
  f.get(scales).f32_load(0).f32x4_splat().set(scale);
  for (let k = 0; k < dim; k += 16) {
    f.get(src).v128_load(k).set(bytes);
    for (const [j, widen] of [[0, 'low'], [1, 'high']] as const) {
      f.get(bytes);
      if (widen === 'low') f.i16x8_extend_low_i8x16_s();
      else f.i16x8_extend_high_i8x16_s();
      f.set(half);
      f.get(dst).get(half).i32x4_extend_low_i16x8_s().f32x4_convert_i32x4_s().get(scale).f32x4_mul().v128_store((k + j * 8) * 4);
      f.get(dst).get(half).i32x4_extend_high_i16x8_s().f32x4_convert_i32x4_s().get(scale).f32x4_mul().v128_store((k + j * 8 + 4) * 4);
    }
  }
  f.get(src).i32_const(dim).i32_add().set(src);
  f.get(dst).i32_const(dim * 4).i32_add().set(dst);
  f.get(scales).i32_const(4).i32_add().tee(scales).get(end).i32_lt_u().br_if(0);
  f.end().end();
  return f;
}

let halfTable: Float32Array | undefined;
/** Every half-float bit pattern decoded (256 KiB, built once per realm). */
function halves(): Float32Array {
  if (!halfTable) {
    halfTable = new Float32Array(65536);
    for (let h = 0; h < 65536; h++) halfTable[h] = fromHalf(h);
  }
  return halfTable;
}

const support = new Map<boolean, boolean>();
/** Whether this engine validates SIMD128 (and, with `relaxed`, relaxed-SIMD) modules; cached. */
export function wasmSimdSupported(relaxed = false): boolean {
  let ok = support.get(relaxed);
  if (ok === undefined) {
    try {
      ok = typeof WebAssembly === 'object' && WebAssembly.validate(emitKernel(4, relaxed));
    } catch {
      ok = false;
    }
    support.set(relaxed, ok);
  }
  return ok;
}

type ScoreFn = (q: number, qBlocks: number, docs: number, offs: number, docCount: number, out: number) => void;
type DecodeHalfFn = (src: number, dst: number, n: number) => void;
type DecodeInt8Fn = (src: number, scales: number, dst: number, rows: number) => void;

class WasmKernel implements MaxSimKernel {
  private f32: Float32Array;
  private u32: Uint32Array;

  constructor(
    readonly name: 'wasm-relaxed-simd' | 'wasm-simd',
    private readonly dim4: number,
    private readonly memory: WebAssembly.Memory,
    private readonly run: ScoreFn,
    private readonly decodeHalf: DecodeHalfFn,
    private readonly decodeInt8: DecodeInt8Fn | undefined,
  ) {
    this.f32 = new Float32Array(memory.buffer);
    this.u32 = new Uint32Array(memory.buffer);
    this.u8 = new Uint8Array(memory.buffer);
  }
  private u8: Uint8Array;

  private reserve(bytes: number): void {
    const have = this.memory.buffer.byteLength;
    if (bytes <= have) return;
    this.memory.grow(Math.ceil((bytes - have) / PAGE));
    this.f32 = new Float32Array(this.memory.buffer);
    this.u32 = new Uint32Array(this.memory.buffer);
    this.u8 = new Uint8Array(this.memory.buffer);
  }

  scoreShard(query: TokenMatrix, shard: ShardView, out = new Float32Array(shard.docIds.length)): Float32Array {
    const { dim, offsets, docIds } = shard;
    const dim4 = this.dim4;
    if (dim !== query.dim || Math.ceil(dim / 4) * 4 !== dim4) throw new Error(`kernel built for dim ${dim4} got shard dim ${dim}, query dim ${query.dim}`);
    const row = dim4 * 4;
    const qBlocks = Math.ceil(query.tokens / QB);
    // Layout (bytes): query | offsets | scores | document rows, the rows 64-byte aligned: besides
    // aligned SIMD loads, a copy out of a SharedArrayBuffer (shards shared with scoring
    // sub-workers) runs word by word only when source and destination share their alignment, and
    // byte by byte (5x slower, measured) when they do not.
    const qBytes = qBlocks * QB * row;
    const offAt = qBytes;
    const outAt = offAt + (CHUNK_DOCS + 1) * 4;
    const docsAt = Math.ceil((outAt + CHUNK_DOCS * 4) / 64) * 64;
    let maxDocRows = 0;
    for (let d = 0; d < docIds.length; d++) maxDocRows = Math.max(maxDocRows, offsets[d + 1]! - offsets[d]!);
    const chunkRows = Math.max(Math.floor(CHUNK_BYTES / row), maxDocRows);
    const precision = shard.precision;
    // fp16 and int8 rows are copied packed into a staging area and decoded there by WASM SIMD.
    const staged = dim === dim4 && (precision === 'fp16' || (precision === 'int8' && this.decodeInt8 !== undefined));
    const elem = precision === 'fp16' ? 2 : 1;
    const stageAt = Math.ceil((docsAt + chunkRows * row) / 64) * 64;
    const scalesAt = stageAt + Math.ceil((chunkRows * dim * elem) / 16) * 16;
    this.reserve(staged ? scalesAt + chunkRows * 4 : docsAt + chunkRows * row);
    const f32 = this.f32;
    const u32 = this.u32;
    const u8 = this.u8;

    f32.fill(0, 0, qBytes / 4);
    if (dim === dim4) f32.set(query.data, 0);
    else for (let i = 0; i < query.tokens; i++) f32.set(query.data.subarray(i * dim, (i + 1) * dim), i * dim4);

    const table = precision === 'fp16' && !staged ? halves() : undefined;
    const packedBytes = staged ? new Uint8Array(shard.vectors.buffer, shard.vectors.byteOffset, shard.vectors.byteLength) : undefined;
    const base = docsAt / 4;
    // Rows [from, from + n) of the shard to chunk row `row`, decoded (or staged) for the kernel.
    const copy = (from: number, n: number, row: number): void => {
      const at = base + row * dim4;
      if (packedBytes) {
        u8.set(packedBytes.subarray(from * dim * elem, (from + n) * dim * elem), stageAt + row * dim * elem);
        if (precision === 'int8') f32.set(shard.scales!.subarray(from, from + n), scalesAt / 4 + row);
      } else if (precision === 'fp32') {
        const v = shard.vectors as Float32Array;
        if (dim === dim4) f32.set(v.subarray(from * dim, (from + n) * dim), at);
        else for (let r = 0; r < n; r++) f32.set(v.subarray((from + r) * dim, (from + r + 1) * dim), at + r * dim4);
      } else if (table) {
        const v = shard.vectors as Uint16Array;
        for (let r = 0; r < n; r++) {
          const src = (from + r) * dim;
          const dst = at + r * dim4;
          for (let k = 0; k < dim; k++) f32[dst + k] = table[v[src + k]!]!;
        }
      } else {
        const v = shard.vectors as Int8Array;
        const scales = shard.scales!;
        for (let r = 0; r < n; r++) {
          const src = (from + r) * dim;
          const dst = at + r * dim4;
          const scale = scales[from + r]!;
          for (let k = 0; k < dim; k++) f32[dst + k] = v[src + k]! * scale;
        }
      }
      if (dim !== dim4) for (let r = 0; r < n; r++) f32.fill(0, at + r * dim4 + dim, at + (r + 1) * dim4);
    };
    let start = 0;
    while (start < docIds.length) {
      let rows = 0;
      let end = start;
      u32[offAt / 4] = 0;
      // Live documents next to each other are next to each other in the shard's rows: each such
      // run is copied at once (a copy per document measured 2x slower over a store's many shards).
      let runFrom = 0;
      let runRow = 0;
      let runRows = 0;
      while (end < docIds.length && end - start < CHUNK_DOCS) {
        const from = offsets[end]!;
        const n = docIds[end] === null ? 0 : offsets[end + 1]! - from;
        if (rows + n > chunkRows && end > start) break;
        if (n > 0) {
          if (runRows > 0 && runFrom + runRows === from) runRows += n;
          else {
            if (runRows > 0) copy(runFrom, runRows, runRow);
            runFrom = from;
            runRow = rows;
            runRows = n;
          }
        }
        rows += n;
        end++;
        u32[offAt / 4 + end - start] = rows;
      }
      if (runRows > 0) copy(runFrom, runRows, runRow);
      if (staged && rows > 0) {
        if (precision === 'fp16') this.decodeHalf(stageAt, docsAt, rows * dim);
        else this.decodeInt8!(stageAt, scalesAt, docsAt, rows);
      }
      this.run(0, qBlocks, docsAt, offAt, end - start, outAt);
      for (let d = start; d < end; d++) out[d] = docIds[d] === null ? -Infinity : f32[outAt / 4 + d - start]!;
      start = end;
    }
    return out;
  }
}

const jsKernel: MaxSimKernel = { name: 'js', scoreShard: maxSimShard };
const kernels = new Map<string, Promise<MaxSimKernel>>();

/** Options of {@link loadMaxSimKernel}. */
export interface KernelOptions {
  /** Use relaxed SIMD (fused multiply-add) where the engine has it. Default true. */
  relaxed?: boolean;
  /** Allow WebAssembly at all (false gives the plain-JS kernel). Default true. */
  wasm?: boolean;
}

/**
 * The fastest CPU kernel this realm runs for `dim`-dimensional vectors: WASM relaxed SIMD, WASM
 * SIMD128, or plain JS. One instance (and WASM memory) per dim and kind per realm; not re-entrant,
 * which is fine because scoring is synchronous.
 */
export function loadMaxSimKernel(dim: number, options: KernelOptions = {}): Promise<MaxSimKernel> {
  const wantWasm = options.wasm ?? true;
  const relaxed = wantWasm && (options.relaxed ?? true) && wasmSimdSupported(true);
  const simd = wantWasm && wasmSimdSupported(false);
  if (!simd) return Promise.resolve(jsKernel);
  const dim4 = Math.ceil(dim / 4) * 4;
  const key = `${dim4}:${relaxed}`;
  let kernel = kernels.get(key);
  if (!kernel) {
    kernel = WebAssembly.instantiate(emitKernel(dim4, relaxed)).then(({ instance }) => {
      const exports = instance.exports as { memory: WebAssembly.Memory; score: ScoreFn; decode_f16: DecodeHalfFn; decode_i8?: DecodeInt8Fn };
      return new WasmKernel(relaxed ? 'wasm-relaxed-simd' : 'wasm-simd', dim4, exports.memory, exports.score, exports.decode_f16, exports.decode_i8);
    });
    kernels.set(key, kernel);
  }
  return kernel;
}
