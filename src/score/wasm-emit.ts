/**
 * A tiny WebAssembly binary writer: just the sections and instructions the MaxSim kernel needs.
 * It lets the library build its SIMD kernel at run time (specialised for the vector dimension)
 * with no compiler toolchain and no build step. One method per instruction, named as in the spec
 * text format, so a kernel reads like its `.wat`.
 */

/** Value types (binary encoding). */
export const I32 = 0x7f;
export const F32 = 0x7d;
export const V128 = 0x7b;
export type ValType = typeof I32 | typeof F32 | typeof V128;

function uleb(out: number[], value: number): void {
  let v = value >>> 0;
  do {
    let byte = v & 0x7f;
    v >>>= 7;
    if (v !== 0) byte |= 0x80;
    out.push(byte);
  } while (v !== 0);
}

function sleb(out: number[], value: number): void {
  let v = value | 0;
  for (;;) {
    const byte = v & 0x7f;
    v >>= 7;
    if ((v === 0 && (byte & 0x40) === 0) || (v === -1 && (byte & 0x40) !== 0)) {
      out.push(byte);
      return;
    }
    out.push(byte | 0x80);
  }
}

/** The body of one function: locals are declared up front, instructions are appended in order. */
export class FunctionBody {
  readonly code: number[] = [];
  private readonly locals: ValType[] = [];

  constructor(readonly params: readonly ValType[]) {}

  /** Declares a local of `type`; returns its index. */
  local(type: ValType): number {
    this.locals.push(type);
    return this.params.length + this.locals.length - 1;
  }

  private op(...bytes: number[]): this {
    this.code.push(...bytes);
    return this;
  }

  private simd(opcode: number): this {
    this.code.push(0xfd);
    uleb(this.code, opcode);
    return this;
  }

  private memarg(align: number, offset: number): this {
    uleb(this.code, align);
    uleb(this.code, offset);
    return this;
  }

  // Control.
  block(): this { return this.op(0x02, 0x40); }
  loop(): this { return this.op(0x03, 0x40); }
  if_(): this { return this.op(0x04, 0x40); }
  end(): this { return this.op(0x0b); }
  br(depth: number): this { this.op(0x0c); uleb(this.code, depth); return this; }
  br_if(depth: number): this { this.op(0x0d); uleb(this.code, depth); return this; }
  select(): this { return this.op(0x1b); }

  // Locals.
  get(index: number): this { this.op(0x20); uleb(this.code, index); return this; }
  set(index: number): this { this.op(0x21); uleb(this.code, index); return this; }
  tee(index: number): this { this.op(0x22); uleb(this.code, index); return this; }

  // i32.
  i32_const(value: number): this { this.op(0x41); sleb(this.code, value); return this; }
  i32_load(offset = 0): this { return this.op(0x28).memarg(2, offset); }
  /** One byte from memory, zero-extended. */
  i32_load8_u(offset = 0): this { return this.op(0x2d).memarg(0, offset); }
  /** One u16 from memory, zero-extended. */
  i32_load16_u(offset = 0): this { return this.op(0x2f).memarg(1, offset); }
  i32_add(): this { return this.op(0x6a); }
  i32_sub(): this { return this.op(0x6b); }
  i32_mul(): this { return this.op(0x6c); }
  i32_shl(): this { return this.op(0x74); }
  i32_ne(): this { return this.op(0x47); }
  i32_lt_u(): this { return this.op(0x49); }
  i32_gt_u(): this { return this.op(0x4b); }
  i32_ge_u(): this { return this.op(0x4f); }

  // f32.
  f32_load(offset = 0): this { return this.op(0x2a).memarg(2, offset); }
  f32_const(value: number): this {
    this.op(0x43);
    this.code.push(...new Uint8Array(new Float32Array([value]).buffer));
    return this;
  }
  f32_add(): this { return this.op(0x92); }
  f32_div(): this { return this.op(0x95); }
  f32_sqrt(): this { return this.op(0x91); }
  f32_gt(): this { return this.op(0x5e); }
  f32_store(offset = 0): this { return this.op(0x38).memarg(2, offset); }

  // v128 (SIMD128; opcodes from the WebAssembly SIMD proposal, now part of the core spec).
  v128_load(offset = 0): this { return this.simd(0x00).memarg(4, offset); }
  v128_store(offset = 0): this { return this.simd(0x0b).memarg(4, offset); }
  /** Eight bytes from memory into the low half, the high half zero. */
  v128_load64_zero(offset = 0): this { return this.simd(0x5d).memarg(3, offset); }
  /** Eight bytes from memory into 64-bit lane `lane` of the vector on the stack (address below it). */
  v128_load64_lane(lane: number, offset = 0): this { this.simd(0x57).memarg(3, offset); this.code.push(lane); return this; }
  /** Four u16 from memory, zero-extended to i32x4. */
  v128_load16x4_u(offset = 0): this { return this.simd(0x04).memarg(3, offset); }
  v128_const_i32(value: number): this {
    this.simd(0x0c);
    this.code.push(...new Uint8Array(new Int32Array([value, value, value, value]).buffer));
    return this;
  }
  v128_and(): this { return this.simd(0x4e); }
  v128_or(): this { return this.simd(0x50); }
  v128_bitselect(): this { return this.simd(0x52); }
  i32x4_eq(): this { return this.simd(0x37); }
  i32x4_shl(): this { return this.simd(0xab); }
  i16x8_extend_low_i8x16_s(): this { return this.simd(0x87); }
  i16x8_extend_high_i8x16_s(): this { return this.simd(0x88); }
  i32x4_extend_low_i16x8_s(): this { return this.simd(0xa7); }
  i32x4_extend_high_i16x8_s(): this { return this.simd(0xa8); }
  f32x4_convert_i32x4_s(): this { return this.simd(0xfa); }
  f32x4_splat(): this { return this.simd(0x13); }
  v128_const_f32(value: number): this {
    this.simd(0x0c);
    const bytes = new Uint8Array(new Float32Array([value, value, value, value]).buffer);
    this.code.push(...bytes);
    return this;
  }
  i8x16_shuffle(lanes: readonly number[]): this { this.simd(0x0d); this.code.push(...lanes); return this; }
  f32x4_extract_lane(lane: number): this { this.simd(0x1f); this.code.push(lane); return this; }
  f32x4_add(): this { return this.simd(0xe4); }
  f32x4_mul(): this { return this.simd(0xe6); }
  /** Pseudo-maximum `a < b ? b : a`: one instruction on x64 (plain `max` also orders NaN and -0). */
  f32x4_pmax(): this { return this.simd(0xeb); }
  /** Relaxed SIMD: a * b + c, fused or not at the engine's choice (both round within 1 ulp per step). */
  f32x4_relaxed_madd(): this { return this.simd(0x105); }

  /** The encoded body (locals vector + code), without its size prefix. */
  encode(): number[] {
    const out: number[] = [];
    uleb(out, this.locals.length);
    for (const t of this.locals) {
      uleb(out, 1);
      out.push(t);
    }
    out.push(...this.code, 0x0b);
    return out;
  }
}

function section(out: number[], id: number, body: number[]): void {
  out.push(id);
  uleb(out, body.length);
  out.push(...body);
}

function name(out: number[], text: string): void {
  const bytes = new TextEncoder().encode(text);
  uleb(out, bytes.length);
  out.push(...bytes);
}

/** One exported function. */
export interface ExportedFunction {
  name: string;
  body: FunctionBody;
  results: readonly ValType[];
}

/**
 * A module of the given functions plus one exported memory named `memory` (`pages` x 64 KiB to
 * start; it can grow). With `importMemory`, the module instead imports its memory as
 * `env.memory` (at least `pages` pages), to work in another instance's memory, and exports none.
 */
export function encodeModule(functions: readonly ExportedFunction[], pages: number, importMemory = false): Uint8Array<ArrayBuffer> {
  const out = [0x00, 0x61, 0x73, 0x6d, 0x01, 0x00, 0x00, 0x00];
  const types: number[] = [];
  uleb(types, functions.length);
  for (const f of functions) {
    types.push(0x60);
    uleb(types, f.body.params.length);
    types.push(...f.body.params);
    uleb(types, f.results.length);
    types.push(...f.results);
  }
  section(out, 1, types);
  if (importMemory) {
    const imports: number[] = [1];
    name(imports, 'env');
    name(imports, 'memory');
    imports.push(0x02, 0x00);
    uleb(imports, pages);
    section(out, 2, imports);
  }
  const funcs: number[] = [];
  uleb(funcs, functions.length);
  functions.forEach((_, i) => uleb(funcs, i));
  section(out, 3, funcs);
  if (!importMemory) {
    const memory: number[] = [1, 0x00];
    uleb(memory, pages);
    section(out, 5, memory);
  }
  const exports: number[] = [];
  uleb(exports, functions.length + (importMemory ? 0 : 1));
  functions.forEach((f, i) => {
    name(exports, f.name);
    exports.push(0x00);
    uleb(exports, i);
  });
  if (!importMemory) {
    name(exports, 'memory');
    exports.push(0x02, 0x00);
  }
  section(out, 7, exports);
  const code: number[] = [];
  uleb(code, functions.length);
  for (const f of functions) {
    const body = f.body.encode();
    uleb(code, body.length);
    code.push(...body);
  }
  section(out, 10, code);
  return new Uint8Array(out);
}

// Lanes [a0+a2 of x, a0+a2 of y, a1+a3 of x, a1+a3 of y] for f32 lanes of x and y (byte shuffles).
const HALF_LO = [0, 1, 2, 3, 16, 17, 18, 19, 4, 5, 6, 7, 20, 21, 22, 23];
const HALF_HI = [8, 9, 10, 11, 24, 25, 26, 27, 12, 13, 14, 15, 28, 29, 30, 31];
const PAIR_LO = [0, 1, 2, 3, 4, 5, 6, 7, 16, 17, 18, 19, 20, 21, 22, 23];
const PAIR_HI = [8, 9, 10, 11, 12, 13, 14, 15, 24, 25, 26, 27, 28, 29, 30, 31];

/**
 * The horizontal sums of four f32x4 locals `a`, the reduction both SIMD kernels end a tile with.
 * `storeHalfSums` fills the scratch locals `t0`, `t1` (statements); `pushPairSum` then pushes
 * `[sum(a[0]), sum(a[1]), sum(a[2]), sum(a[3])]`, so a caller can push its own operand between.
 */
export function storeHalfSums(f: FunctionBody, a: readonly number[], t0: number, t1: number): void {
  const half = (x: number, y: number, into: number): void => {
    f.get(x).get(y).i8x16_shuffle(HALF_LO).get(x).get(y).i8x16_shuffle(HALF_HI).f32x4_add().set(into);
  };
  half(a[0]!, a[1]!, t0);
  half(a[2]!, a[3]!, t1);
}

/** Pushes the lane sums left in `t0`, `t1` by {@link storeHalfSums}. */
export function pushPairSum(f: FunctionBody, t0: number, t1: number): void {
  f.get(t0).get(t1).i8x16_shuffle(PAIR_LO).get(t0).get(t1).i8x16_shuffle(PAIR_HI).f32x4_add();
}

/**
 * Pushes the f32x4 of four IEEE halves held zero-extended in the i32x4 local `h`, decoded exactly
 * as `fromHalf` (../store/precision.ts): the magnitude bits shifted into a float's place times
 * 2^112 (normal and subnormal alike), Infinity / NaN set apart, then the sign.
 */
export function pushHalfFloats(f: FunctionBody, h: number): void {
  f.get(h).v128_const_i32(0x3ff).v128_and().i32_const(13).i32x4_shl().v128_const_i32(0x7f800000).v128_or();
  f.get(h).v128_const_i32(0x7fff).v128_and().i32_const(13).i32x4_shl().v128_const_f32(2 ** 112).f32x4_mul();
  f.get(h).v128_const_i32(0x7c00).v128_and().v128_const_i32(0x7c00).i32x4_eq().v128_bitselect();
  f.get(h).v128_const_i32(0x8000).v128_and().i32_const(16).i32x4_shl().v128_or();
}
