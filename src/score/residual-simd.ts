/**
 * Residual MaxSim on the CPU with WebAssembly SIMD (the fourth stage of the compressed index, see
 * ./compressed.ts): the candidates' tokens are decoded into float32 rows in the module's memory,
 * in chunks of whole documents, and scored there by the project's MaxSim kernel body
 * (./simd.ts `maxSimFunction`, the one exhaustive search runs), with no copy in between.
 *
 * Decoding (`decode`), as ../store/residual.ts defines it: per group of 4 dimensions, the bucket
 * weights of its residual bits come from that module's byte table (`residualByteWeights`: 256
 * entries of `8 / nbits` floats: one f32x4 per byte at 2 bits, two at 1 bit, half of one at 4 bits), are
 * added to the centroid's 4 components (float32, as `decodeToken` rounds them), and the squares
 * are accumulated in f32x4; the row is then scaled by 1 / |u| (a zero row stays zero). The norm
 * is summed in float32 (`decodeToken` and the batched `decodeTokens` sum it in float64), so a
 * decoded row can differ from theirs in the last bit; scores stay within 1e-5 of the reference
 * (test/unit/compressed-simd.test.ts).
 *
 * Why not a plain-JS decoder feeding the kernel: measured on this machine (a batched JS decoder
 * with the same byte table) it took longer than the MaxSim itself (60-100 ms for 41k tokens
 * against 25-50 ms for scoring them); in WASM the whole stage costs about what the MaxSim does. The centroids (and
 * the byte table) are copied into the module's memory once per codec: `count * dim` floats,
 * resident beside the codes (16 MiB at 32,768 centroids of dim 128).
 *
 * Where WebAssembly SIMD is missing, or the dimension is not a multiple of 8, the plain-JS stage
 * ({@link residualMaxSim} of ./compressed.ts) runs.
 */
import type { CodeView } from '../store/codes.ts';
import { centroidCount, residualByteWeights, residualBytes, type ResidualCodec } from '../store/residual.ts';
import type { TokenMatrix } from '../types.ts';
import { residualMaxSim } from './compressed.ts';
import { maxSimFunction, wasmSimdSupported } from './simd.ts';
import { encodeModule, F32, FunctionBody, I32, V128 } from './wasm-emit.ts';

const PAGE = 65536;
const QB = 4;
/** Decoded tokens per chunk (4 MiB of float32 rows at dim 128), unless one document is longer. */
const CHUNK_TOKENS = 8192;
/** Most documents per chunk. */
const CHUNK_DOCS = 2048;

/**
 * `decode(cs, tbl, codes, res, n, rows)`: tokens `0 .. n` (u32 `codes[j]`, `bytes` residual
 * bytes each from `res`) decoded and L2-normalised into rows of `dim` floats at `rows`.
 */
function emitDecode(dim: number, nbits: 1 | 2 | 4): FunctionBody {
  const bytes = (dim * nbits) / 8;
  const f = new FunctionBody([I32, I32, I32, I32, I32, I32]);
  const [cs, tbl, codes, res, n, rows] = [0, 1, 2, 3, 4, 5];
  const end = f.local(I32);
  const c = f.local(I32);
  const norm = f.local(V128);
  const u = f.local(V128);
  const s = f.local(F32);
  const inv = f.local(V128);
  f.get(codes).get(n).i32_const(2).i32_shl().i32_add().set(end);
  f.get(n).i32_const(0).i32_ne().if_().loop();
  {
    f.get(codes).i32_load(0).i32_const(dim * 4).i32_mul().get(cs).i32_add().set(c);
    f.v128_const_f32(0).set(norm);
    // The weights of dimensions 4 g .. 4 g + 3 onto the stack.
    const weights = (g: number): void => {
      if (nbits === 2) {
        f.get(res).i32_load8_u(g).i32_const(4).i32_shl().get(tbl).i32_add().v128_load(0);
      } else if (nbits === 1) {
        f.get(res).i32_load8_u(g >> 1).i32_const(5).i32_shl().get(tbl).i32_add().v128_load((g & 1) * 16);
      } else {
        f.get(res).i32_load8_u(2 * g).i32_const(3).i32_shl().get(tbl).i32_add().v128_load64_zero(0);
        f.set(u);
        f.get(res).i32_load8_u(2 * g + 1).i32_const(3).i32_shl().get(tbl).i32_add().get(u).v128_load64_lane(1, 0);
      }
    };
    for (let g = 0; g < dim / 4; g++) {
      f.get(rows);
      f.get(c).v128_load(g * 16);
      weights(g);
      f.f32x4_add().tee(u).v128_store(g * 16);
      f.get(norm).get(u).get(u).f32x4_mul().f32x4_add().set(norm);
    }
    // s = lanes of norm summed (0 + 1) + (2 + 3); inv = s > 0 ? 1 / sqrt(s) : 1.
    f.get(norm).f32x4_extract_lane(0).get(norm).f32x4_extract_lane(1).f32_add();
    f.get(norm).f32x4_extract_lane(2).get(norm).f32x4_extract_lane(3).f32_add();
    f.f32_add().set(s);
    f.f32_const(1).get(s).f32_sqrt().f32_div().f32_const(1).get(s).f32_const(0).f32_gt().select().f32x4_splat().set(inv);
    for (let g = 0; g < dim / 4; g++) f.get(rows).get(rows).v128_load(g * 16).get(inv).f32x4_mul().v128_store(g * 16);
    f.get(rows).i32_const(dim * 4).i32_add().set(rows);
    f.get(res).i32_const(bytes).i32_add().set(res);
    f.get(codes).i32_const(4).i32_add().tee(codes).get(end).i32_lt_u().br_if(0);
  }
  f.end().end();
  return f;
}

type ScoreFn = (q: number, qBlocks: number, docs: number, offs: number, docCount: number, out: number) => void;
type DecodeFn = (cs: number, tbl: number, codes: number, res: number, n: number, rows: number) => void;

interface Loaded {
  codec: ResidualCodec;
  memory: WebAssembly.Memory;
  score: ScoreFn;
  decode: DecodeFn;
  tblAt: number;
  csAt: number;
  /** First free byte after the codec's tables. */
  freeAt: number;
}

const modules = new Map<string, WebAssembly.Module>();
let cached: Loaded | null = null;
let failed = false;

function load(codec: ResidualCodec): Loaded | null {
  // Only the codec layout this decoder knows (float32 centroids, one weight per bucket); any other runs in plain JS.
  if (failed || codec.dim % 8 !== 0 || !(codec.centroids instanceof Float32Array) || codec.weights.length !== 1 << codec.nbits || !wasmSimdSupported(false)) return null;
  if (cached?.codec === codec) return cached;
  const { dim, nbits } = codec;
  const relaxed = wasmSimdSupported(true);
  const key = `${dim}:${nbits}:${relaxed}`;
  try {
    let module = modules.get(key);
    if (!module) {
      module = new WebAssembly.Module(encodeModule([
        { name: 'score', body: maxSimFunction(dim, relaxed), results: [] },
        { name: 'decode', body: emitDecode(dim, nbits), results: [] },
      ], 1));
      modules.set(key, module);
    }
    // A fresh instance per codec: its memory holds this codec's centroids only.
    const instance = new WebAssembly.Instance(module);
    const memory = instance.exports['memory'] as WebAssembly.Memory;
    const per = 8 / nbits;
    const tblAt = 64;
    const csAt = tblAt + 256 * per * 4;
    const freeAt = csAt + codec.centroids.length * 4;
    if (freeAt > memory.buffer.byteLength) memory.grow(Math.ceil((freeAt - memory.buffer.byteLength) / PAGE));
    new Float32Array(memory.buffer, tblAt, 256 * per).set(residualByteWeights(codec));
    new Float32Array(memory.buffer, csAt, codec.centroids.length).set(codec.centroids);
    cached = { codec, memory, score: instance.exports['score'] as ScoreFn, decode: instance.exports['decode'] as DecodeFn, tblAt, csAt, freeAt };
    return cached;
  } catch {
    failed = true;
    return null;
  }
}

/** Whether the SIMD stage runs for `codec` here (false where WebAssembly SIMD is missing). */
export function residualSimdAvailable(codec: ResidualCodec): boolean {
  return load(codec) !== null;
}

/** Residual MaxSim of the listed slots (same contract as {@link residualMaxSim}). */
export function residualMaxSimSimd(query: TokenMatrix, codec: ResidualCodec, scores: Float32Array, view: CodeView, docs: Uint32Array, out: Float32Array): void {
  const l = query.tokens > 0 && query.dim === codec.dim && centroidCount(codec) > 0 ? load(codec) : null;
  if (!l) return residualMaxSim(query, codec, scores, view, docs, out);
  const { dim, nbits } = codec;
  const bytes = residualBytes(dim, nbits);
  const { codes, residuals, starts, counts } = view;
  let longest = 0;
  for (let n = 0; n < docs.length; n++) longest = Math.max(longest, counts[docs[n]!]!);
  const chunkTokens = Math.max(CHUNK_TOKENS, longest);
  const qBlocks = Math.ceil(query.tokens / QB);
  // Layout (bytes, after the codec's tables): query | offsets | out | codes | residuals | rows (64-byte aligned).
  const qAt = Math.ceil(l.freeAt / 64) * 64;
  const offAt = qAt + qBlocks * QB * dim * 4;
  const outAt = offAt + (CHUNK_DOCS + 1) * 4;
  const codesAt = outAt + CHUNK_DOCS * 4;
  const resAt = codesAt + chunkTokens * 4;
  const rowsAt = Math.ceil((resAt + chunkTokens * bytes) / 64) * 64;
  const need = rowsAt + chunkTokens * dim * 4;
  if (need > l.memory.buffer.byteLength) l.memory.grow(Math.ceil((need - l.memory.buffer.byteLength) / PAGE));
  const buffer = l.memory.buffer;
  const f32 = new Float32Array(buffer);
  const u32 = new Uint32Array(buffer);
  const u8 = new Uint8Array(buffer);
  f32.fill(0, qAt / 4, offAt / 4);
  f32.set(query.data.subarray(0, query.tokens * dim), qAt / 4);
  let from = 0;
  while (from < docs.length) {
    let to = from;
    let tokens = 0;
    u32[offAt / 4] = 0;
    while (to < docs.length && to - from < CHUNK_DOCS) {
      const slot = docs[to]!;
      const count = counts[slot]!;
      if (tokens + count > chunkTokens) break;
      if (count > 0) {
        const start = starts[slot]!;
        u32.set(codes.subarray(start, start + count), codesAt / 4 + tokens);
        u8.set(residuals.subarray(start * bytes, (start + count) * bytes), resAt + tokens * bytes);
        tokens += count;
      }
      to++;
      u32[offAt / 4 + to - from] = tokens;
    }
    l.decode(l.csAt, l.tblAt, codesAt, resAt, tokens, rowsAt);
    l.score(qAt, qBlocks, rowsAt, offAt, to - from, outAt);
    out.set(f32.subarray(outAt / 4, outAt / 4 + to - from), from);
    from = to;
  }
}
