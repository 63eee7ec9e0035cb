/**
 * The byte code of one inverted list (a centroid's ascending, distinct slot numbers), chosen per
 * list as the smaller of two:
 *
 * - Elias-Fano (first byte `L`, 0..31): then the entry count `n` as a varint, `n` low parts of
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
  return Math.min(31, Math.max(0, Math.floor(Math.log2(universe / n))));
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
  const last = slots[to - 1]!;
  const L = lowBits(n, last + 1);
  const ef = 1 + varintBytes(n) + Math.ceil((n * L) / 8) + Math.ceil((Math.floor(last / 2 ** L) + n) / 8);
  return Math.min(varint, ef);
}

/** Writes `slots[from..to)` (ascending, distinct) at `out[at]`, exactly {@link listBytes} bytes; returns the end. */
export function encodeList(slots: Uint32Array, from: number, to: number, out: Uint8Array, at: number): number {
  const n = to - from;
  if (n === 0) return at;
  const size = listBytes(slots, from, to);
  const last = slots[to - 1]!;
  const L = lowBits(n, last + 1);
  const efSize = 1 + varintBytes(n) + Math.ceil((n * L) / 8) + Math.ceil((Math.floor(last / 2 ** L) + n) / 8);
  if (size < efSize) {
    out[at++] = VARINT_LIST;
    let prev = 0;
    for (let i = from; i < to; i++) {
      at = writeVarint(out, at, slots[i]! - prev);
      prev = slots[i]!;
    }
    return at;
  }
  out[at++] = L;
  at = writeVarint(out, at, n);
  const lowStart = at;
  const highStart = lowStart + Math.ceil((n * L) / 8);
  const end = highStart + Math.ceil((Math.floor(last / 2 ** L) + n) / 8);
  out.fill(0, lowStart, end);
  const scale = 2 ** L;
  for (let i = 0; i < n; i++) {
    const v = slots[from + i]!;
    const high = Math.floor(v / scale);
    let low = v - high * scale;
    // Low part: L bits from bit i * L on.
    let bit = i * L;
    for (let left = L; left > 0; ) {
      const off = bit & 7;
      const take = Math.min(8 - off, left);
      out[lowStart + (bit >>> 3)]! |= (low & ((1 << take) - 1)) << off;
      low = Math.floor(low / 2 ** take);
      bit += take;
      left -= take;
    }
    const h = high + i;
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
  const unit = 2 ** L;
  const mask = L <= 24 ? (1 << L) - 1 : 0;
  let bit = 0;
  for (let base = 0; k < n; p++, base += 8) {
    let byte = bytes[p]!;
    while (byte !== 0 && k < n) {
      const t = 31 - Math.clz32(byte & -byte);
      byte &= byte - 1;
      const high = base + t - k;
      // Low part k: L bits from bit k * L on (`bit`, advanced in order). Up to 24 bits lie in
      // one 32-bit little-endian window (a byte past the array reads as 0 and is masked off).
      let low = 0;
      if (L <= 24) {
        const i = lowStart + (bit >>> 3);
        const window = bytes[i]! | (bytes[i + 1]! << 8) | (bytes[i + 2]! << 16) | (bytes[i + 3]! << 24);
        low = (window >>> (bit & 7)) & mask;
        bit += L;
      } else {
        for (let got = 0; got < L; ) {
          const off = bit & 7;
          const take = Math.min(8 - off, L - got);
          low += ((bytes[lowStart + (bit >>> 3)]! >>> off) & ((1 << take) - 1)) * 2 ** got;
          got += take;
          bit += take;
        }
      }
      out[k++] = high * unit + low;
    }
  }
  return k;
}
