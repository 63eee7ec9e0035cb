/**
 * The synthetic clustered collection (test/fixtures/clustered.ts): deterministic by seed, streamed
 * in batches that agree with single documents, shaped as asked (lengths, unit rows, centre ids),
 * clustered as documented, and its queries' known source documents are what MaxSim finds.
 */
import { describe, expect, it } from 'vitest';
import { maxSim } from '../../src/score/cpu.ts';
import { clusteredCollection, type ClusteredCollection } from '../fixtures/clustered.ts';
import type { EmbeddingInput } from '../../src/types.ts';
import { createSearch } from '../../src/index.ts';
import { makeTestModels } from '../fixtures/make-models.ts';
import { HAVE_SHARED, REPO_ROOT, SHARED_MISSING, TOKENIZER_DIR } from '../support/shared.ts';
import { resolve } from 'node:path';

/** FNV-1a over the bytes of every document's vectors and ids. */
function digest(batches: Iterable<EmbeddingInput[]>): string {
  let h = 0x811c9dc5;
  const mix = (bytes: Uint8Array): void => {
    for (let i = 0; i < bytes.length; i++) h = Math.imul(h ^ bytes[i]!, 0x01000193);
  };
  for (const batch of batches) {
    for (const d of batch) {
      mix(new TextEncoder().encode(d.id));
      mix(new Uint8Array(d.embedding.data.buffer, d.embedding.data.byteOffset, d.embedding.data.byteLength));
      mix(new Uint8Array(d.embedding.ids.buffer, d.embedding.ids.byteOffset, d.embedding.ids.byteLength));
    }
  }
  return (h >>> 0).toString(16);
}

const dot = (a: Float32Array, b: Float32Array): number => a.reduce((s, x, i) => s + x * b[i]!, 0);
const rowOf = (d: EmbeddingInput, i: number): Float32Array => d.embedding.data.subarray(i * d.embedding.dim, (i + 1) * d.embedding.dim);

describe('clustered synthetic collection', () => {
  const c: ClusteredCollection = clusteredCollection(50_000, { seed: 3 });
  const docs = [...c.batches(100)].flat();

  it('is deterministic by seed, and the seed matters', () => {
    const again = clusteredCollection(50_000, { seed: 3 });
    expect(again.documents).toBe(c.documents);
    expect(digest(again.batches(37))).toBe(digest(c.batches(100)));
    expect(digest(clusteredCollection(50_000, { seed: 4 }).batches())).not.toBe(digest(c.batches()));
    expect(again.queries(5).map((q) => [q.source, [...q.embedding.data.slice(0, 4)]])).toEqual(c.queries(5).map((q) => [q.source, [...q.embedding.data.slice(0, 4)]]));
  });

  it('streams whole documents in order, in batches of the asked size, each document its own buffer', () => {
    const sizes = [...c.batches(64)].map((b) => b.length);
    expect(sizes.slice(0, -1).every((n) => n === 64)).toBe(true);
    expect(sizes.reduce((a, b) => a + b, 0)).toBe(c.documents);
    expect(docs.map((d) => d.id)).toEqual(Array.from({ length: c.documents }, (_, i) => `c${i}`));
    expect(docs[5]!.embedding.data.buffer).not.toBe(docs[6]!.embedding.data.buffer);
    const slice = [...c.batches(10, 20, 45)].flat();
    expect(slice.map((d) => d.id)).toEqual(Array.from({ length: 25 }, (_, i) => `c${20 + i}`));
    expect(digest([slice])).toBe(digest([docs.slice(20, 45)]));
    expect(digest([[c.document(7)]])).toBe(digest([[docs[7]!]]));
    expect(() => c.document(c.documents)).toThrow(/no document/);
  });

  it('has the asked shape: total tokens, 64-256 tokens a document, unit rows of dim 128, centre ids', () => {
    const total = docs.reduce((s, d) => s + d.embedding.tokens, 0);
    expect(total).toBe(c.tokens);
    expect(c.tokens).toBeGreaterThanOrEqual(50_000);
    expect(c.tokens - docs.at(-1)!.embedding.tokens).toBeLessThan(50_000);
    const lengths = docs.map((d) => d.embedding.tokens);
    expect(Math.min(...lengths)).toBeGreaterThanOrEqual(64);
    expect(Math.max(...lengths)).toBeLessThanOrEqual(256);
    expect(Math.max(...lengths) - Math.min(...lengths)).toBeGreaterThan(150);
    docs.forEach((d, i) => expect(d.embedding.tokens).toBe(c.length(i)));
    for (const d of docs.slice(0, 20)) {
      expect(d.embedding.dim).toBe(128);
      expect(d.embedding.data.length).toBe(d.embedding.tokens * 128);
      expect(d.embedding.ids.length).toBe(d.embedding.tokens);
      for (let i = 0; i < d.embedding.tokens; i++) {
        expect(Math.hypot(...rowOf(d, i))).toBeCloseTo(1, 5);
        expect(d.embedding.ids[i]).toBeGreaterThanOrEqual(0);
        expect(d.embedding.ids[i]).toBeLessThan(4096);
      }
    }
  });

  it('clusters: tokens of one centre are close, of different centres far; topics share centres', () => {
    // Pair tokens across documents: same centre id vs different centre ids.
    const same: number[] = [];
    const other: number[] = [];
    for (let a = 0; a < 40; a++) {
      const da = docs[a]!;
      const db = docs[a + 40]!;
      for (let i = 0; i < da.embedding.tokens; i += 3) {
        for (let j = 0; j < db.embedding.tokens; j += 3) {
          const s = dot(rowOf(da, i), rowOf(db, j));
          (da.embedding.ids[i] === db.embedding.ids[j] ? same : other).push(s);
        }
      }
    }
    const mean = (xs: number[]): number => xs.reduce((s, x) => s + x, 0) / xs.length;
    expect(same.length).toBeGreaterThan(100);
    // Two tokens around one centre: cosine about 1 / (1 + spread²) = 0.67.
    expect(mean(same)).toBeGreaterThan(0.6);
    expect(mean(same)).toBeLessThan(0.75);
    // Unrelated tokens: a small positive cosine (the shared direction), far below the same-centre one.
    expect(mean(other)).toBeGreaterThan(0.02);
    expect(mean(other)).toBeLessThan(0.25);
    console.log(`[clustered] cosine, same centre ${mean(same).toFixed(3)} (${same.length} pairs), other ${mean(other).toFixed(3)}`);
    // Documents of one primary topic share far more centres than documents of different topics.
    const centreSet = (d: EmbeddingInput): Set<number> => new Set(d.embedding.ids);
    const jaccard = (x: Set<number>, y: Set<number>): number => [...x].filter((v) => y.has(v)).length / new Set([...x, ...y]).size;
    const sameTopic: number[] = [];
    const otherTopic: number[] = [];
    for (let a = 0; a < 150; a++) {
      for (let b = a + 1; b < 150; b++) {
        const [ta, sa] = c.topicsOf(a);
        const [tb, sb] = c.topicsOf(b);
        if (sa !== -1 || sb !== -1) continue;
        (ta === tb ? sameTopic : otherTopic).push(jaccard(centreSet(docs[a]!), centreSet(docs[b]!)));
      }
    }
    expect(sameTopic.length).toBeGreaterThan(3);
    console.log(`[clustered] centre Jaccard, same topic ${mean(sameTopic).toFixed(3)} (${sameTopic.length}), other ${mean(otherTopic).toFixed(3)}`);
    expect(mean(sameTopic)).toBeGreaterThan(3 * mean(otherTopic));
  });

  it('queries are found by MaxSim at their source document', () => {
    const queries = c.queries(10);
    let first = 0;
    for (const q of queries) {
      expect(q.embedding.tokens).toBeGreaterThanOrEqual(8);
      expect(q.embedding.tokens).toBeLessThanOrEqual(32);
      expect(q.relevant.get(q.source)).toBe(1);
      const source = c.document(Number(q.source.slice(1)));
      // Every query token's centre occurs in the source, but no query row is a copy of a document row.
      for (const id of q.embedding.ids) expect(source.embedding.ids).toContain(id);
      expect(dot(rowOf({ id: q.id, embedding: q.embedding }, 0), rowOf(source, source.embedding.ids.indexOf(q.embedding.ids[0]!)))).toBeLessThan(0.99);
      const ranked = docs.map((d) => ({ id: d.id, s: maxSim(q.embedding, d.embedding) })).sort((a, b) => b.s - a.s);
      if (ranked[0]!.id === q.source) first++;
      expect(ranked.slice(0, 10).map((r) => r.id)).toContain(q.source);
    }
    expect(first).toBeGreaterThanOrEqual(8);
  });
});

describe.skipIf(!HAVE_SHARED)(`clustered collection through addEmbeddings ${HAVE_SHARED ? '' : SHARED_MISSING}`, () => {
  it('indexes batch by batch and searchEmbedding ranks each query\'s source first', async () => {
    const models = await makeTestModels(resolve(REPO_ROOT, '.cache/test-models'), TOKENIZER_DIR);
    // The model only has to load; every vector here comes from the generator.
    const search = await createSearch({ model: models.tjs, worker: false, storage: 'memory' });
    try {
      const c = clusteredCollection(100_000, { seed: 11 });
      for (const batch of c.batches(200)) await search.addEmbeddings(batch);
      const stats = await search.stats();
      expect(stats.documents).toBe(c.documents);
      expect(stats.tokens).toBe(c.tokens);
      const queries = c.queries(20);
      let first = 0;
      for (const q of queries) {
        const hits = await search.searchEmbedding(q.embedding, { k: 10 });
        if (hits[0]!.id === q.source) first++;
        expect(hits.map((h) => h.id)).toContain(q.source);
      }
      console.log(`[clustered] ${c.documents} documents, ${c.tokens} tokens: source ranked first for ${first}/${queries.length} queries`);
      expect(first).toBeGreaterThanOrEqual(16);
    } finally {
      await search.close();
    }
  }, 300_000);
});
