/**
 * Residual MaxSim on the CPU with WebAssembly SIMD (the fourth stage of the compressed index, see
 * ./compressed.ts): the candidates' tokens are decoded into float32 rows in WASM memory, in
 * chunks of whole documents, and scored there by the project's MaxSim kernel body
 * (./simd.ts `maxSimFunction`, the one exhaustive search runs), with no copy in between.
 *
 * Decoding (`decode`), as ../store/residual.ts defines it: per group of 4 dimensions, the bucket
 * weights of its residual bits come from that module's byte table (`residualByteWeights`: 256
 * entries of `8 / nbits` floats: one f32x4 per byte at 2 bits, two at 1 bit, half of one at 4 bits), are
 * added to the centroid's 4 components (IEEE halves decoded in-register exactly as `fromHalf`,
 * ../store/precision.ts; the sum in float32, as `decodeToken` rounds it), and the squares
 * are accumulated in f32x4; the row is then scaled by 1 / |u| (a zero row stays zero). The norm
 * is summed in float32 (`decodeToken` sums it in float64), so a decoded row can differ from theirs in the last bit; scores stay within 1e-5 of the reference
 * (test/unit/compressed-simd.test.ts, test/unit/compressed-residual-wasm.test.ts).
 *
 * Why not a plain-JS decoder feeding the kernel: measured on this machine (a batched JS decoder
 * with the same byte table) it took longer than the MaxSim itself (60-100 ms for 41k tokens
 * against 25-50 ms for scoring them); in WASM the whole stage costs about what the MaxSim does.
 *
 * No copy of the centroids: this module imports the memory of the codec's stage-1 binding
 * (./centroid-simd.ts `residentCentroids`), whose table of halves is the one resident copy (the
 * codec's `centroids` is a view of it), and works in the fixed scratch that binding reserves for
 * it (`codecScratchBytes`, 2 MiB at dim 128, whatever the index's size: that memory never grows).
 * Per call the byte table (2-8 KiB) and the query go there, then chunks of about 3,700 tokens at
 * dim 128 (codes, residual bytes, decoded rows). A document longer than a chunk is scored alone
 * by the plain-JS stage, and so is a query too long to leave a chunk of 512 tokens.
 *
 * Where WebAssembly SIMD is missing, or the dimension is not a multiple of 8, the plain-JS stage
 * ({@link residualMaxSim} of ./compressed.ts) runs.
 */
import type { CodeView } from '../store/codes.ts';
import { centroidCount, residualByteWeights, residualBytes, type ResidualCodec } from '../store/residual.ts';
import type { TokenMatrix } from '../types.ts';
import { residualMaxSim } from './compressed.ts';
import { maxSimFunction, wasmSimdSupported } from './simd.ts';
import { residentCentroids, type BlockDots } from './centroid-simd.ts';
import { encodeModule, F32, FunctionBody, I32, pushHalfFloats, V128 } from './wasm-emit.ts';

const QB = 4;
/** Most documents per chunk. */
const CHUNK_DOCS = 2048;
/** Fewest tokens a chunk must hold, else (a very long query) the stage runs in plain JS. */
const MIN_CHUNK_TOKENS = 512;

/**
 * `decode(cs, tbl, codes, res, n, rows)`: tokens `0 .. n` (u32 `codes[j]`, `bytes` residual
 * bytes each from `res`) decoded and L2-normalised into rows of `dim` floats at `rows`; `cs` is
 * the codec's table of IEEE halves (`dim` a row), each decoded in-register exactly as `fromHalf`.
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
  const h = f.local(V128);
  f.get(codes).get(n).i32_const(2).i32_shl().i32_add().set(end);
  f.get(n).i32_const(0).i32_ne().if_().loop();
  {
    f.get(codes).i32_load(0).i32_const(dim * 2).i32_mul().get(cs).i32_add().set(c);
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
      f.get(c).v128_load16x4_u(g * 8).set(h);
      pushHalfFloats(f, h);
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
  bd: BlockDots;
  score: ScoreFn;
  decode: DecodeFn;
}

const modules = new Map<string, WebAssembly.Module>();
/** The residual functions instantiated over each binding's memory. */
const instances = new WeakMap<BlockDots, Loaded>();
let failed = false;

function load(codec: ResidualCodec): Loaded | null {
  // Only the codec layout this decoder knows (one weight per bucket); any other runs in plain JS.
  if (failed || codec.dim % 8 !== 0 || codec.weights.length !== 1 << codec.nbits || !wasmSimdSupported(false)) return null;
  // The binding of the codec's halves: the one resident copy of them, the codec's centroids a view of it.
  const bd = residentCentroids(codec);
  if (!bd || bd.extra.bytes === 0 || bd.view(0) !== codec.centroids) return null;
  let l = instances.get(bd);
  if (l) return l;
  const { dim, nbits } = codec;
  const relaxed = wasmSimdSupported(true);
  const key = `${dim}:${nbits}:${relaxed}`;
  try {
    let module = modules.get(key);
    if (!module) {
      module = new WebAssembly.Module(encodeModule([
        { name: 'score', body: maxSimFunction(dim, relaxed), results: [] },
        { name: 'decode', body: emitDecode(dim, nbits), results: [] },
      ], 1, true));
      modules.set(key, module);
    }
    const instance = new WebAssembly.Instance(module, { env: { memory: bd.memory } });
    l = { bd, score: instance.exports['score'] as ScoreFn, decode: instance.exports['decode'] as DecodeFn };
    instances.set(bd, l);
    return l;
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
  const { memory, extra } = l.bd;
  const qBlocks = Math.ceil(query.tokens / QB);
  // Layout in the binding's extra scratch (bytes): byte table | query | offsets | out | codes | residuals | rows (64-byte aligned).
  const tblAt = extra.at;
  const qAt = Math.ceil((tblAt + 256 * (8 / nbits) * 4) / 64) * 64;
  const offAt = qAt + qBlocks * QB * dim * 4;
  const outAt = offAt + (CHUNK_DOCS + 1) * 4;
  const codesAt = outAt + CHUNK_DOCS * 4;
  const chunkTokens = Math.floor((extra.at + extra.bytes - codesAt - 64) / (4 + bytes + dim * 4));
  // A query too long for the scratch runs in plain JS.
  if (chunkTokens < MIN_CHUNK_TOKENS) return residualMaxSim(query, codec, scores, view, docs, out);
  const resAt = codesAt + chunkTokens * 4;
  const rowsAt = Math.ceil((resAt + chunkTokens * bytes) / 64) * 64;
  const buffer = memory.buffer;
  const f32 = new Float32Array(buffer);
  const u32 = new Uint32Array(buffer);
  const u8 = new Uint8Array(buffer);
  // The byte table is written per call (2-8 KiB), so codecs that share centroids share the binding correctly.
  f32.set(residualByteWeights(codec), tblAt / 4);
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
      if (count > chunkTokens) break;
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
    if (to > from) {
      l.decode(l.bd.tableAt(0), tblAt, codesAt, resAt, tokens, rowsAt);
      l.score(qAt, qBlocks, rowsAt, offAt, to - from, outAt);
      out.set(f32.subarray(outAt / 4, outAt / 4 + to - from), from);
    } else {
      // A document longer than the scratch holds: scored alone in plain JS.
      residualMaxSim(query, codec, scores, view, docs.subarray(from, from + 1), out.subarray(from, from + 1));
      to = from + 1;
    }
    from = to;
  }
}
