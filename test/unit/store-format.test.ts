/**
 * The shard format and the portable file, in Node: copy-on-write plans, residency keys,
 * compaction without renumbering, stored-record round trips, and a portable file that round-trips
 * at every precision and rejects corruption and truncation whole.
 */
import { describe, expect, it } from 'vitest';
import { codeOf } from '../support/errors.ts';
import { ColbertError } from '../../src/errors.ts';
import { FORMAT_VERSION, FORMAT_VERSION_WITHOUT_CODES, checkFingerprint } from '../../src/store/manifest.ts';
import { FINGERPRINT } from '../support/store.ts';
import { readPortable, writePortable } from '../../src/store/portable.ts';
import { decodeRows, VECTOR_PRECISIONS, type VectorPrecision } from '../../src/store/precision.ts';
import { packMatrix, segmentRows, Shard, ShardSet, snapshotShards, type PackedDocument } from '../../src/store/shards.ts';
import type { IndexSnapshot } from '../../src/store/types.ts';
import { centroidFloats, halfCentroids } from '../../src/store/residual.ts';
import { crc32 } from '../../src/checksum.ts';
import { mulberry32 } from '../fixtures/make-models.ts';

const DIM = 8;

function doc(id: string, tokens: number, seed: number, precision: VectorPrecision = 'fp32'): PackedDocument & { data: Float32Array } {
  const rand = mulberry32(seed);
  const data = Float32Array.from({ length: tokens * DIM }, () => rand() * 2 - 1);
  return { id, tokens, data, packed: packMatrix(data, tokens, DIM, precision), tokenIds: Int32Array.from({ length: tokens }, (_, i) => seed * 100 + i) };
}

/** Every live document's decoded rows, by id. */
function contents(set: ShardSet): Map<string, number[]> {
  const out = new Map<string, number[]>();
  for (const shard of set.list()) {
    shard.docIds.forEach((id, slot) => {
      if (id === null) return;
      const from = shard.offsets[slot]!;
      const to = shard.offsets[slot + 1]!;
      out.set(id, [...decodeRows(shard.packed, from, to - from, DIM)]);
    });
  }
  return out;
}


describe('ShardSet', () => {
  it('plans copy-on-write: the current state is untouched until apply()', () => {
    const set = new ShardSet('fp32', DIM, 't');
    set.apply(set.plan([doc('a', 3, 1), doc('b', 2, 2)]));
    const before = contents(set);
    const plan = set.plan([doc('a', 4, 3), doc('c', 1, 4)], ['b']);
    expect(contents(set)).toEqual(before);
    set.apply(plan);
    const after = contents(set);
    expect([...after.keys()].sort()).toEqual(['a', 'c']);
    expect(after.get('a')).toEqual([...doc('a', 4, 3).data]);
  });

  it('keeps a shard key while rows are only appended, and gives compacted rows a new key', () => {
    const set = new ShardSet('fp32', DIM, 't');
    set.apply(set.plan([doc('a', 10, 1), doc('b', 10, 2), doc('c', 10, 3)]));
    const [first] = set.list();
    set.apply(set.plan([doc('d', 5, 4)]));
    expect(set.list()).toHaveLength(1);
    expect(set.list()[0]!.key).toBe(first!.key);
    set.apply(set.plan([], ['b'])); // 10 of 35 rows dead: no compaction yet
    expect(set.list()[0]!.key).toBe(first!.key);
    expect(set.list()[0]!.docIds).toEqual(['a', null, 'c', 'd']);
    set.apply(set.plan([], ['a', 'c'])); // 30 of 35 dead: rewritten
    const [compacted] = set.list();
    expect(compacted!.key).not.toBe(first!.key);
    expect(compacted!.docIds).toEqual(['d']);
    expect(contents(set).get('d')).toEqual([...doc('d', 5, 4).data]);
    expect(set.locate('d')?.slot).toBe(0);
  });

  it('starts a new segment past the segment size and gives an oversized document its own', () => {
    expect(segmentRows('fp32', 128)).toBe(4096);
    const rows = segmentRows('int8', DIM);
    const set = new ShardSet('int8', DIM, 't');
    set.apply(set.plan([doc('a', rows - 10, 1, 'int8'), doc('b', 10, 2, 'int8'), doc('big', rows + 5, 3, 'int8'), doc('small', 3, 4, 'int8')]));
    expect(set.list().map((s) => s.docIds)).toEqual([['a', 'b'], ['big'], ['small']]);
    expect(set.tokens).toBe(2 * rows + 8);
  });

  it('round-trips a segment through its stored records at every precision', () => {
    for (const precision of VECTOR_PRECISIONS) {
      const set = new ShardSet(precision, DIM, 't');
      set.apply(set.plan([doc('a', 3, 1, precision), doc('b', 0, 2, precision), doc('c', 2, 3, precision)], []));
      set.apply(set.plan([], ['c']));
      const [shard] = set.list();
      const meta = structuredClone(shard!.toMeta());
      const data = structuredClone(shard!.toData());
      expect(data.vectors.byteLength).toBe(5 * (precision === 'fp32' ? 4 * DIM : precision === 'fp16' ? 2 * DIM : DIM));
      const back = Shard.fromRecord('r', meta, data);
      expect(back.docIds).toEqual(['a', 'b', null]);
      expect(back.key).not.toBe(shard!.key);
      const reloaded = new ShardSet(precision, DIM, 'r');
      reloaded.load([back]);
      expect(contents(reloaded)).toEqual(contents(set));
    }
  });

  it('rejects an inconsistent stored segment with INDEX_CORRUPT', () => {
    const set = new ShardSet('fp32', DIM, 't');
    set.apply(set.plan([doc('a', 3, 1)]));
    const [shard] = set.list();
    const data = shard!.toData();
    data.vectors = data.vectors.slice(0, 8);
    expect(() => Shard.fromRecord('r', shard!.toMeta(), data)).toThrow(expect.objectContaining({ code: 'INDEX_CORRUPT' }));
  });
});

function snapshotOf(precision: VectorPrecision): { snapshot: IndexSnapshot; set: ShardSet } {
  const set = new ShardSet(precision, DIM, 't');
  set.apply(set.plan([doc('a', 3, 1, precision), doc('b', 4, 2, precision), doc('c', 1, 3, precision)]));
  set.apply(set.plan([], ['b']));
  const { ids, shards } = snapshotShards(set.list());
  const now = Date.now();
  return {
    set,
    snapshot: {
      manifest: { format: FORMAT_VERSION, fingerprint: FINGERPRINT, precision, dim: DIM, documents: ids.length, tokens: set.tokens, createdAt: now, updatedAt: now },
      documents: ids.map((id) => ({ id, hash: `h-${id}`, metadata: { id }, text: `text of ${id} ✓` })),
      shards,
    },
  };
}


describe('portable file', () => {
  it('round-trips manifest, documents and vectors at every precision', () => {
    for (const precision of VECTOR_PRECISIONS) {
      const { snapshot, set } = snapshotOf(precision);
      const file = writePortable(snapshot);
      const back = readPortable(file);
      // Without codes the file is format 1, which older versions read.
      expect(back.manifest).toEqual({ ...snapshot.manifest, format: FORMAT_VERSION_WITHOUT_CODES });
      expect(new DataView(file.buffer).getUint32(8, true)).toBe(FORMAT_VERSION_WITHOUT_CODES);
      expect(back.documents).toEqual(snapshot.documents);
      const restored = new ShardSet(precision, DIM, 'r');
      restored.load(back.shards.map((s, i) => {
        const shard = Shard.create('r', i, DIM, precision, s.tokenIds.length);
        s.docIds.forEach((id, slot) => shard.append({ id, tokens: s.offsets[slot + 1]! - s.offsets[slot]!, packed: s, row: s.offsets[slot]!, tokenIds: s.tokenIds.subarray(s.offsets[slot]!, s.offsets[slot + 1]!) }));
        return shard;
      }));
      expect(contents(restored)).toEqual(contents(set));
      // A misaligned copy of the same bytes reads the same.
      const shifted = new Uint8Array(file.length + 1).subarray(1);
      shifted.set(file);
      expect(readPortable(shifted).documents).toEqual(snapshot.documents);
    }
  });

  it('rejects every single flipped byte, truncation, a wrong signature and a newer format', async () => {
    const file = writePortable(snapshotOf('int8').snapshot);
    const rand = mulberry32(7);
    for (let i = 0; i < 200; i++) {
      const bad = file.slice();
      const at = Math.floor(rand() * bad.length);
      bad[at] = bad[at]! ^ (1 + Math.floor(rand() * 255));
      const code = await codeOf(() => readPortable(bad));
      // A flip in the version field may claim a newer format; everything else is corruption.
      expect(at >= 8 && at < 12 ? ['INDEX_CORRUPT', 'INDEX_FORMAT_UNSUPPORTED'] : ['INDEX_CORRUPT']).toContain(code);
    }
    for (const length of [0, 10, 100, file.length - 1]) expect(await codeOf(() => readPortable(file.subarray(0, length)))).toBe('INDEX_CORRUPT');
    const newer = file.slice();
    new DataView(newer.buffer).setUint32(8, FORMAT_VERSION + 1, true);
    expect(await codeOf(() => readPortable(newer))).toBe('INDEX_FORMAT_UNSUPPORTED');
  });
});

/** A snapshot with a (made-up, well-formed) codec and codes: 4 centroids, nbits 2, one group. */
function withCodes(precision: VectorPrecision): IndexSnapshot {
  const { snapshot } = snapshotOf(precision);
  const rand = mulberry32(3);
  const rb = (DIM * 2) / 8;
  snapshot.compression = {
    codec: {
      codec: { dim: DIM, nbits: 2, centroids: halfCentroids(Float32Array.from({ length: 4 * DIM }, () => rand())), cutoffs: new Float32Array([-0.1, 0, 0.1]), weights: new Float32Array([-0.2, -0.05, 0.05, 0.2]) },
      tree: { coarse: Float32Array.from({ length: DIM }, () => rand()), starts: new Uint32Array([0, 4]) },
      trainedTokens: 5,
      poolFactor: 1,
    },
    codes: snapshot.shards.map((sh) => ({ codes: Uint16Array.from({ length: sh.tokenIds.length }, (_, i) => i % 4), residuals: Uint8Array.from({ length: sh.tokenIds.length * rb }, () => Math.floor(rand() * 256)) })),
  };
  return snapshot;
}

/**
 * `file` as the previous version wrote it: the codec section holds f32 centroids and its header
 * entry no centroidBits (sections laid out again, checksums recomputed, as the writer does).
 */
function withFp32Codec(file: Uint8Array): Uint8Array {
  const view = new DataView(file.buffer, file.byteOffset);
  const h = view.getUint32(12, true);
  const header = JSON.parse(new TextDecoder().decode(file.subarray(16, 16 + h))) as { manifest: unknown; totalBytes: number; sections: Record<string, number | string>[] };
  const bodies = header.sections.map((sec) => {
    const body = file.slice(sec['offset'] as number, (sec['offset'] as number) + (sec['length'] as number));
    if (sec['kind'] !== 'codec') return body;
    expect(sec['centroidBits']).toBe(16);
    delete sec['centroidBits'];
    const n = (sec['centroids'] as number) * DIM;
    const floats = centroidFloats({ centroids: new Uint16Array(body.buffer, 0, n) });
    const rest = body.subarray(Math.ceil((n * 2) / 4) * 4);
    const out = new Uint8Array(n * 4 + rest.length);
    out.set(new Uint8Array(floats.buffer), 0);
    out.set(rest, n * 4);
    return out;
  });
  (header.manifest as { format: number }).format = 2;
  const align = (n: number) => Math.ceil(n / 8) * 8;
  let text = new Uint8Array(0);
  let total = 0;
  for (;;) {
    let at = align(16 + text.length + 4);
    header.sections.forEach((sec, i) => {
      sec['offset'] = at;
      sec['length'] = bodies[i]!.length;
      sec['crc'] = crc32(bodies[i]!);
      at = align(at + bodies[i]!.length);
    });
    total = at;
    const next = new TextEncoder().encode(JSON.stringify({ ...header, totalBytes: total }));
    const stable = next.length === text.length;
    text = next;
    if (stable) break;
  }
  const out = new Uint8Array(total);
  out.set(file.subarray(0, 12), 0);
  const w = new DataView(out.buffer);
  // The previous version wrote such files as format 2.
  w.setUint32(8, 2, true);
  w.setUint32(12, text.length, true);
  out.set(text, 16);
  w.setUint32(16 + text.length, crc32(text), true);
  header.sections.forEach((sec, i) => out.set(bodies[i]!, sec['offset'] as number));
  return out;
}

describe('portable file with codes (format 2)', () => {
  it('reads a file whose codec holds f32 centroids (written by the previous version), rounding them to f16', () => {
    const snapshot = withCodes('fp16');
    const file = writePortable(snapshot);
    const old = withFp32Codec(file);
    expect(old.length).toBeGreaterThan(file.length);
    const back = readPortable(old).compression!;
    const want = snapshot.compression!;
    expect(back.codec.codec.centroids).toBeInstanceOf(Uint16Array);
    expect([...back.codec.codec.centroids]).toEqual([...want.codec.codec.centroids]);
    expect([...back.codec.codec.weights]).toEqual([...want.codec.codec.weights]);
    expect([...back.codec.tree.coarse]).toEqual([...want.codec.tree.coarse]);
    expect(back.codes.map((p) => [...p.codes])).toEqual(want.codes.map((p) => [...p.codes]));
    // Unrounded f32 centroids are rounded to the nearest half.
    const floats = centroidFloats(want.codec.codec);
    expect([...halfCentroids(floats.map((x) => x + 1e-7))]).toEqual([...want.codec.codec.centroids]);
  });

  it('round-trips the codec and the codes', () => {
    const snapshot = withCodes('fp16');
    const file = writePortable(snapshot);
    expect(new DataView(file.buffer).getUint32(8, true)).toBe(FORMAT_VERSION);
    const back = readPortable(file);
    expect(back.manifest.format).toBe(FORMAT_VERSION);
    const c = back.compression!;
    const want = snapshot.compression!;
    expect(c.codec.poolFactor).toBe(1);
    expect(c.codec.trainedTokens).toBe(5);
    expect([...c.codec.codec.centroids]).toEqual([...want.codec.codec.centroids]);
    expect([...c.codec.codec.cutoffs]).toEqual([...want.codec.codec.cutoffs]);
    expect([...c.codec.codec.weights]).toEqual([...want.codec.codec.weights]);
    expect([...c.codec.tree.coarse]).toEqual([...want.codec.tree.coarse]);
    expect([...c.codec.tree.starts]).toEqual([0, 4]);
    expect(c.codes.map((p) => [...p.codes])).toEqual(want.codes.map((p) => [...p.codes]));
    expect(c.codes.map((p) => [...p.residuals])).toEqual(want.codes.map((p) => [...p.residuals]));
  });

  it('rejects flipped bytes in the code sections, and codes naming a centroid the codec lacks', async () => {
    const file = writePortable(withCodes('int8'));
    const plainLength = writePortable(snapshotOf('int8').snapshot).length;
    const rand = mulberry32(11);
    for (let i = 0; i < 100; i++) {
      const bad = file.slice();
      // Past the vectors: the codec and codes sections (and the padding between them).
      const at = plainLength + Math.floor(rand() * (bad.length - plainLength));
      bad[at] = bad[at]! ^ (1 + Math.floor(rand() * 255));
      expect(await codeOf(() => readPortable(bad))).toBe('INDEX_CORRUPT');
    }
    const snapshot = withCodes('int8');
    snapshot.compression!.codes[0]!.codes[0] = 4;
    expect(await codeOf(() => readPortable(writePortable(snapshot)))).toBe('INDEX_CORRUPT');
  });
});

describe('manifest', () => {
  it('accepts the same content under another name, and names both models on a mismatch', () => {
    expect(() => checkFingerprint(FINGERPRINT, { ...FINGERPRINT, model: './local/copy', revision: undefined as never }, 'Index "x"')).not.toThrow();
    try {
      checkFingerprint(FINGERPRINT, { ...FINGERPRINT, model: 'other/model', content: 'ffffffffffffffff', encoding: { ...FINGERPRINT.encoding, documentLength: 519 } }, 'Index "x"');
      throw new Error('no error');
    } catch (err) {
      expect((err as ColbertError).code).toBe('INDEX_MODEL_MISMATCH');
      expect((err as ColbertError).message).toContain('test/model');
      expect((err as ColbertError).message).toContain('other/model');
      expect((err as ColbertError).details?.['differences']).toEqual(['content', 'encoding.documentLength']);
    }
  });
});
