/**
 * The byte code of one inverted list (a centroid's ascending, distinct slot numbers), chosen per
 * list as the smaller of two:
 *
 * - Elias-Fano (first byte `L`, 0..16): then the entry count `n` as a varint, `n` low parts of
 *   `L` bits each (bit-packed, least significant bit first), and the high parts `slot >> L` in
 *   unary: bit `(slot_i >> L) + i` set in a bit array of `(last >> L) + n` bits. With
 *   `L = floor(log2(universe / n))` that is about `2 + log2(universe / n)` bits an entry: at 10M
 *   tokens (62,502 documents, lists of about 250 documents) 9-10 bits where a delta varint
 *   takes 12-13.
 * - Delta + varint (first byte {@link VARINT_LIST}): each slot minus the one before (the first
 *   minus 0), 7 bits a byte, least significant group first; smaller for very short lists.
 *
 * Both decode through {@link decodeList}. The lists are built in memory from the codes
 * (./codes.ts) and never stored, so the code can change without a format version.
 */

/** First byte of a list coded as delta varints. */
export const VARINT_LIST = 0xff;

function varintBytes(v: number): number {
  let n = 1;
  while (v >= 0x80) {
    v = Math.floor(v / 128);
    n++;
  }
  return n;
}

function writeVarint(out: Uint8Array, at: number, v: number): number {
  while (v >= 0x80) {
    out[at++] = (v & 0x7f) | 0x80;
    v = Math.floor(v / 128);
  }
  out[at++] = v;
  return at;
}

/** The Elias-Fano low-part width for `n` entries below `universe`. */
function lowBits(n: number, universe: number): number {
  return Math.max(0, Math.floor(Math.log2(universe / n)));
}

/**
 * Elias-Fano is used only where it decodes in 32-bit integer arithmetic: slots below 2^31 and low
 * parts of at most {@link MAX_LOW_BITS} bits (so a low part lies in three bytes). Sparser lists
 * (fewer than one entry per 65,536 slots) are as small as delta varints anyway.
 */
const MAX_LOW_BITS = 16;

/** Bytes after the last list that a decoder may read (and mask off): see {@link decodeList}. */
export const LIST_PADDING = 2;

/** Bytes of the Elias-Fano code of `n` entries ending at `last`, or Infinity where it is not used. */
function eliasFanoBytes(n: number, last: number): number {
  const L = lowBits(n, last + 1);
  if (last >= 2 ** 31 || L > MAX_LOW_BITS) return Infinity;
  return 1 + varintBytes(n) + Math.ceil((n * L) / 8) + Math.ceil(((last >>> L) + n) / 8);
}

/** Bytes {@link encodeList} writes for `slots[from..to)` (ascending, distinct). */
export function listBytes(slots: Uint32Array, from: number, to: number): number {
  const n = to - from;
  if (n === 0) return 0;
  let varint = 1;
  let prev = 0;
  for (let i = from; i < to; i++) {
    varint += varintBytes(slots[i]! - prev);
    prev = slots[i]!;
  }
  return Math.min(varint, eliasFanoBytes(n, slots[to - 1]!));
}

/**
 * Writes `slots[from..to)` (ascending, distinct) at `out[at]`, exactly `size` bytes, the
 * {@link listBytes} of those slots (a caller that sized the lists passes what it computed);
 * returns the end.
 */
export function encodeList(slots: Uint32Array, from: number, to: number, out: Uint8Array, at: number, size = listBytes(slots, from, to)): number {
  const n = to - from;
  if (n === 0) return at;
  const last = slots[to - 1]!;
  if (size < eliasFanoBytes(n, last)) {
    out[at++] = VARINT_LIST;
    let prev = 0;
    for (let i = from; i < to; i++) {
      at = writeVarint(out, at, slots[i]! - prev);
      prev = slots[i]!;
    }
    return at;
  }
  const L = lowBits(n, last + 1);
  out[at++] = L;
  at = writeVarint(out, at, n);
  const lowStart = at;
  const highStart = lowStart + Math.ceil((n * L) / 8);
  const end = highStart + Math.ceil(((last >>> L) + n) / 8);
  out.fill(0, lowStart, end);
  const mask = (1 << L) - 1;
  for (let i = 0; i < n; i++) {
    const v = slots[from + i]!;
    // Low part: L bits from bit i * L on (at most three bytes).
    const bit = i * L;
    const low = (v & mask) << (bit & 7);
    const j = lowStart + (bit >>> 3);
    out[j]! |= low & 0xff;
    if (L > 0) {
      if (j + 1 < highStart) out[j + 1]! |= (low >>> 8) & 0xff;
      if (j + 2 < highStart) out[j + 2]! |= (low >>> 16) & 0xff;
    }
    const h = (v >>> L) + i;
    out[highStart + (h >>> 3)]! |= 1 << (h & 7);
  }
  return end;
}

/**
 * Decodes the list at `bytes[at..end)` into `out` (room for every entry) in ascending order;
 * returns the entry count.
 */
export function decodeList(bytes: Uint8Array, at: number, end: number, out: Uint32Array): number {
  if (at >= end) return 0;
  const L = bytes[at++]!;
  let k = 0;
  if (L === VARINT_LIST) {
    let slot = 0;
    while (at < end) {
      let b = bytes[at++]!;
      let delta = b & 0x7f;
      let scale = 128;
      while (b & 0x80) {
        b = bytes[at++]!;
        delta += (b & 0x7f) * scale;
        scale *= 128;
      }
      slot += delta;
      out[k++] = slot;
    }
    return k;
  }
  let n = 0;
  let scale = 1;
  for (;;) {
    const b = bytes[at++]!;
    n += (b & 0x7f) * scale;
    scale *= 128;
    if (!(b & 0x80)) break;
  }
  const lowStart = at;
  let p = lowStart + Math.ceil((n * L) / 8);
  const mask = (1 << L) - 1;
  let bit = 0;
  // Each set bit of the high parts is one entry: its position minus the entry's index is the
  // slot's high part; the low part is the next L bits of the low area, read from a three-byte
  // window (it may reach into the high parts, or past the last list into LIST_PADDING, and is masked).
  for (let base = 0; k < n; base += 8) {
    let byte = bytes[p++]!;
    while (byte !== 0) {
      const t = 31 - Math.clz32(byte & -byte);
      byte &= byte - 1;
      const i = lowStart + (bit >>> 3);
      const window = bytes[i]! | (bytes[i + 1]! << 8) | (bytes[i + 2]! << 16);
      out[k] = ((base + t - k) << L) | ((window >>> (bit & 7)) & mask);
      bit += L;
      k++;
    }
  }
  return k;
}
