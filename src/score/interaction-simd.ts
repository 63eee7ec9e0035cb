/**
 * Centroid interaction on the CPU with WebAssembly SIMD (the third stage of the compressed index,
 * see ./compressed.ts): per candidate document, the sum over query rows of the best
 * query-centroid score among the document's token codes.
 *
 * How it is fast: the query x centroid scores are laid out centroid-major in the module's memory
 * (`T[c * qp + i]`, each centroid's query rows contiguous, padded to `qp`, a multiple of 16
 * rows), so a document token costs one code load and `qp / 4` `f32x4` loads and maxima, with
 * 4 or 8 accumulators held in registers per pass over the document's codes (16 or 32 query rows
 * per pass). The candidates' codes are gathered into the module's memory once per call (their
 * slots' runs, copied as they lie).
 *
 * The sum: each document's row maxima are added in float32, one at a time in query-row order,
 * as the WGSL twin (./compressed.wgsl `interaction_main`) does, so that with the same scores both
 * give the same bits and so the same survivors; the plain-JS fallback
 * ({@link centroidInteraction} of ./compressed.ts) sums the same way. Maxima are exact, so the
 * scores differ from the reference (float64 sums) by float32 rounding only.
 */
import type { CodeView } from '../store/codes.ts';
import { centroidMajorScores, MAJOR_ROWS } from './centroid-simd.ts';
import { centroidInteraction } from './compressed.ts';
import { encodeModule, FunctionBody, I32, V128 } from './wasm-emit.ts';

const PAGE = 65536;
/** Query rows per padded group: the smaller pass width (stage 1's centroid-major layout pads the same way). */
const ROWS = MAJOR_ROWS;

/**
 * `interact{G}(t, qp, codes, offs, docCount, out, scratch, q)`: for each document d, tokens
 * `offs[d] .. offs[d + 1]` of the u16 `codes`, writes to `out[d]` the float32 sum over query rows
 * `0 .. q` of the row's maximum of `T[code * qp + i]` (0 without tokens). `G` f32x4 accumulators
 * per pass (4 G query rows); `qp` a multiple of 4 G; `scratch` holds `qp` floats.
 */
function emitInteract(g: number): FunctionBody {
  const f = new FunctionBody([I32, I32, I32, I32, I32, I32, I32, I32]);
  const [t, qp, codes, offs, docCount, out, scratch, q] = [0, 1, 2, 3, 4, 5, 6, 7];
  const doc = f.local(I32);
  const j = f.local(I32);
  const end = f.local(I32);
  const rowBytes = f.local(I32);
  const pass = f.local(I32);
  const passEnd = f.local(I32);
  const at = f.local(I32);
  const i = f.local(I32);
  const total = f.local(0x7d);
  const best = Array.from({ length: g }, () => f.local(V128));
  f.get(qp).i32_const(2).i32_shl().set(rowBytes);
  f.get(t).get(rowBytes).i32_add().set(passEnd);
  f.i32_const(0).set(doc);
  f.block().loop();
  {
    f.get(doc).get(docCount).i32_ge_u().br_if(1);
    f.f32_const(0).set(total);
    f.get(offs).get(doc).i32_const(2).i32_shl().i32_add().tee(at).i32_load(0).set(j);
    f.get(at).i32_load(4).set(end);
    f.get(j).get(end).i32_ne().if_();
    {
      // Passes over the document's codes, each taking 4 g query rows from `pass` (a byte offset into T's rows).
      f.get(t).set(pass);
      f.loop();
      {
        for (const b of best) f.v128_const_f32(-Infinity).set(b);
        f.get(j).set(i);
        f.loop();
        {
          // at = pass + codes[i] * rowBytes
          f.get(codes).get(i).i32_const(1).i32_shl().i32_add().i32_load16_u(0).get(rowBytes).i32_mul().get(pass).i32_add().set(at);
          best.forEach((b, k) => {
            f.get(b).get(at).v128_load(k * 16).f32x4_pmax().set(b);
          });
          f.get(i).i32_const(1).i32_add().tee(i).get(end).i32_lt_u().br_if(0);
        }
        f.end();
        // scratch[pass - t ..] = best (the rows of this pass).
        best.forEach((b, k) => {
          f.get(scratch).get(pass).get(t).i32_sub().i32_add().get(b).v128_store(k * 16);
        });
        f.get(pass).i32_const(g * 16).i32_add().tee(pass).get(passEnd).i32_lt_u().br_if(0);
      }
      f.end();
      // total = ((0 + best[0]) + best[1]) + ... in float32, row order.
      f.i32_const(0).set(i);
      f.block().loop();
      {
        f.get(i).get(q).i32_ge_u().br_if(1);
        f.get(total).get(scratch).get(i).i32_const(2).i32_shl().i32_add().f32_load(0).f32_add().set(total);
        f.get(i).i32_const(1).i32_add().set(i);
        f.br(0);
      }
      f.end().end();
    }
    f.end();
    f.get(out).get(doc).i32_const(2).i32_shl().i32_add().get(total).f32_store(0);
    f.get(doc).i32_const(1).i32_add().set(doc);
    f.br(0);
  }
  f.end().end();
  return f;
}

type InteractFn = (t: number, qp: number, codes: number, offs: number, docCount: number, out: number, scratch: number, q: number) => void;

interface Module {
  memory: WebAssembly.Memory;
  interact4: InteractFn;
  interact8: InteractFn;
}

let simdOk: boolean | undefined;
let loaded: Module | null = null;

function load(): Module | null {
  if (simdOk === false) return null;
  if (loaded) return loaded;
  try {
    const bytes = encodeModule([
      { name: 'interact4', body: emitInteract(4), results: [] },
      { name: 'interact8', body: emitInteract(8), results: [] },
    ], 1);
    const instance = new WebAssembly.Instance(new WebAssembly.Module(bytes));
    const e = instance.exports as unknown as Module;
    loaded = { memory: e.memory, interact4: e.interact4, interact8: e.interact8 };
    simdOk = true;
  } catch {
    simdOk = false;
    return null;
  }
  return loaded;
}

/** Whether the SIMD kernel runs here (false where WebAssembly SIMD is missing). */
export function interactionSimdAvailable(): boolean {
  return load() !== null;
}

/** Most documents per kernel call (bounds the gathered codes). */
const CHUNK_DOCS = 4096;

/**
 * Centroid interaction of the listed slots (same contract as {@link centroidInteraction}):
 * `scores` is the query-major `S[i * centroids + c]` of stage 1.
 */
export function centroidInteractionSimd(scores: Float32Array, queryTokens: number, centroids: number, view: CodeView, docs: Uint32Array, out: Float32Array): void {
  const m = view.codes instanceof Uint16Array && queryTokens > 0 ? load() : null;
  if (!m) return centroidInteraction(scores, queryTokens, centroids, view, docs, out);
  const codes = view.codes as Uint16Array;
  const { starts, counts } = view;
  const qp = Math.ceil(queryTokens / ROWS) * ROWS;
  const run = qp % (2 * ROWS) === 0 ? m.interact8 : m.interact4;
  let longest = 0;
  for (let n = 0; n < docs.length; n++) longest = Math.max(longest, counts[docs[n]!]!);
  // Layout (bytes): T | scratch | offsets | out | codes.
  const tAt = 64;
  const scratchAt = tAt + centroids * qp * 4;
  const offAt = scratchAt + qp * 4;
  const outAt = offAt + (CHUNK_DOCS + 1) * 4;
  const codesAt = outAt + CHUNK_DOCS * 4;
  let chunkCodes = 0;
  for (let from = 0; from < docs.length; from += CHUNK_DOCS) {
    let n = 0;
    for (let d = from; d < Math.min(docs.length, from + CHUNK_DOCS); d++) n += counts[docs[d]!]!;
    chunkCodes = Math.max(chunkCodes, n);
  }
  const need = codesAt + Math.max(chunkCodes, longest) * 2 + 16;
  if (need > m.memory.buffer.byteLength) m.memory.grow(Math.ceil((need - m.memory.buffer.byteLength) / PAGE));
  const buffer = m.memory.buffer;
  const t = new Float32Array(buffer, tAt, centroids * qp);
  const major = centroidMajorScores(scores);
  if (major && major.qp === qp && major.t.length === t.length) {
    // Stage 1 kept its kernel's centroid-major output: the same values, copied as they lie.
    t.set(major.t);
  } else {
    // Transpose S into T; padding rows stay 0 (they are never summed).
    for (let i = 0; i < queryTokens; i++) {
      const o = i * centroids;
      for (let c = 0; c < centroids; c++) t[c * qp + i] = scores[o + c]!;
    }
    for (let i = queryTokens; i < qp; i++) for (let c = 0; c < centroids; c++) t[c * qp + i] = 0;
  }
  const u32 = new Uint32Array(buffer);
  const f32 = new Float32Array(buffer);
  const u16 = new Uint16Array(buffer);
  for (let from = 0; from < docs.length; from += CHUNK_DOCS) {
    const to = Math.min(docs.length, from + CHUNK_DOCS);
    let at = 0;
    u32[offAt / 4] = 0;
    for (let d = from; d < to; d++) {
      const slot = docs[d]!;
      const count = counts[slot]!;
      if (count > 0) {
        const start = starts[slot]!;
        u16.set(codes.subarray(start, start + count), codesAt / 2 + at);
        at += count;
      }
      u32[offAt / 4 + d - from + 1] = at;
    }
    run(tAt, qp, codesAt, offAt, to - from, outAt, scratchAt, queryTokens);
    out.set(f32.subarray(outAt / 4, outAt / 4 + (to - from)), from);
  }
}
