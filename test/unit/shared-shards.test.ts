/**
 * Shards in shared memory (for scoring sub-workers): the one switch on ShardSet (through the
 * stores' `sharedMemory` option) allocates every shard's packed rows in SharedArrayBuffers, growth
 * and compaction keep them there, loading from IndexedDB copies into them, and nothing written to
 * IndexedDB is ever a SharedArrayBuffer. fake-indexeddb stores a SharedArrayBuffer without
 * complaint (browsers throw DataCloneError), so the writes are inspected explicitly.
 */
import 'fake-indexeddb/auto';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { deleteIndex, IdbStore, listIndexes } from '../../src/store/idb.ts';
import { MemoryStore } from '../../src/store/memory.ts';
import { readPortable, writePortable } from '../../src/store/portable.ts';
import { isShared, VECTOR_PRECISIONS, type VectorPrecision } from '../../src/store/precision.ts';
import { sharedShardsByDefault } from '../../src/store/shards.ts';
import type { ShardView, VectorStore } from '../../src/store/types.ts';
import { mulberry32 } from '../support/rng.ts';
import { randomMatrix } from '../support/shards.ts';
import { FINGERPRINT } from '../support/store.ts';

const DIM = FINGERPRINT.dim;

async function views(store: VectorStore): Promise<ShardView[]> {
  const out: ShardView[] = [];
  for await (const shard of store.shards()) out.push(shard);
  return out;
}

/** Every live document's packed rows (and int8 scales), by id. */
async function contents(store: VectorStore): Promise<Record<string, number[]>> {
  const out: Record<string, number[]> = {};
  for (const shard of await views(store)) {
    shard.docIds.forEach((id, slot) => {
      const [from, to] = [shard.offsets[slot]!, shard.offsets[slot + 1]!];
      if (id !== null) out[id] = [...shard.vectors.subarray(from * DIM, to * DIM), ...(shard.scales?.subarray(from, to) ?? [])];
    });
  }
  return out;
}

/** Paths to every SharedArrayBuffer inside a value (objects, arrays, typed arrays). */
function sharedBuffersIn(value: unknown, path = '$', seen = new Set<unknown>()): string[] {
  if (typeof value !== 'object' || value === null || seen.has(value)) return [];
  seen.add(value);
  if (value instanceof SharedArrayBuffer) return [path];
  if (ArrayBuffer.isView(value)) return isShared(value) ? [path] : [];
  if (value instanceof ArrayBuffer) return [];
  return Object.entries(value).flatMap(([k, v]) => sharedBuffersIn(v, `${path}.${k}`, seen));
}

const docs = (n: number, seed: number, prefix = 'd') => {
  const next = mulberry32(seed);
  return Array.from({ length: n }, (_, i) => ({ id: `${prefix}${i}`, matrix: randomMatrix(i % 7 === 0 ? 0 : 1 + Math.floor(next() * 40), DIM, next) }));
};

afterEach(async () => {
  vi.restoreAllMocks();
  for (const { name } of await listIndexes()) await deleteIndex(name);
});

describe('shards in shared memory', () => {
  it('are off by default where the realm is not cross-origin isolated (Node)', async () => {
    expect(sharedShardsByDefault()).toBe(false);
    const store = new MemoryStore();
    await store.put(docs(3, 1));
    expect((await views(store)).every((v) => !isShared(v.vectors))).toBe(true);
  });

  for (const precision of VECTOR_PRECISIONS) {
    it(`${precision}: a memory store with sharedMemory keeps every shard shared through growth, deletes and compaction, with the same rows`, async () => {
      const shared = new MemoryStore({ precision, sharedMemory: true });
      const plain = new MemoryStore({ precision, sharedMemory: false });
      for (const store of [shared, plain]) {
        // Many small batches: the tail shard grows (reallocates) several times.
        for (let b = 0; b < 6; b++) await store.put(docs(40, 10 + b, `b${b}-`));
        // Most of the first batches deleted: their shards are compacted into new ones.
        await store.delete(docs(40, 10, 'b0-').map((d) => d.id).concat(docs(40, 11, 'b1-').map((d) => d.id).slice(0, 30)));
      }
      const sharedViews = await views(shared);
      expect(sharedViews.length).toBeGreaterThan(0);
      for (const v of sharedViews) {
        expect(isShared(v.vectors)).toBe(true);
        if (precision === 'int8') expect(isShared(v.scales!)).toBe(true);
      }
      expect((await views(plain)).some((v) => isShared(v.vectors))).toBe(false);
      expect(await contents(shared)).toEqual(await contents(plain));
    });
  }

  it('IndexedDB: no write ever holds a SharedArrayBuffer, and a reopened store loads into shared memory', async () => {
    const put = vi.spyOn(IDBObjectStore.prototype, 'put');
    for (const precision of ['fp32', 'int8'] as VectorPrecision[]) {
      const name = `shared-${precision}`;
      const store = await IdbStore.open({ name, fingerprint: FINGERPRINT, precision, sharedMemory: true });
      await store.put(docs(30, 3, 'a'));
      await store.put(docs(30, 4, 'b')); // appends to the tail segment
      await store.stage([{ id: 's0', hash: 'h', matrix: randomMatrix(4, DIM, mulberry32(5)) }]);
      await store.commit([{ id: 's0', hash: 'h' }]);
      await store.delete(docs(30, 3, 'a').map((d) => d.id)); // compaction rewrites segments
      expect((await views(store)).every((v) => isShared(v.vectors))).toBe(true);
      const expected = await contents(store);
      // Export from shared shards, import back (restore writes every segment again).
      const file = writePortable(await store.snapshot());
      await store.restore(readPortable(file));
      expect(await contents(store)).toEqual(expected);
      await store.close();

      const again = await IdbStore.open({ name, fingerprint: FINGERPRINT, sharedMemory: true });
      const loaded = await views(again);
      expect(loaded.every((v) => isShared(v.vectors) && (precision !== 'int8' || isShared(v.scales!)))).toBe(true);
      expect(await contents(again)).toEqual(expected);
      await again.put(docs(5, 6, 'c')); // an append to a segment loaded into shared memory
      await again.close();
      const plain = await IdbStore.open({ name, fingerprint: FINGERPRINT, sharedMemory: false });
      expect((await views(plain)).some((v) => isShared(v.vectors))).toBe(false);
      expect(Object.keys(await contents(plain))).toHaveLength(Object.keys(expected).length + 5);
      await plain.close();
    }
    const writes = put.mock.calls.map((call) => call[0]);
    expect(writes.length).toBeGreaterThan(20);
    // Vector records really were written (so the check below looked at them).
    expect(writes.filter((w) => typeof w === 'object' && w !== null && 'vectors' in w && 'tokenIds' in w).length).toBeGreaterThan(4);
    expect(writes.flatMap((w, i) => sharedBuffersIn(w, `write ${i}`))).toEqual([]);
  });
});
