/**
 * The inverted lists' byte code (src/store/lists.ts): every list decodes to its slots, in the
 * smaller of its two codes, exactly as many bytes as sized.
 */
import { describe, expect, it } from 'vitest';
import { seededRandom } from '../../src/score/train.ts';
import { decodeList, encodeList, listBytes, VARINT_LIST } from '../../src/store/lists.ts';

/** `n` distinct ascending slots below `universe`. */
function randomList(n: number, universe: number, next: () => number): Uint32Array {
  const set = new Set<number>();
  while (set.size < n) set.add(Math.floor(next() * universe));
  return Uint32Array.from([...set].sort((a, b) => a - b));
}

function roundTrip(slots: Uint32Array): { bytes: Uint8Array; back: number[] } {
  const size = listBytes(slots, 0, slots.length);
  // Garbage around the list: the code must neither read nor write outside its bytes.
  const buffer = new Uint8Array(size + 6).fill(0xa5);
  const end = encodeList(slots, 0, slots.length, buffer, 3);
  expect(end - 3).toBe(size);
  expect(buffer[2]).toBe(0xa5);
  expect(buffer[end]).toBe(0xa5);
  const out = new Uint32Array(slots.length + 1);
  const n = decodeList(buffer, 3, end, out);
  return { bytes: buffer.subarray(3, end), back: Array.from(out.subarray(0, n)) };
}

describe('inverted list code', () => {
  it('decodes every list to its slots: empty, one entry, dense, sparse, huge slot numbers', () => {
    const next = seededRandom(5);
    const cases: Uint32Array[] = [
      new Uint32Array(0),
      Uint32Array.from([0]),
      Uint32Array.from([7]),
      Uint32Array.from([4_000_000_000]),
      Uint32Array.from({ length: 1000 }, (_, i) => i),
      Uint32Array.from([0, 1, 2, 130, 131, 70_000, 4_294_967_294]),
    ];
    for (const [n, universe] of [[3, 100], [50, 60], [250, 62_502], [300, 1_000_000], [5000, 20_000], [40, 2 ** 31], [100, 2 ** 23], [1000, 2 ** 31 - 1]] as const) cases.push(randomList(n, universe, next));
    for (const slots of cases) expect(roundTrip(slots).back).toEqual(Array.from(slots));
    // The widest low parts Elias-Fano takes (16 bits: 100 entries over 2^23 slots), and past it delta varints.
    expect(roundTrip(randomList(100, 2 ** 23, seededRandom(3))).bytes[0]).toBe(16);
    expect(roundTrip(randomList(1000, 2 ** 31 - 1, seededRandom(4))).bytes[0]).toBe(VARINT_LIST);
  });

  it('long sparse lists take Elias-Fano (about 2 + log2(universe / n) bits an entry), short ones delta varints', () => {
    const next = seededRandom(9);
    // A 10M-token index: 62,502 documents, lists of about 250.
    const long = randomList(250, 62_502, next);
    const { bytes } = roundTrip(long);
    expect(bytes[0]).not.toBe(VARINT_LIST);
    let varint = 1;
    let prev = 0;
    for (const s of long) {
      let d = s - prev;
      prev = s;
      for (varint++; d >= 0x80; d = Math.floor(d / 128)) varint++;
    }
    expect(bytes.length).toBeLessThan(0.85 * varint);
    expect((bytes.length * 8) / long.length).toBeLessThan(2 + Math.log2(62_502 / 250) + 0.5);
    // One far slot: three varint bytes beat a 15-bit low part plus headers.
    expect(roundTrip(Uint32Array.from([60_000])).bytes[0]).toBe(VARINT_LIST);
  });
});
