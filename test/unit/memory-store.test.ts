/** The in-memory store: replace by id, delete, compaction, atomic validation. */
import { describe, expect, it } from 'vitest';
import { MemoryStore } from '../../src/store/memory.ts';
import type { TokenMatrix } from '../../src/types.ts';
import { ColbertError } from '../../src/errors.ts';

const matrix = (tokens: number, fill: number, dim = 4): TokenMatrix => ({
  data: new Float32Array(tokens * dim).fill(fill),
  tokens,
  dim,
  ids: Int32Array.from({ length: tokens }, (_, i) => i),
});

async function allDocs(store: MemoryStore): Promise<Map<string, number[]>> {
  const out = new Map<string, number[]>();
  for await (const shard of store.shards()) {
    shard.docIds.forEach((id, slot) => {
      if (id === null) return;
      const rows = shard.vectors.subarray(shard.offsets[slot]! * shard.dim, shard.offsets[slot + 1]! * shard.dim);
      out.set(id, [...rows]);
    });
  }
  return out;
}

describe('MemoryStore', () => {
  it('stores, replaces by id and reports counts', async () => {
    const store = new MemoryStore();
    await store.put([{ id: 'a', matrix: matrix(2, 1), metadata: { t: 'A' } }, { id: 'b', matrix: matrix(3, 2) }]);
    await store.put([{ id: 'a', matrix: matrix(1, 9) }]);
    const docs = await allDocs(store);
    expect(docs.get('a')).toEqual([9, 9, 9, 9]);
    expect(docs.get('b')?.length).toBe(12);
    expect(await store.stats()).toMatchObject({ documents: 2, tokens: 4 });
    expect(await store.metadata(['a', 'b', 'zz'])).toEqual([undefined, undefined, undefined]);
    expect((await store.matrix('b'))?.ids).toEqual(Int32Array.from([0, 1, 2]));
  });

  it('deletes for good and compacts without renumbering ids', async () => {
    const store = new MemoryStore();
    const docs = Array.from({ length: 10 }, (_, i) => ({ id: `d${i}`, matrix: matrix(i, i), metadata: { i } }));
    await store.put(docs);
    expect(await store.delete(['d1', 'd2', 'd3', 'd4', 'd5', 'd6', 'd7', 'nope'])).toEqual(['d1', 'd2', 'd3', 'd4', 'd5', 'd6', 'd7']);
    const left = await allDocs(store);
    expect([...left.keys()].sort()).toEqual(['d0', 'd8', 'd9']);
    expect(left.get('d9')).toEqual(new Array(36).fill(9));
    expect(await store.metadata(['d8'])).toEqual([{ i: 8 }]);
    expect(await store.has(['d0', 'd1'])).toEqual([true, false]);
    expect((await store.stats()).tokens).toBe(17);
  });

  it('rejects a batch with a wrong dimension and changes nothing', async () => {
    const store = new MemoryStore();
    await store.put([{ id: 'a', matrix: matrix(2, 1) }]);
    const bad = store.put([{ id: 'b', matrix: matrix(2, 1) }, { id: 'c', matrix: matrix(2, 1, 8) }]);
    await expect(bad).rejects.toMatchObject({ code: 'DIMENSION_MISMATCH' });
    await expect(bad).rejects.toBeInstanceOf(ColbertError);
    expect([...(await allDocs(store)).keys()]).toEqual(['a']);
  });

  it('keeps zero-token documents as live slots', async () => {
    const store = new MemoryStore();
    await store.put([{ id: 'empty', matrix: matrix(0, 0) }, { id: 'one', matrix: matrix(1, 1) }]);
    expect([...(await allDocs(store)).keys()].sort()).toEqual(['empty', 'one']);
    await store.delete(['one']);
    expect([...(await allDocs(store)).keys()]).toEqual(['empty']);
  });

  it('fails with CLOSED after close()', async () => {
    const store = new MemoryStore();
    await store.close();
    await expect(store.put([])).rejects.toMatchObject({ code: 'CLOSED' });
  });
});
