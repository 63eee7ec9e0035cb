/**
 * Multithreaded CPU MaxSim in Node: the row-balanced work split, the thread option, and the pool
 * protocol end to end with in-process workers (the real worker code of src/score/pool-worker.ts,
 * messages structured-cloned as a browser would, SharedArrayBuffers shared): bit-identical scores
 * to one thread for every precision across appends, deletes and compaction; each shard buffer sent
 * once per key and dropped when the key is gone; a worker that errors or stops answering falls back
 * to one thread with a reason. The real sub-workers run in test/browser/threads.spec.ts.
 */
import 'fake-indexeddb/auto';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { serveMaxSim, type PoolQuery, type PoolReply, type PoolScope } from '../../src/score/pool-worker.ts';
import { splitWork, type Splittable } from '../../src/score/pool.ts';
import { CpuScorer, createScorer } from '../../src/score/scorer.ts';
import { deleteIndex, IdbStore } from '../../src/store/idb.ts';
import { MemoryStore } from '../../src/store/memory.ts';
import { VECTOR_PRECISIONS } from '../../src/store/precision.ts';
import { expectCode } from '../support/errors.ts';
import { mulberry32 } from '../support/rng.ts';
import { randomMatrix } from '../support/shards.ts';
import { FINGERPRINT } from '../support/store.ts';

/** A shard of `rows[i]` rows per document (null = deleted). */
function splittable(rows: (number | null)[]): Splittable {
  const offsets = new Uint32Array(rows.length + 1);
  rows.forEach((r, i) => (offsets[i + 1] = offsets[i]! + (r ?? 3)));
  return { offsets, docIds: rows.map((r, i) => (r === null ? null : `d${i}`)) };
}

describe('splitWork', () => {
  it('covers every document exactly once, in order, and balances live rows within one document', () => {
    const next = mulberry32(9);
    for (let trial = 0; trial < 200; trial++) {
      const shards = Array.from({ length: 1 + Math.floor(next() * 5) }, () => splittable(Array.from({ length: Math.floor(next() * 40) }, () => (next() < 0.1 ? null : Math.floor(next() * 300)))));
      const parts = 1 + Math.floor(next() * 8);
      const split = splitWork(shards, parts);
      expect(split).toHaveLength(parts);
      const seen = shards.map((s) => new Array<number>(s.docIds.length).fill(0));
      let last = [-1, 0];
      let total = 0;
      let biggest = 0;
      shards.forEach((s) => s.docIds.forEach((id, d) => id !== null && ((total += s.offsets[d + 1]! - s.offsets[d]!), (biggest = Math.max(biggest, s.offsets[d + 1]! - s.offsets[d]!)))));
      for (const part of split) {
        let rows = 0;
        for (const { shard, start, end } of part) {
          expect(end).toBeGreaterThan(start);
          // Ranges follow shard and document order across parts.
          expect(shard > last[0]! || (shard === last[0] && start >= last[1]!)).toBe(true);
          last = [shard, end];
          for (let d = start; d < end; d++) {
            seen[shard]![d]!++;
            if (shards[shard]!.docIds[d] !== null) rows += shards[shard]!.offsets[d + 1]! - shards[shard]!.offsets[d]!;
          }
        }
        expect(rows).toBeLessThanOrEqual(total / parts + biggest);
      }
      expect(seen.flat().every((n) => n === 1)).toBe(true);
    }
  });

  it('gives parts equal rows when documents are equal, and ignores deleted rows', () => {
    const split = splitWork([splittable([10, 10, null, 10]), splittable([10, null, null])], 2);
    expect(split).toEqual([[{ shard: 0, start: 0, end: 2 }], [{ shard: 0, start: 2, end: 4 }, { shard: 1, start: 0, end: 3 }]]);
  });
});

describe('thread option', () => {
  it('is 1 by default where the realm is not cross-origin isolated (Node), and says why when more were asked for', async () => {
    expect((await createScorer({ scoring: 'cpu' })).threads).toBe(1);
    const scorer = await createScorer({ scoring: 'cpu', threads: 3 });
    expect(scorer.threads).toBe(1);
    expect(scorer.threadsFallbackReason).toMatch(/cross-origin isolated/);
  });

  it('must be a positive integer (INVALID_ARGUMENT)', async () => {
    for (const threads of [0, -2, 1.5, Number.NaN, '2']) await expectCode(createScorer({ scoring: 'cpu', threads: threads as number }), 'INVALID_ARGUMENT');
  });
});

/** An in-process stand-in for a module worker running workers/maxsim.worker.ts. */
class InProcessWorker extends EventTarget {
  static all: InProcessWorker[] = [];
  terminated = false;
  /** Every query message it received. */
  readonly queries: PoolQuery[] = [];
  /** When set, this worker's replies to queries are replaced by an error. */
  failQueries = false;
  private readonly scope: PoolScope = { onmessage: null, postMessage: (reply: PoolReply) => this.reply(reply) };

  constructor() {
    super();
    serveMaxSim(this.scope);
    InProcessWorker.all.push(this);
  }

  postMessage(message: unknown): void {
    const data = structuredClone(message);
    if ((data as PoolQuery).type === 'score') this.queries.push(data as PoolQuery);
    setTimeout(() => !this.terminated && this.scope.onmessage?.(new MessageEvent('message', { data })));
  }

  private reply(reply: PoolReply): void {
    const data = this.failQueries && reply.type === 'done' ? { type: 'error', id: reply.id, message: 'injected failure' } : structuredClone(reply);
    setTimeout(() => !this.terminated && this.dispatchEvent(new MessageEvent('message', { data })));
  }

  terminate(): void {
    this.terminated = true;
  }
}

describe('CpuScorer on several threads (in-process workers)', () => {
  afterEach(() => {
    vi.unstubAllGlobals();
    InProcessWorker.all = [];
  });

  const isolated = () => {
    vi.stubGlobal('crossOriginIsolated', true);
    vi.stubGlobal('Worker', InProcessWorker);
  };
  const threaded = (threads: number, stallMs = 2000) => new CpuScorer(undefined, { threads, parallelMinRows: 0, stallMs, spawnWorker: () => new InProcessWorker() as unknown as Worker });

  it.each(VECTOR_PRECISIONS)('%s: scores bit-identical to one thread across appends, deletes and compaction; buffers sent once per key', async (precision) => {
    isolated();
    const next = mulberry32(precision.length * 7);
    const dim = 32;
    const store = new MemoryStore({ precision, sharedMemory: true });
    const doc = (i: number) => ({ id: `d${String(i).padStart(4, '0')}`, matrix: randomMatrix(i % 11 === 0 ? 0 : i % 13 === 1 ? 1 : 2 + Math.floor(next() * 90), dim, next) });
    await store.put(Array.from({ length: 700 }, (_, i) => doc(i)));
    await store.delete(['d0003', 'd0100', 'd0101']);
    const one = new CpuScorer(undefined);
    const three = threaded(3);
    expect(three.threads).toBe(3);
    const compare = async () => {
      const live = (await store.stats()).documents;
      for (const tokens of [1, 32]) {
        const q = randomMatrix(tokens, dim, next);
        const got = await three.rank(q, () => store.shards(), live + 3);
        expect(three.lastParallel).toBe(true);
        expect(got).toEqual(await one.rank(q, () => store.shards(), live + 3));
        expect(got).toHaveLength(live);
      }
    };
    await compare();
    const [w1, w2] = InProcessWorker.all;
    // The first query sent the buffers, the second none.
    expect(w1!.queries[0]!.resident.length + w2!.queries[0]!.resident.length).toBeGreaterThan(0);
    expect(w1!.queries[1]!.resident.concat(w2!.queries[1]!.resident)).toEqual([]);
    await store.put(Array.from({ length: 200 }, (_, i) => doc(700 + i)));
    await store.delete(Array.from({ length: 300 }, (_, i) => `d${String(i).padStart(4, '0')}`)); // compacts the first shard away
    await compare();
    // Keys that disappeared were dropped from the workers that held them.
    const keys = new Set<string>();
    for await (const s of store.shards()) keys.add(s.key);
    for (const w of [w1!, w2!]) {
      const held = new Set<string>();
      for (const q of w.queries) {
        for (const k of q.drop) held.delete(k);
        for (const r of q.resident) held.add(r.key);
      }
      for (const k of held) expect(keys.has(k), `worker still holds ${k}`).toBe(true);
    }
    expect(w1!.queries.flatMap((q) => q.drop).length + w2!.queries.flatMap((q) => q.drop).length).toBeGreaterThan(0);
    expect(three.threadsFallbackReason).toBeUndefined();
    three.dispose();
    expect(InProcessWorker.all.every((w) => w.terminated)).toBe(true);
  });

  it('streams shards read on demand in batches (scored before the next batch is read), with the same hits as one thread', async () => {
    isolated();
    const next = mulberry32(17);
    const dim = 128;
    const store = await IdbStore.open({ name: 'pool-stream', fingerprint: { ...FINGERPRINT, dim }, precision: 'fp16', sharedMemory: true });
    try {
      // 750 documents of 40 rows: four segments of at most 8192 rows, three of them full.
      for (let b = 0; b < 5; b++) await store.put(Array.from({ length: 150 }, (_, i) => ({ id: `d${b * 150 + i}`, matrix: randomMatrix(40, dim, next) })));
      await store.setRowResidency('on-demand');
      const one = new CpuScorer(undefined);
      // Batches of at least 8000 rows: one full segment each.
      const three = new CpuScorer(undefined, { threads: 3, parallelMinRows: 8000, spawnWorker: () => new InProcessWorker() as unknown as Worker });
      /** The store's shards, recording for each whether it was read on demand and how many pool queries had been posted before it. */
      const seen: { transient: boolean; posted: number }[] = [];
      const traced = async function* () {
        for await (const s of store.shards()) {
          seen.push({ transient: s.transient === true, posted: InProcessWorker.all[0]?.queries.length ?? 0 });
          yield s;
        }
      };
      const q = randomMatrix(8, dim, next);
      const got = await three.rank(q, traced, 50);
      expect(three.lastParallel).toBe(true);
      expect(got).toEqual(await one.rank(q, () => store.shards(), 50));
      // Three segments are read on demand, the tail is held; each batch was scored before the next was read.
      expect(seen.filter((s) => s.transient)).toHaveLength(3);
      expect(seen.filter((s) => !s.transient)).toHaveLength(1);
      expect(seen.map((s) => s.posted)).toEqual([0, 1, 2, 3]);
      // One pool query per batch, each naming its batch's shard only (the tail, under 8000 rows, is scored on this thread).
      const queries = InProcessWorker.all[0]!.queries;
      expect(queries).toHaveLength(3);
      expect(queries.map((m) => new Set(m.tasks.map((t) => t.key)).size)).toEqual([1, 1, 1]);
      three.dispose();
    } finally {
      await store.close();
      await deleteIndex('pool-stream');
    }
  });

  it('scores small indexes and unshared shards on the calling thread without starting workers', async () => {
    isolated();
    const next = mulberry32(3);
    const store = new MemoryStore({ sharedMemory: false });
    await store.put(Array.from({ length: 50 }, (_, i) => ({ id: `d${i}`, matrix: randomMatrix(10, 16, next) })));
    const scorer = threaded(2);
    await scorer.rank(randomMatrix(4, 16, next), () => store.shards(), 5);
    const small = new CpuScorer(undefined, { threads: 2, spawnWorker: () => new InProcessWorker() as unknown as Worker });
    const shared = new MemoryStore({ sharedMemory: true });
    await shared.put(Array.from({ length: 50 }, (_, i) => ({ id: `d${i}`, matrix: randomMatrix(10, 16, next) })));
    await small.rank(randomMatrix(4, 16, next), () => shared.shards(), 5); // 500 rows: below the default threshold
    expect(scorer.lastParallel || small.lastParallel).toBe(false);
    expect(InProcessWorker.all).toHaveLength(0);
  });

  for (const failure of ['error', 'silence', 'spawn'] as const) {
    it(`a worker that ${failure === 'error' ? 'reports an error' : failure === 'silence' ? 'stops answering (terminated)' : 'cannot be created'} falls back to one thread, with a reason, for this and later queries`, async () => {
      isolated();
      const next = mulberry32(5);
      const store = new MemoryStore({ precision: 'int8', sharedMemory: true });
      await store.put(Array.from({ length: 300 }, (_, i) => ({ id: `d${i}`, matrix: randomMatrix(1 + (i % 30), 16, next) })));
      const one = new CpuScorer(undefined);
      const scorer = new CpuScorer(undefined, {
        threads: 3,
        parallelMinRows: 0,
        stallMs: 50,
        spawnWorker: (i) => {
          if (failure === 'spawn' && i === 1) throw new Error('blocked by CSP');
          return new InProcessWorker() as unknown as Worker;
        },
      });
      const queries = [0, 1, 2].map(() => randomMatrix(8, 16, next));
      const first = await scorer.rank(queries[0]!, () => store.shards(), 20);
      if (failure !== 'spawn') {
        expect(scorer.lastParallel).toBe(true);
        if (failure === 'error') InProcessWorker.all[1]!.failQueries = true;
        else InProcessWorker.all[0]!.terminate();
      }
      const during = await scorer.rank(queries[1]!, () => store.shards(), 20);
      expect(scorer.lastParallel).toBe(false);
      const after = await scorer.rank(queries[2]!, () => store.shards(), 20);
      expect(scorer.threads).toBe(1);
      expect(scorer.threadsFallbackReason).toMatch(failure === 'error' ? /injected failure/ : failure === 'silence' ? /did not answer/ : /blocked by CSP/);
      expect(InProcessWorker.all.every((w) => w.terminated)).toBe(true);
      for (const [i, got] of [first, during, after].entries()) expect(got).toEqual(await one.rank(queries[i]!, () => store.shards(), 20));
    });
  }
});
