/**
 * A named compressed index in Debian Chromium whose full-precision rows stay in IndexedDB once
 * its codes serve searches (the default worker, real IndexedDB): `vectorBytes` holds the codes
 * and at most the tail segment's rows; reranked and `exhaustive: true` scores equal those of a
 * memory index holding the same documents; a reload, a replaced and a deleted document whose rows
 * are not held, an export/import and a second tab keep that, and so does a first training in the
 * background (another tab's adds crossed the threshold); a browser killed while an add
 * compacts a segment whose rows are not held leaves the index as it was before the add.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { chromium, expect, test, type Page } from '@playwright/test';
import { chromiumLaunchOptions, harnessUrl, libraryBuildMissing, testHubUrl, testModelsMissing, TEST_HUB_REPO } from '../support/browser.ts';
import { WORD_CLUSTERED_SOURCE, type wordClustered as WordClusteredFn } from '../support/word-clusters.ts';

test.beforeEach(async ({ page }) => {
  const missing = libraryBuildMissing() ?? testModelsMissing();
  test.skip(missing !== null, missing ?? '');
  page.on('pageerror', (err) => console.error(`[page error] ${err.message}`));
  await page.goto(harnessUrl());
});

/** fp16 rows of 128 dimensions, 8192 to a segment. */
const SEGMENT_BYTES = 8192 * 256;

/**
 * Runs `body` in the page with `lib`, `open(name, extra)` (a compressed search, nbits 2, CPU
 * scoring, default worker; `name` null: memory), `clustered(n, seed, prefix)` (word-clustered
 * documents and 8 queries, test/support/word-clusters.ts) and `compare(s, ref, queries)` (exhaustive top 10 of both equal; the
 * compressed top 10's scores equal the exhaustive ones).
 */
async function inPage<T>(page: Page, body: string, arg: unknown = null): Promise<T> {
  return page.evaluate(
    async ({ body, hubUrl, repo, arg, generator }) => {
      const entry = '/dist/index.js';
      const lib = await import(/* @vite-ignore */ entry);
      const open = (name: string | null, extra: Record<string, unknown> = {}) =>
        lib.createSearch({ model: repo, hubUrl, device: 'wasm', scoring: 'cpu', ...(name === null ? { storage: 'memory' } : { name }), compression: { nbits: 2 }, ...extra });
      // The shared generator (test/support/word-clusters.ts), one vocabulary for every seed.
      const wordClustered = new Function(`return ${generator}`)() as typeof WordClusteredFn;
      const clustered = (n: number, seed: number, prefix = 'd') => wordClustered({ docs: n, seed, vocabularySeed: 99, prefix });
      type Hit = { id: string; score: number };
      type S = { searchEmbedding: (q: unknown, o: unknown) => Promise<Hit[]> };
      const compare = async (s: S, ref: S, queries: unknown[]) => {
        let sameExhaustive = true;
        let exhaustiveDiff = 0;
        let overlap = 0;
        let rerankDiff = 0;
        for (const q of queries) {
          const want = await ref.searchEmbedding(q, { k: 10, exhaustive: true });
          const all = await s.searchEmbedding(q, { k: 10, exhaustive: true });
          sameExhaustive &&= all.map((h) => h.id).join() === want.map((h) => h.id).join();
          all.forEach((h, i) => (exhaustiveDiff = Math.max(exhaustiveDiff, Math.abs(h.score - want[i]!.score))));
          const truth = new Map(want.map((h) => [h.id, h.score]));
          for (const h of await s.searchEmbedding(q, { k: 10 })) {
            if (!truth.has(h.id)) continue;
            overlap += 1 / (10 * queries.length);
            rerankDiff = Math.max(rerankDiff, Math.abs(h.score - truth.get(h.id)!));
          }
        }
        return { sameExhaustive, exhaustiveDiff, overlap, rerankDiff };
      };
      const fn = new Function('lib', 'open', 'clustered', 'compare', 'arg', `return (async () => { ${body} })();`);
      return fn(lib, open, clustered, compare, arg);
    },
    { body, hubUrl: testHubUrl(), repo: TEST_HUB_REPO, arg, generator: WORD_CLUSTERED_SOURCE },
  ) as Promise<T>;
}

type Comparison = { sameExhaustive: boolean; exhaustiveDiff: number; overlap: number; rerankDiff: number };

function expectExact(c: Comparison): void {
  expect(c.sameExhaustive).toBe(true);
  expect(c.exhaustiveDiff).toBeLessThan(1e-5);
  expect(c.overlap).toBeGreaterThanOrEqual(0.9);
  expect(c.rerankDiff).toBeLessThan(1e-5);
}

test('once trained, only the codes and the tail segment stay resident; rerank and exhaustive stay exact through a reload, a replace, a delete, an import and a second tab', async ({ page, context }) => {
  test.setTimeout(300_000);
  const first = await inPage<{ trained: { tokens: number; vectorBytes: number; codeBytes: number; bytesOnDisk: number }; plainBefore: number; cmp: Comparison }>(
    page,
    `
    await lib.deleteIndex('rod');
    const { docs, queries } = clustered(900, 41);
    const s = await open('rod');
    const ref = await open(null);
    await s.addEmbeddings(docs.slice(0, 60));
    const plainBefore = (await s.stats()).vectorBytes;
    for (let i = 60; i < docs.length; i += 210) await s.addEmbeddings(docs.slice(i, i + 210));
    for (let i = 0; i < docs.length; i += 300) await ref.addEmbeddings(docs.slice(i, i + 300));
    const st = await s.stats();
    const out = { trained: { tokens: st.tokens, vectorBytes: st.vectorBytes, codeBytes: st.compression.codeBytes, bytesOnDisk: st.bytesOnDisk }, plainBefore, cmp: await compare(s, ref, queries) };
    await s.close();
    await ref.close();
    return out;
    `,
  );
  // Four segments or more; before training (60 documents) every row was held.
  expect(first.trained.tokens).toBeGreaterThan(4 * 8192);
  expect(first.plainBefore).toBeGreaterThan(60 * 24 * 256 - 1);
  expect(first.trained.vectorBytes - first.trained.codeBytes).toBeLessThanOrEqual(SEGMENT_BYTES);
  expect(first.trained.bytesOnDisk).toBeGreaterThan(first.trained.tokens * (256 + 34));
  expectExact(first.cmp);

  await page.reload();
  const second = await inPage<{ resident: number; trainings: number; cmp: Comparison; replacedTop: string[]; gone: boolean; imported: Comparison; importedResident: number }>(
    page,
    `
    const { docs, queries } = clustered(900, 41);
    const s = await open('rod');
    const st = await s.stats();
    const ref = await open(null);
    for (let i = 0; i < docs.length; i += 300) await ref.addEmbeddings(docs.slice(i, i + 300));
    // d3's rows are in the first segment: never the tail. It takes d800's vectors; d10 .. d149 go.
    const twin = { id: 'd3', embedding: docs[800].embedding };
    await s.addEmbeddings([twin]);
    await ref.addEmbeddings([twin]);
    const replacedTop = (await s.searchEmbedding(docs[800].embedding, { k: 2 })).map((h) => h.id).sort();
    const gone = docs.slice(10, 150).map((d) => d.id);
    await s.delete(gone);
    await ref.delete(gone);
    let stillGone = true;
    for (const q of queries) for (const h of await s.searchEmbedding(q, { k: 50 })) stillGone &&= !gone.includes(h.id);
    const cmp = await compare(s, ref, queries);
    const file = await s.exportIndex();
    const into = await open('rod-into');
    await into.importIndex(file);
    const ist = await into.stats();
    const imported = await compare(into, ref, queries);
    await into.close();
    await lib.deleteIndex('rod-into');
    await ref.close();
    globalThis.s = s;
    return { resident: st.vectorBytes - st.compression.codeBytes, trainings: st.compression.trainings, cmp, replacedTop, gone: stillGone, imported, importedResident: ist.vectorBytes - ist.compression.codeBytes };
    `,
  );
  expect(second.trainings).toBe(0);
  expect(second.resident).toBeLessThanOrEqual(SEGMENT_BYTES);
  expect(second.replacedTop).toEqual(['d3', 'd800']);
  expect(second.gone).toBe(true);
  expectExact(second.cmp);
  expectExact(second.imported);
  expect(second.importedResident).toBeLessThanOrEqual(SEGMENT_BYTES);

  // A second tab opens the same index without holding its rows, and sees this tab's next add.
  const other = await context.newPage();
  await other.goto(harnessUrl());
  const seen = await inPage<{ resident: number; top: string }>(
    other,
    `
    const s = await open('rod');
    const st = await s.stats();
    globalThis.s = s;
    return { resident: st.vectorBytes - st.compression.codeBytes, top: '' };
    `,
  );
  expect(seen.resident).toBeLessThanOrEqual(SEGMENT_BYTES);
  await inPage(page, `await globalThis.s.addEmbeddings(clustered(5, 77, 'late').docs);`);
  const after = await inPage<{ top: string; documents: number }>(
    other,
    `
    const d = clustered(5, 77, 'late').docs[2].embedding;
    let top = '';
    for (let i = 0; i < 100 && top !== 'late2'; i++) {
      top = (await globalThis.s.searchEmbedding(d, { k: 1 }))[0].id;
      if (top !== 'late2') await new Promise((r) => setTimeout(r, 100));
    }
    const documents = (await globalThis.s.stats()).documents;
    await globalThis.s.close();
    return { top, documents };
    `,
  );
  expect(after).toEqual({ top: 'late2', documents: 900 - 140 + 5 });
  await other.close();
  await inPage(page, `await globalThis.s.close(); await lib.deleteIndex('rod');`);
});

test('a first training in the background (another tab without compression crossed the threshold) puts the rows on demand without another write', async ({ page, context }) => {
  test.setTimeout(300_000);
  await inPage(page, `await lib.deleteIndex('rod-bg'); globalThis.s = await open('rod-bg');`);
  const writer = await context.newPage();
  await writer.goto(harnessUrl());
  // The other tab stores every document without compression: it holds every row.
  const plain = await inPage<{ vectorBytes: number; tokens: number }>(
    writer,
    `
    const w = await open('rod-bg', { compression: undefined });
    const { docs } = clustered(900, 45);
    for (let i = 0; i < docs.length; i += 300) await w.addEmbeddings(docs.slice(i, i + 300));
    const st = await w.stats();
    await w.close();
    return { vectorBytes: st.vectorBytes, tokens: st.tokens };
    `,
  );
  expect(plain.tokens).toBeGreaterThan(4 * 8192);
  expect(plain.vectorBytes).toBe(plain.tokens * 256);
  await writer.close();
  // This tab hears of the writes and trains in the background; nothing writes after.
  const trained = await inPage<{ stats: { state: string; trainings: number }; tokens: number; resident: number; cmp: Comparison }>(
    page,
    `
    const s = globalThis.s;
    let st = await s.stats();
    for (let i = 0; i < 1200 && !(st.compression.state === 'ready' && st.compression.trainings === 1); i++) {
      await new Promise((r) => setTimeout(r, 100));
      st = await s.stats();
    }
    const { docs, queries } = clustered(900, 45);
    const ref = await open(null);
    for (let i = 0; i < docs.length; i += 300) await ref.addEmbeddings(docs.slice(i, i + 300));
    const out = { stats: st.compression, tokens: st.tokens, resident: st.vectorBytes - st.compression.codeBytes, cmp: await compare(s, ref, queries) };
    await ref.close();
    await s.close();
    await lib.deleteIndex('rod-bg');
    return out;
    `,
  );
  expect(trained.stats).toMatchObject({ state: 'ready', trainings: 1 });
  expect(trained.tokens).toBe(plain.tokens);
  expect(trained.resident).toBeLessThanOrEqual(SEGMENT_BYTES);
  expectExact(trained.cmp);
});

test('a browser killed while an add compacts a segment whose rows are not held leaves the index as before the add', async () => {
  test.setTimeout(300_000);
  const profile = mkdtempSync(join(tmpdir(), 'colbert-web-rod-kill-'));
  try {
    const context = await chromium.launchPersistentContext(profile, chromiumLaunchOptions());
    try {
      const pageA = await context.newPage();
      await pageA.goto(harnessUrl());
      let writing: () => void = () => undefined;
      const started = new Promise<void>((resolveStarted) => (writing = resolveStarted));
      await pageA.exposeFunction('reportWriting', () => writing());
      await inPage(
        pageA,
        `
        await lib.deleteIndex('rod-kill');
        globalThis.s = await open('rod-kill', { worker: false });
        const { docs } = clustered(900, 43);
        for (let i = 0; i < docs.length; i += 300) await globalThis.s.addEmbeddings(docs.slice(i, i + 300));
        // From now on the first row chunk a write stores reports, then the page hangs until it is killed.
        const put = IDBObjectStore.prototype.put;
        IDBObjectStore.prototype.put = function (value, key) {
          if (this.name === 'rows') {
            globalThis.reportWriting();
            const until = Date.now() + 60000;
            while (Date.now() < until) {}
          }
          return put.call(this, value, key);
        };
        `,
      );
      // Replace 150 of the first segment's documents: the add copies the rest of its rows into a new segment.
      void inPage(pageA, `const { docs } = clustered(900, 43); await globalThis.s.addEmbeddings(docs.slice(0, 150).map((d, i) => ({ id: d.id, embedding: docs[899 - i].embedding })));`).catch(() => undefined);
      await started;
    } finally {
      await context.close();
    }
    const context2 = await chromium.launchPersistentContext(profile, chromiumLaunchOptions());
    try {
      const page = await context2.newPage();
      await page.goto(harnessUrl());
      const after = await inPage<{ documents: number; resident: number; cmp: Comparison }>(
        page,
        `
        const { docs, queries } = clustered(900, 43);
        const s = await open('rod-kill');
        const ref = await open(null);
        for (let i = 0; i < docs.length; i += 300) await ref.addEmbeddings(docs.slice(i, i + 300));
        const st = await s.stats();
        const out = { documents: st.documents, resident: st.vectorBytes - st.compression.codeBytes, cmp: await compare(s, ref, [...queries, docs[0].embedding, docs[899].embedding]) };
        await s.close();
        await lib.deleteIndex('rod-kill');
        return out;
        `,
      );
      expect(after.documents).toBe(900);
      expect(after.resident).toBeLessThanOrEqual(SEGMENT_BYTES);
      expectExact(after.cmp);
    } finally {
      await context2.close();
    }
  } finally {
    rmSync(profile, { recursive: true, force: true });
  }
});
