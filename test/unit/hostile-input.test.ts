/**
 * Input a hostile or careless caller gives, in Node without a model: random or damaged bytes for
 * importIndex (always INDEX_CORRUPT, never a bare TypeError or a made-up newer version), and
 * metadata that JSON or structured cloning cannot carry (INVALID_METADATA at add, not a broken
 * stats() or exportIndex() later).
 */
import { describe, expect, it } from 'vitest';
import { codeOf } from '../support/errors.ts';
import { crc32 } from '../../src/checksum.ts';
import { FORMAT_VERSION } from '../../src/store/manifest.ts';
import { checkInputMetadata, checkMetadata } from '../../src/store/metadata.ts';
import { MemoryStore } from '../../src/store/memory.ts';
import { PORTABLE_MAGIC, readPortable, writePortable } from '../../src/store/portable.ts';
import { mulberry32 } from '../fixtures/make-models.ts';
import { FINGERPRINT } from '../support/store.ts';

const DIM = FINGERPRINT.dim;

function randomBytes(length: number, seed: number): Uint8Array {
  const rand = mulberry32(seed);
  return Uint8Array.from({ length }, () => Math.floor(rand() * 256));
}

/** A valid file of two documents. */
async function validFile(): Promise<Uint8Array> {
  const store = new MemoryStore({ fingerprint: FINGERPRINT });
  const rand = mulberry32(3);
  await store.put(['a', 'b'].map((id) => ({ id, matrix: { data: Float32Array.from({ length: 2 * DIM }, () => rand()), tokens: 2, dim: DIM, ids: new Int32Array(2) }, metadata: { id } })));
  return writePortable(await store.snapshot());
}

/** `file` with its header replaced by `header` (JSON) and a correct header CRC. */
function withHeader(file: Uint8Array, header: unknown, version = FORMAT_VERSION): Uint8Array {
  const json = new TextEncoder().encode(JSON.stringify(header));
  const out = new Uint8Array(16 + json.length + 4 + 64);
  out.set(file.subarray(0, 8));
  const view = new DataView(out.buffer);
  view.setUint32(8, version, true);
  view.setUint32(12, json.length, true);
  out.set(json, 16);
  view.setUint32(16 + json.length, crc32(json), true);
  return out;
}

describe('importing damaged or foreign bytes', () => {
  it('is INDEX_CORRUPT for random bytes of any length (not a TextDecoder TypeError)', async () => {
    for (let seed = 1; seed <= 200; seed++) {
      const bytes = randomBytes(1 + (seed * 37) % 3000, seed);
      expect(await codeOf(() => readPortable(bytes))).toBe('INDEX_CORRUPT');
    }
    // Invalid UTF-8 exactly where the signature goes.
    expect(await codeOf(() => readPortable(new Uint8Array(64).fill(0xff)))).toBe('INDEX_CORRUPT');
  });

  it('is INDEX_CORRUPT, not INDEX_FORMAT_UNSUPPORTED, for random bytes behind a valid signature', async () => {
    const magic = new TextEncoder().encode(PORTABLE_MAGIC);
    for (let seed = 1; seed <= 200; seed++) {
      const bytes = randomBytes(20 + (seed * 53) % 4000, seed + 1000);
      bytes.set(magic);
      expect(await codeOf(() => readPortable(bytes))).toBe('INDEX_CORRUPT');
    }
    // A valid file whose header is damaged: its version field can no longer be trusted either.
    const file = await validFile();
    const bad = file.slice();
    new DataView(bad.buffer).setUint32(8, 2924999860, true);
    bad[20] = bad[20]! ^ 0x01;
    expect(await codeOf(() => readPortable(bad))).toBe('INDEX_CORRUPT');
  });

  it('is INDEX_FORMAT_UNSUPPORTED only for an intact header of a newer version', async () => {
    const file = await validFile();
    const newer = file.slice();
    new DataView(newer.buffer).setUint32(8, FORMAT_VERSION + 1, true);
    const err = await codeOf(() => readPortable(newer));
    expect(err).toBe('INDEX_FORMAT_UNSUPPORTED');
    expect(readPortable(file).documents.map((d) => d.id)).toEqual(['a', 'b']);
  });

  it('is INDEX_CORRUPT for a checksummed header whose content is malformed', async () => {
    const file = await validFile();
    const header = JSON.parse(new TextDecoder().decode(file.subarray(16, 16 + new DataView(file.buffer).getUint32(12, true)))) as Record<string, unknown>;
    for (const sections of [[null], [{ kind: 'documents', offset: 'x' }], 'none', [{ kind: 'documents', offset: 8, length: 1e12, crc: 0 }]]) {
      expect(await codeOf(() => readPortable(withHeader(file, { ...header, sections })))).toBe('INDEX_CORRUPT');
    }
    expect(await codeOf(() => readPortable(withHeader(file, null)))).toBe('INDEX_CORRUPT');
  });
});

describe('metadata validation', () => {
  const cyclic: Record<string, unknown> = { a: 1 };
  cyclic['self'] = cyclic;
  const deep: Record<string, unknown> = {};
  let at = deep;
  for (let i = 0; i < 100; i++) at = (at['x'] = {}) as Record<string, unknown>;
  class Point {
    x = 1;
  }
  const bad: [string, unknown, RegExp][] = [
    ['BigInt', { n: 10n }, /metadata\.n as a BigInt/],
    ['cycle', cyclic, /metadata\.self as a reference to itself/],
    ['function', { f: () => 1 }, /metadata\.f as a function/],
    ['Symbol', { s: Symbol('x') }, /metadata\.s as a Symbol/],
    ['Symbol key', { [Symbol('k')]: 1 }, /Symbol keys/],
    ['NaN', { v: [1, Number.NaN] }, /metadata\.v\[1\] as NaN/],
    ['Infinity', { v: Infinity }, /Infinity/],
    ['Date', { at: new Date(0) }, /metadata\.at as a Date.*toISOString/],
    ['Map', { m: new Map() }, /a Map/],
    ['class instance', { p: new Point() }, /a Point/],
    ['typed array', { t: new Float32Array(2) }, /a Float32Array/],
    ['array hole', { a: [1, undefined] }, /metadata\.a\[1\] as undefined/],
    ['deep', deep, /nested deeper/],
    ['array at the top', [1, 2], /is an array/],
    ['string at the top', 'title', /is a string/],
    ['null at the top', null, /is null/],
  ];
  for (const [what, metadata, message] of bad) {
    it(`refuses ${what} with INVALID_METADATA naming the document and the path`, () => {
      try {
        checkMetadata(metadata, 'doc-1');
        throw new Error('accepted');
      } catch (err) {
        expect(err).toMatchObject({ name: 'ColbertError', code: 'INVALID_METADATA' });
        expect((err as Error).message).toMatch(/"doc-1"/);
        expect((err as Error).message).toMatch(message);
      }
    });
  }

  it('accepts JSON data, shared (acyclic) references and null-prototype objects, unchanged', () => {
    const shared = { tag: 'x' };
    const ok = { title: 'T', n: -1.5, yes: true, none: null, list: [1, 'a', [shared, shared]], nested: { shared }, skipped: undefined, bare: Object.assign(Object.create(null) as object, { k: 1 }) };
    expect(checkMetadata(ok, 'd')).toBe(ok);
    expect(checkMetadata(undefined, 'd')).toBeUndefined();
    expect(() => checkInputMetadata([{ id: 'a', text: 'x', metadata: ok }, { id: 'b', text: 'y' }, 'not an object', null])).not.toThrow();
    expect(() => checkInputMetadata([{ id: 'a', text: 'x' }, { text: 'y', metadata: { b: 1n } }])).toThrow(/"item 1"/);
  });

  it('keeps exportIndex working: metadata stored by an older version is INVALID_METADATA naming the document', async () => {
    const store = new MemoryStore({ fingerprint: FINGERPRINT });
    // The store trusts the engine; an older engine let this through.
    await store.put([{ id: 'old', matrix: { data: new Float32Array(DIM), tokens: 1, dim: DIM, ids: new Int32Array(1) }, metadata: { n: 1n } }]);
    const snapshot = await store.snapshot();
    try {
      writePortable(snapshot);
      throw new Error('exported');
    } catch (err) {
      expect(err).toMatchObject({ code: 'INVALID_METADATA', details: { id: 'old' } });
    }
  });
});
