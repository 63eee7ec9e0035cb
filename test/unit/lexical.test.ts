/**
 * The lexical index: words (segmentation, folding, stemming, stop words), BM25 against a direct
 * computation, the memory and IndexedDB stores agreeing through add / replace / delete / clear /
 * import, the schema 1 -> 2 migration that builds postings from stored texts, fusion, and explain.
 */
import 'fake-indexeddb/auto';
import { afterAll, describe, expect, it } from 'vitest';
import { resolve } from 'node:path';
import { deleteDB, openDB } from 'idb';
import { analyze, resolveLexicalConfig } from '../../src/lexical/analyze.ts';
import { fuse, idf, rankBm25, termScore, type LexicalPostings } from '../../src/lexical/bm25.ts';
import { createSearch, type ColbertSearch } from '../../src/index.ts';
import { IdbStore } from '../../src/store/idb.ts';
import { MemoryStore } from '../../src/store/memory.ts';
import type { VectorStore } from '../../src/store/types.ts';
import { makeTestModels } from '../fixtures/make-models.ts';
import { codeOf } from '../support/errors.ts';
import { mulberry32 } from '../support/rng.ts';
import { randomMatrix } from '../support/shards.ts';
import { HAVE_SHARED, REPO_ROOT, SHARED_MISSING, TOKENIZER_DIR } from '../support/shared.ts';
import { FINGERPRINT } from '../support/store.ts';
import { legacySegmentRecords } from '../support/legacy-index.ts';

const EN = resolveLexicalConfig(undefined);

describe('analyze', () => {
  it('segments words, folds case and accents, stems English and drops its stop words', () => {
    expect(analyze('The WARRANTY of the Café is NOT void; flows, flowing and flowed.', EN)).toEqual(['warranti', 'cafe', 'void', 'flow', 'flow', 'flow']);
    expect(analyze("Ada's naïve résumé, don't", EN)).toEqual(['ada', 'naiv', 'resum', 'dont']);
    expect(analyze('part X-42b and 3.5 mm', EN)).toEqual(['part', 'x', '42b', '3.5', 'mm']);
  });

  it('English without stemming or stop words; other languages folded only', () => {
    expect(analyze('The flows', resolveLexicalConfig({ stemming: false, stopWords: false }))).toEqual(['the', 'flows']);
    const fr = resolveLexicalConfig({ language: 'fr' });
    expect(fr).toEqual({ language: 'fr', stemming: false, stopWords: false });
    expect(analyze("L'ÉCOLE des élèves", fr)).toEqual(["l'ecole", 'des', 'eleves']);
    expect(analyze('東京都に住む', resolveLexicalConfig({ language: 'ja' })).length).toBeGreaterThan(1);
  });

  it('rejects bad options with INVALID_ARGUMENT', async () => {
    expect(await codeOf(() => resolveLexicalConfig({ language: 'not a tag!' }))).toBe('INVALID_ARGUMENT');
    expect(await codeOf(() => resolveLexicalConfig({ stemming: 'yes' }))).toBe('INVALID_ARGUMENT');
    expect(await codeOf(() => resolveLexicalConfig('en'))).toBe('INVALID_ARGUMENT');
  });
});

describe('BM25 and fusion', () => {
  it('rankBm25 equals the formula computed directly, and honours allowed', () => {
    const docs: Record<string, string[]> = { a: ['wing', 'flow', 'flow'], b: ['flow'], c: ['wing', 'heat', 'heat', 'heat', 'plate'], d: ['cone'] };
    const lists = new Map<string, { id: string; tf: number; length: number }[]>();
    for (const term of ['wing', 'flow', 'missing']) {
      lists.set(term, Object.entries(docs).flatMap(([id, t]) => (t.includes(term) ? [{ id, tf: t.filter((x) => x === term).length, length: t.length }] : [])));
    }
    const postings: LexicalPostings = { documents: 4, totalLength: 3 + 1 + 5 + 1, lists };
    const avg = 10 / 4;
    const direct = (id: string) =>
      ['wing', 'flow'].reduce((sum, term) => {
        const tf = docs[id]!.filter((x) => x === term).length;
        if (!tf) return sum;
        const df = Object.values(docs).filter((t) => t.includes(term)).length;
        const norm = tf + 1.2 * (1 - 0.75 + (0.75 * docs[id]!.length) / avg);
        return sum + (Math.log(1 + (4 - df + 0.5) / (df + 0.5)) * tf * 2.2) / norm;
      }, 0);
    const ranked = rankBm25(['wing', 'flow', 'wing', 'missing'], postings, 10);
    expect(ranked.map((h) => h.id)).toEqual(['a', 'b', 'c']);
    for (const h of ranked) expect(h.score).toBeCloseTo(direct(h.id), 12);
    expect(rankBm25(['wing', 'flow'], postings, 10, new Set(['c', 'd'])).map((h) => h.id)).toEqual(['c']);
    expect(idf(4, 2)).toBeCloseTo(Math.log(1 + 2.5 / 2.5), 12);
    expect(termScore(1, 2.5, 2.5, 4, 2)).toBeCloseTo(idf(4, 2), 12);
  });

  it('RRF (k = 60) and min-max relative fusion with alpha', () => {
    const semantic = [
      { id: 'a', score: 30 },
      { id: 'b', score: 20 },
      { id: 'c', score: 10 },
    ];
    const lexical = [
      { id: 'c', score: 9 },
      { id: 'd', score: 3 },
      { id: 'a', score: 1 },
    ];
    const rrf = fuse(semantic, lexical, 4, 'rrf', 0.75);
    const expected: Record<string, number> = { a: 1 / 61 + 1 / 63, b: 1 / 62, c: 1 / 63 + 1 / 61, d: 1 / 62 };
    expect(rrf.map((h) => h.id)).toEqual(['a', 'c', 'b', 'd']);
    for (const h of rrf) expect(h.score).toBeCloseTo(expected[h.id]!, 12);
    expect(rrf[0]).toMatchObject({ semantic: 30, lexical: 1 });
    expect(rrf.find((h) => h.id === 'd')!.semantic).toBeUndefined();
    const rel = fuse(semantic, lexical, 4, 'relative', 0.75);
    const relExpected: Record<string, number> = { a: 0.75 * 1 + 0.25 * 0, b: 0.75 * 0.5, c: 0.75 * 0 + 0.25 * 1, d: 0.25 * 0.25 };
    expect(rel.map((h) => h.id)).toEqual(['a', 'b', 'c', 'd']);
    for (const h of rel) expect(h.score).toBeCloseTo(relExpected[h.id]!, 12);
    expect(fuse(semantic, lexical, 4, 'relative', 0).map((h) => h.id)).toEqual(['c', 'd', 'a', 'b']);
  });
});

const WORDS = ['wing', 'flow', 'shock', 'boundary', 'layer', 'heat', 'pressure', 'plate', 'cone', 'jet', 'transfer', 'supersonic'];

function randomText(next: () => number, n: number): string {
  return Array.from({ length: n }, () => WORDS[Math.floor(next() * WORDS.length)]).join(' ');
}

/** Lexical rankings of a few queries (ids and scores rounded), as a comparable value. */
async function lexicalView(store: VectorStore): Promise<string[][]> {
  const out: string[][] = [];
  for (const q of ['wing flow', 'heat transfer plate', 'shock', 'supersonic cone jet layer']) {
    const terms = analyze(q, store.lexical);
    out.push(rankBm25(terms, await store.postings(terms), 50).map((h) => `${h.id}:${h.score.toFixed(9)}`));
  }
  return out;
}

describe('the stores keep the lexical index in step with the vectors', () => {
  it('memory and IndexedDB agree through add, replace, embeddings-only replace, delete, import and clear', async () => {
    const next = mulberry32(5);
    const dim = FINGERPRINT.dim;
    const mem = new MemoryStore({ fingerprint: FINGERPRINT });
    const idb = await IdbStore.open({ name: `lex-steps-${Date.now()}`, fingerprint: FINGERPRINT });
    const stores: VectorStore[] = [mem, idb];
    const batch = (from: number, to: number) => Array.from({ length: to - from }, (_, j) => ({ id: `d${from + j}`, hash: `h${from + j}-${Math.floor(next() * 1e6)}`, text: randomText(next, 3 + Math.floor(next() * 20)), matrix: randomMatrix(4, dim, next) }));
    const steps: [string, (s: VectorStore) => Promise<unknown>][] = [];
    const b1 = batch(0, 40);
    const b2 = batch(20, 60); // replaces d20..d39
    const emb = { id: 'd5', matrix: randomMatrix(3, dim, next) };
    steps.push(['add', (s) => s.commit(b1)]);
    steps.push(['replace', (s) => s.commit(b2)]);
    steps.push(['embeddings-only replace', (s) => s.put([emb])]);
    steps.push(['delete', (s) => s.delete(['d1', 'd22', 'd59'])]);
    const views: string[][][][] = [];
    for (const [name, step] of steps) {
      const round: string[][][] = [];
      for (const s of stores) {
        await step(s);
        round.push(await lexicalView(s));
      }
      expect(round[1], name).toEqual(round[0]);
      views.push(round);
    }
    expect((await mem.lexicalStats()).documents).toBe(60 - 3 - 1);
    expect((await idb.lexicalStats()).documents).toBe(60 - 3 - 1);
    // The deleted and the embeddings-only documents are in no list.
    const everything = analyze(WORDS.join(' '), EN);
    for (const s of stores) {
      const ids = new Set([...(await s.postings(everything)).lists.values()].flat().map((p) => p.id));
      expect(ids.has('d1') || ids.has('d22') || ids.has('d59') || ids.has('d5'), 'stale postings').toBe(false);
      expect(ids.size).toBe(56);
    }
    // Import into a fresh IndexedDB index rebuilds the postings from the file's texts.
    const snapshot = await mem.snapshot();
    const imported = await IdbStore.open({ name: `lex-import-${Date.now()}`, fingerprint: FINGERPRINT });
    await imported.commit(batch(100, 110));
    await imported.restore(snapshot);
    expect(await lexicalView(imported)).toEqual(views.at(-1)![0]);
    // Reopening reads the same postings from disk.
    await idb.close();
    const reopened = await IdbStore.open({ name: idb.name, fingerprint: FINGERPRINT });
    expect(await lexicalView(reopened)).toEqual(views.at(-1)![0]);
    for (const s of [mem, reopened, imported]) {
      await s.clear();
      expect(await lexicalView(s)).toEqual([[], [], [], []]);
      expect((await s.lexicalStats()).documents).toBe(0);
    }
    await Promise.all([mem.close(), reopened.close(), imported.close()]);
  });

  it('an index of schema 1 (no postings) opens migrated: postings built from its stored texts', async () => {
    const name = `lex-migrate-${Date.now()}`;
    const next = mulberry32(9);
    const docs = Array.from({ length: 30 }, (_, i) => ({ id: `m${i}`, hash: `h${i}`, text: randomText(next, 5 + i), matrix: randomMatrix(3, FINGERPRINT.dim, next) }));
    // Build with today's store, then rewrite the database as schema 1 had it.
    const store = await IdbStore.open({ name, fingerprint: FINGERPRINT });
    await store.commit(docs);
    const expected = await lexicalView(store);
    await store.close();
    const dbName = `colbert-web:${name}`;
    const v2 = await openDB(dbName);
    const dump: Record<string, { keys: IDBValidKey[]; values: unknown[] }> = {};
    for (const s of ['manifest', 'docs', 'texts', 'staging']) dump[s] = { keys: await v2.getAllKeys(s), values: await v2.getAll(s) };
    // Rows as schema 1 stored them: one `vectors` record per segment.
    const legacy = await legacySegmentRecords(v2);
    dump['segments'] = { keys: legacy.segments.map((m) => m.segment), values: legacy.segments };
    dump['vectors'] = { keys: legacy.vectors.map((d) => d.segment), values: legacy.vectors };
    v2.close();
    await deleteDB(dbName);
    const v1 = await openDB(dbName, 1, { upgrade: (db) => Object.keys(dump).forEach((s) => db.createObjectStore(s)) });
    for (const [s, { keys, values }] of Object.entries(dump)) {
      for (let i = 0; i < keys.length; i++) {
        let value = values[i] as Record<string, unknown>;
        if (s === 'docs') value = Object.fromEntries(Object.entries(value).filter(([k]) => k !== 'lex'));
        if (s === 'manifest') value = Object.fromEntries(Object.entries(value).filter(([k]) => k !== 'lexical'));
        await v1.put(s, value, keys[i]);
      }
    }
    v1.close();
    const migrated = await IdbStore.open({ name, fingerprint: FINGERPRINT });
    expect(await lexicalView(migrated)).toEqual(expected);
    expect((await migrated.lexicalStats()).documents).toBe(30);
    expect(migrated.lexical).toEqual(EN);
    // Writes after the migration keep working and never collide with the migrated block.
    await migrated.commit([{ id: 'm0', hash: 'new', text: 'supersonic supersonic supersonic', matrix: randomMatrix(3, FINGERPRINT.dim, next) }]);
    const terms = analyze('supersonic', EN);
    const list = (await migrated.postings(terms)).lists.get(terms[0]!)!;
    expect(list.filter((p) => p.id === 'm0')).toEqual([{ id: 'm0', tf: 3, length: 3 }]);
    await migrated.close();
  });

  it('an index keeps its lexical settings; other explicit ones are refused', async () => {
    const name = `lex-config-${Date.now()}`;
    const fr = await IdbStore.open({ name, fingerprint: FINGERPRINT, lexical: { language: 'fr' } });
    await fr.close();
    const again = await IdbStore.open({ name, fingerprint: FINGERPRINT });
    expect(again.lexical.language).toBe('fr');
    await again.close();
    expect(await codeOf(IdbStore.open({ name, fingerprint: FINGERPRINT, lexical: { language: 'en' } }))).toBe('INVALID_ARGUMENT');
  });
});

describe.skipIf(!HAVE_SHARED)(`lexical and hybrid search through the public API ${HAVE_SHARED ? '' : SHARED_MISSING}`, () => {
  let search: ColbertSearch | undefined;
  afterAll(async () => search?.close());

  it('modes, filters, hybrid scores, explain with BM25 terms, and option errors', { timeout: 120_000 }, async () => {
    const models = await makeTestModels(resolve(REPO_ROOT, '.cache/test-models'), TOKENIZER_DIR);
    search = await createSearch({ model: models.tjs, worker: false });
    await search.add([
      { id: 'gpl', text: 'This program is distributed WITHOUT ANY WARRANTY; without even the implied warranty.', metadata: { kind: 'license' } },
      { id: 'mit', text: 'The software is provided as is, without warranty of any kind.', metadata: { kind: 'license' } },
      { id: 'wing', text: 'Supersonic flow over a swept wing.', metadata: { kind: 'paper' } },
      { id: 'heat', text: 'Heat transfer in a boundary layer on a flat plate.', metadata: { kind: 'paper' } },
    ]);
    await search.addEmbeddings([{ id: 'vec', embedding: await search.encodeQuery('warranty disclaimer').then((m) => ({ ...m })) }]);
    const lexical = await search.search('warranty disclaimer', { mode: 'lexical', k: 10 });
    expect(lexical.map((h) => h.id)).toEqual(['gpl', 'mit']);
    expect(lexical[0]!.metadata).toEqual({ kind: 'license' });
    expect(await search.search('warranty', { mode: 'lexical', filter: { kind: 'paper' } })).toEqual([]);
    expect(await search.search('the of and', { mode: 'lexical' })).toEqual([]);
    const hybrid = await search.search('warranty disclaimer', { mode: 'hybrid', k: 5 });
    expect(hybrid.length).toBe(5);
    expect(hybrid.find((h) => h.id === 'gpl')!.scores!.lexical).toBeCloseTo(lexical[0]!.score, 9);
    const semantic = await search.search('warranty disclaimer', { k: 5 });
    for (const h of hybrid) if (h.scores?.semantic !== undefined) expect(h.scores.semantic).toBeCloseTo(semantic.find((s) => s.id === h.id)!.score, 4);
    // alpha 0: lexical only (min-max puts the lowest lexical hit at 0, level with documents not in the list).
    const lexOnly = await search.search('warranty disclaimer', { mode: 'hybrid', fusion: 'relative', alpha: 0, k: 2 });
    expect(lexOnly[0]).toMatchObject({ id: 'gpl', score: 0 + 1 });
    // alpha 1: the semantic order.
    const semOnly = await search.search('warranty disclaimer', { mode: 'hybrid', fusion: 'relative', alpha: 1, k: 5 });
    expect(semOnly.map((h) => h.id)).toEqual(semantic.map((h) => h.id));
    const ex = await search.explain('warranty disclaimer', { id: 'gpl' });
    expect(ex.lexical!.queryTerms).toEqual(['warranti', 'disclaim']);
    expect(ex.lexical!.terms).toEqual([expect.objectContaining({ term: 'warranti', tf: 2, df: 2 })]);
    expect(ex.lexical!.score).toBeCloseTo(lexical[0]!.score, 9);
    const exText = await search.explain('warranty disclaimer', { text: 'No warranty, no disclaimer.' });
    expect(exText.lexical!.terms.map((t) => t.term)).toEqual(['warranti', 'disclaim']);
    expect((await search.explain('warranty', { id: 'vec' })).lexical!.terms).toEqual([]);
    expect((await search.stats()).lexicalDocuments).toBe(4);
    expect(await codeOf(search.search('x', { mode: 'fuzzy' as never }))).toBe('INVALID_ARGUMENT');
    expect(await codeOf(search.search('x', { mode: 'hybrid', fusion: 'dbsf' as never }))).toBe('INVALID_ARGUMENT');
    expect(await codeOf(search.search('x', { mode: 'hybrid', alpha: 2 }))).toBe('INVALID_ARGUMENT');
    expect(await codeOf(search.searchEmbedding(await search.encodeQuery('x'), { mode: 'lexical' }))).toBe('INVALID_ARGUMENT');
    expect(await codeOf(search.search('  ', { mode: 'lexical' }))).toBe('EMPTY_TEXT');
  });
});
