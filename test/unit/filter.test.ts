/**
 * Metadata filters: the operators and their edge cases, INVALID_FILTER naming the bad part, and
 * the property that a filtered search equals "score everything, then filter" (the CPU scorer over
 * a memory store, and the public API over memory and IndexedDB stores).
 */
import 'fake-indexeddb/auto';
import { afterAll, describe, expect, it } from 'vitest';
import { resolve } from 'node:path';
import { allowedIds, compileFilter, type Filter } from '../../src/filter/index.ts';
import { createSearch, type ColbertSearch } from '../../src/index.ts';
import { CpuScorer } from '../../src/score/scorer.ts';
import { MemoryStore } from '../../src/store/memory.ts';
import type { Metadata } from '../../src/types.ts';
import { makeTestModels } from '../fixtures/make-models.ts';
import { codeOf, expectCode } from '../support/errors.ts';
import { randomFilter, randomMetadata } from '../support/filters.ts';
import { mulberry32 } from '../support/rng.ts';
import { randomMatrix } from '../support/shards.ts';
import { HAVE_SHARED, REPO_ROOT, SHARED_MISSING, TOKENIZER_DIR } from '../support/shared.ts';

const docs: Record<string, Metadata | undefined> = {
  a: { tag: 'work', year: 2024, date: '2024-03-01', tags: ['x', 'y'], author: { name: 'Ada', age: 36 } },
  b: { tag: 'home', year: 2019, date: '2019-12-31T23:00:00Z', tags: [], author: { name: 'Bob' } },
  c: { tag: 'work', year: 2021, flag: false, draft: null },
  d: undefined,
  e: { tag: 'legal', year: '2024', date: 'last week', author: 'Eve' },
};

function passing(filter: unknown): string[] {
  const p = compileFilter(filter);
  return Object.keys(docs).filter((id) => p(docs[id]));
}

describe('compileFilter', () => {
  it('equality, $eq, $ne, and arrays matching by any element', () => {
    expect(passing({ tag: 'work' })).toEqual(['a', 'c']);
    expect(passing({ tag: { $eq: 'home' } })).toEqual(['b']);
    expect(passing({ tag: { $ne: 'work' } })).toEqual(['b', 'd', 'e']);
    expect(passing({ tags: 'y' })).toEqual(['a']);
    expect(passing({ draft: null })).toEqual(['c']);
    expect(passing({ flag: false })).toEqual(['c']);
    expect(passing({})).toEqual(['a', 'b', 'c', 'd', 'e']);
  });

  it('$in and $nin (a missing field is in no list)', () => {
    expect(passing({ tag: { $in: ['home', 'legal'] } })).toEqual(['b', 'e']);
    expect(passing({ tag: { $nin: ['home', 'legal'] } })).toEqual(['a', 'c', 'd']);
    expect(passing({ tags: { $in: ['x'] } })).toEqual(['a']);
    expect(passing({ tags: { $nin: ['x'] } })).toEqual(['b', 'c', 'd', 'e']);
  });

  it('numeric ranges never match strings; several operators on one path all apply', () => {
    expect(passing({ year: { $gte: 2021 } })).toEqual(['a', 'c']);
    expect(passing({ year: { $gt: 2019, $lt: 2024 } })).toEqual(['c']);
    expect(passing({ year: { $lte: 2019 } })).toEqual(['b']);
  });

  it('ISO date ranges compare instants; non-dates never match', () => {
    expect(passing({ date: { $gte: '2020-01-01' } })).toEqual(['a']);
    expect(passing({ date: { $lt: '2020-01-01T00:00:00Z' } })).toEqual(['b']);
    expect(passing({ date: { $gt: '2019-12-31T22:00:00+00:00', $lt: '2019-12-31T23:30:00Z' } })).toEqual(['b']);
    expect(compileFilter({ when: { $gte: '2024-01-01' } })({ when: new Date('2024-06-01') })).toBe(true);
  });

  it('$exists, dotted paths, $and/$or/$not', () => {
    expect(passing({ flag: { $exists: true } })).toEqual(['c']);
    expect(passing({ 'author.name': { $exists: false } })).toEqual(['c', 'd', 'e']);
    expect(passing({ 'author.name': 'Ada' })).toEqual(['a']);
    expect(passing({ 'author.age': { $gt: 30 } })).toEqual(['a']);
    expect(passing({ $or: [{ tag: 'home' }, { year: { $gt: 2022 } }] })).toEqual(['a', 'b']);
    expect(passing({ $and: [{ tag: 'work' }, { $not: { year: 2024 } }] })).toEqual(['c']);
    expect(passing({ tag: 'work', year: 2024 })).toEqual(['a']);
    expect(passing({ $not: { tag: 'work' } })).toEqual(['b', 'd', 'e']);
  });

  it.each<[unknown, string, RegExp]>([
    ['tag', '', /must be an object/],
    [[{ tag: 'a' }], '', /an array/],
    [{ tag: { $regex: 'a' } }, 'tag.$regex', /unknown operator \$regex/],
    [{ $where: 'x' }, '$where', /unknown operator/],
    [{ author: { name: 'Ada' } }, 'author.name', /dotted path \("author\.name"\)/],
    [{ tag: ['a', 'b'] }, 'tag', /use \$in/],
    [{ tag: { $in: 'work' } }, 'tag.$in', /takes an array/],
    [{ tag: { $in: ['work', { x: 1 }] } }, 'tag.$in[1]', /values must be/],
    [{ year: { $gt: 'soon' } }, 'year.$gt', /ISO 8601/],
    [{ year: { $lt: Number.NaN } }, 'year.$lt', /ISO 8601/],
    [{ flag: { $exists: 1 } }, 'flag.$exists', /true or false/],
    [{ $or: [] }, '$or', /non-empty array/],
    [{ $and: [{ tag: 'a' }, { year: { $gte: [] } }] }, '$and[1].year.$gte', /finite number/],
    [{ $not: { $or: [{ 'a..b': 1 }] } }, '$not.$or[0].a..b', /empty step/],
    [{ tag: {} }, 'tag', /empty operator object/],
    [{ tag: undefined }, 'tag', /equality/],
  ])('rejects %j with INVALID_FILTER at %s', async (filter, path, message) => {
    const err = await expectCode(Promise.resolve().then(() => compileFilter(filter)), 'INVALID_FILTER');
    expect(err.details).toEqual({ path });
    expect(err.message).toMatch(message);
    if (path) expect(err.message).toContain(path);
  });
});

describe('filtered scoring equals scoring everything, then filtering', () => {
  it('CPU scorer, memory store: 120 random filters over random metadata, with deletions', async () => {
    const next = mulberry32(1313);
    const dim = 32;
    const store = new MemoryStore({ precision: 'fp32' });
    const metadata = new Map<string, Metadata | undefined>();
    const items = Array.from({ length: 600 }, (_, i) => {
      const id = `d${String(i).padStart(3, '0')}`;
      const m = randomMetadata(next);
      metadata.set(id, m);
      return m === undefined ? { id, matrix: randomMatrix(1 + (i % 40), dim, next) } : { id, matrix: randomMatrix(1 + (i % 40), dim, next), metadata: m };
    });
    await store.put(items);
    await store.delete(['d001', 'd100', 'd599']);
    for (const id of ['d001', 'd100', 'd599']) metadata.delete(id);
    const scorer = new CpuScorer(undefined);
    let nonTrivial = 0;
    for (let round = 0; round < 120; round++) {
      const filter = randomFilter(next, 3);
      const predicate = compileFilter(filter);
      const allowed = allowedIds(predicate, await store.allMetadata());
      expect(allowed.size).toBe([...metadata].filter(([, m]) => predicate(m)).length);
      if (allowed.size > 0 && allowed.size < metadata.size) nonTrivial++;
      const query = randomMatrix(8, dim, next);
      const k = 1 + Math.floor(next() * 30);
      const everything = await scorer.rank(query, () => store.shards(), metadata.size);
      const expected = everything.filter((h) => predicate(metadata.get(h.id))).slice(0, k);
      const filtered = await scorer.rank(query, () => store.shards(), k, allowed);
      expect(filtered, `round ${round}: ${JSON.stringify(filter)}`).toEqual(expected);
      expect(filtered.length).toBe(Math.min(k, allowed.size));
    }
    expect(nonTrivial).toBeGreaterThan(60);
  });
});

describe.skipIf(!HAVE_SHARED)(`filters through the public API ${HAVE_SHARED ? '' : SHARED_MISSING}`, () => {
  const searches: ColbertSearch[] = [];
  afterAll(async () => Promise.all(searches.map((s) => s.close())));

  it.each(['memory', 'indexeddb'] as const)('%s: search, searchEmbedding and explain honour filters; k hits when k match', { timeout: 120_000 }, async (storage) => {
    const models = await makeTestModels(resolve(REPO_ROOT, '.cache/test-models'), TOKENIZER_DIR);
    const search = await createSearch({ model: models.tjs, worker: false, storage, ...(storage === 'indexeddb' ? { name: `filter-${Date.now()}` } : {}) });
    searches.push(search);
    const next = mulberry32(77);
    const words = ['wing', 'flow', 'shock', 'boundary', 'layer', 'heat', 'pressure', 'plate', 'cone', 'jet'];
    const metadata = new Map<string, Metadata | undefined>();
    const input = Array.from({ length: 150 }, (_, i) => {
      const id = `doc${i}`;
      const m = randomMetadata(next);
      metadata.set(id, m);
      const text = Array.from({ length: 6 + (i % 9) }, () => words[Math.floor(next() * words.length)]).join(' ');
      return m === undefined ? { id, text } : { id, text, metadata: m };
    });
    await search.add(input);
    for (let round = 0; round < 25; round++) {
      const filter: Filter = randomFilter(next, 2);
      const predicate = compileFilter(filter);
      const q = `${words[round % words.length]} ${words[(round * 3 + 1) % words.length]}`;
      const all = await search.search(q, { k: 150 });
      const k = 1 + (round % 12);
      const expected = all.filter((h) => predicate(metadata.get(h.id))).slice(0, k);
      const hits = await search.search(q, { k, filter });
      expect(hits, JSON.stringify(filter)).toEqual(expected);
      const matrix = await search.encodeQuery(q);
      expect(await search.searchEmbedding(matrix, { k, filter })).toEqual(expected);
    }
    const none = await search.search('wing', { k: 5, filter: { tag: 'no such tag' } });
    expect(none).toEqual([]);
    const work = await search.search('wing', { k: 200, filter: { tag: 'work' } });
    expect(work.length).toBe([...metadata.values()].filter((m) => m?.['tag'] === 'work').length);
    const ex = await search.explain('wing', { id: work[0]!.id }, { filter: { tag: 'work' } });
    expect(ex.matchesFilter).toBe(true);
    expect((await search.explain('wing', { id: work[0]!.id }, { filter: { tag: { $ne: 'work' } } })).matchesFilter).toBe(false);
    expect((await search.explain('wing', { id: work[0]!.id })).matchesFilter).toBeUndefined();
    expect(await codeOf(search.search('wing', { filter: { year: { $gt: 'x' } } }))).toBe('INVALID_FILTER');
    expect(await codeOf(search.searchEmbedding(await search.encodeQuery('wing'), { filter: 'tag' as never }))).toBe('INVALID_FILTER');
    expect(await codeOf(search.explain('wing', { id: 'doc1' }, { filter: { $bad: 1 } as never }))).toBe('INVALID_FILTER');
  });
});
