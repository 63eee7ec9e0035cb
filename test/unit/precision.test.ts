/** The storage precision codecs every store and scorer share (fp32, fp16, int8 per-token scale). */
import { describe, expect, it } from 'vitest';
import { allocatePacked, bytesPerToken, decodeRow, decodeRows, encodeRows, fromHalf, toHalf } from '../../src/store/precision.ts';
import { mulberry32 } from '../fixtures/make-models.ts';

describe('fp16 codec', () => {
  it('round-trips every finite half exactly (toHalf(fromHalf(h)) === h)', () => {
    for (let h = 0; h < 0x10000; h++) {
      const exp = (h >>> 10) & 0x1f;
      if (exp === 0x1f && (h & 0x3ff) !== 0) continue; // NaN payloads are not preserved
      expect(toHalf(fromHalf(h))).toBe(h);
    }
  });

  it('rounds to the nearest half (ties to even), including subnormals and overflow', () => {
    expect(fromHalf(toHalf(1))).toBe(1);
    expect(fromHalf(toHalf(65504))).toBe(65504);
    expect(fromHalf(toHalf(65520))).toBe(Infinity); // halfway to the next binade rounds up to Infinity
    expect(fromHalf(toHalf(1 + 2 ** -11))).toBe(1); // tie: 1 has an even mantissa
    expect(fromHalf(toHalf(1 + 3 * 2 ** -11))).toBe(1 + 2 ** -9); // tie: rounds up to even
    expect(fromHalf(toHalf(2 ** -24))).toBe(2 ** -24); // smallest subnormal
    expect(fromHalf(toHalf(2 ** -26))).toBe(0);
    expect(Object.is(fromHalf(toHalf(-0)), -0)).toBe(true);
    expect(Number.isNaN(fromHalf(toHalf(NaN)))).toBe(true);
    const next = mulberry32(5);
    for (let i = 0; i < 10000; i++) {
      const x = Math.fround((next() * 2 - 1) * 4); // stored vectors are float32
      const y = fromHalf(toHalf(x));
      // Within half a unit in the last place (11 significant bits).
      const ulp = 2 ** (Math.floor(Math.log2(Math.abs(x))) - 10);
      expect(Math.abs(y - x)).toBeLessThanOrEqual(ulp / 2 + 1e-12);
    }
  });
});

describe('packed rows', () => {
  it('int8 keeps one scale per token and reconstructs each value within half a step', () => {
    const dim = 16;
    const rows = 3;
    const next = mulberry32(9);
    const src = Float32Array.from({ length: rows * dim }, () => next() * 2 - 1);
    src.fill(0, dim, 2 * dim); // an all-zero row
    const packed = allocatePacked('int8', rows + 1, dim);
    encodeRows(src, rows, dim, packed, 1);
    expect(packed.scales![0]).toBe(0);
    expect(packed.scales![2]).toBe(0);
    for (const r of [1, 3]) {
      const row = decodeRow(packed, r, dim, new Float32Array(dim));
      const scale = packed.scales![r]!;
      expect(scale).toBeGreaterThan(0);
      for (let k = 0; k < dim; k++) expect(Math.abs(row[k]! - src[(r - 1) * dim + k]!)).toBeLessThanOrEqual(scale / 2 + 1e-7);
    }
    expect([...decodeRow(packed, 2, dim, new Float32Array(dim))]).toEqual(new Array(dim).fill(0));
  });

  it.each(['fp32', 'fp16', 'int8'] as const)('%s decodes what it encoded, rows in place', (precision) => {
    const dim = 8;
    const src = Float32Array.from({ length: 2 * dim }, (_, i) => (i - 7) / 8);
    const packed = allocatePacked(precision, 4, dim);
    encodeRows(src, 2, dim, packed, 2);
    const back = decodeRows(packed, 2, 2, dim);
    for (let i = 0; i < src.length; i++) expect(back[i]).toBeCloseTo(src[i]!, precision === 'int8' ? 2 : 3);
    expect([...decodeRows(packed, 0, 2, dim)]).toEqual(new Array(2 * dim).fill(0));
  });

  it('reports bytes per token', () => {
    expect(bytesPerToken('fp32', 128)).toBe(512);
    expect(bytesPerToken('fp16', 128)).toBe(256);
    expect(bytesPerToken('int8', 128)).toBe(132);
  });
});
