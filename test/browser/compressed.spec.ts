/**
 * The compressed index in Debian Chromium through the built library's default worker: a
 * collection large enough to train, searched through the codes and with `exhaustive: true`,
 * the same top 10 with the same scores; a delete reaches the codes. Persisted in IndexedDB: a
 * reload reads the codes (no training), a browser killed during a background re-training leaves
 * the old centroids serving, a second tab picks up the first one's codes, and a file built in
 * Node with `colbert-web index --compression` imports without training.
 */
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { chromium, expect, test, type Page } from '@playwright/test';
import { indexFiles } from '../../src/cli/index-command.ts';
import { chromiumLaunchOptions, harnessUrl, libraryBuildMissing, testHubUrl, testModelsMissing, TEST_HUB_REPO } from '../support/browser.ts';
import { corpusText } from '../support/corpus-text.ts';
import { WORD_CLUSTERED_SOURCE, type wordClustered as WordClusteredFn } from '../support/word-clusters.ts';
import { TEST_TJS_DIR } from '../support/global-setup.ts';

test.beforeEach(async ({ page }) => {
  const missing = libraryBuildMissing() ?? testModelsMissing();
  test.skip(missing !== null, missing ?? '');
  page.on('pageerror', (err) => console.error(`[page error] ${err.message}`));
  await page.goto(harnessUrl());
});

test('compressed search in the worker equals exhaustive search on the top 10', async ({ page }) => {
  test.setTimeout(180_000);
  const result = await page.evaluate(
    async ({ hubUrl, repo, generator }) => {
      const entry = '/dist/index.js';
      const lib = await import(/* @vite-ignore */ entry);
      // Word-clustered unit vectors (test/support/word-clusters.ts).
      const wordClustered = new Function(`return ${generator}`)() as typeof WordClusteredFn;
      const { docs, queries } = wordClustered({ docs: 200, seed: 17 });
      const s = await lib.createSearch({ model: repo, hubUrl, device: 'wasm', scoring: 'cpu', compression: { nbits: 2 } });
      await s.addEmbeddings(docs.slice(0, 100));
      await s.addEmbeddings(docs.slice(100));
      const stats = await s.stats();
      let same = 0;
      let maxDiff = 0;
      for (const q of queries) {
        const want = await s.searchEmbedding(q, { k: 10, exhaustive: true });
        const got = await s.searchEmbedding(q, { k: 10 });
        const truth = new Map<string, number>(want.map((h: { id: string; score: number }) => [h.id, h.score]));
        for (const h of got) {
          if (!truth.has(h.id)) continue;
          same++;
          maxDiff = Math.max(maxDiff, Math.abs(h.score - truth.get(h.id)!));
        }
      }
      const top = (await s.searchEmbedding(queries[0]!, { k: 1 }))[0].id;
      await s.delete([top]);
      const after = (await s.searchEmbedding(queries[0]!, { k: 10 })).map((h: { id: string }) => h.id);
      await s.close();
      return { state: stats.compression.state, centroids: stats.compression.centroids, overlap: same / (10 * queries.length), maxDiff, deletedGone: !after.includes(top) };
    },
    { hubUrl: testHubUrl(), repo: TEST_HUB_REPO, generator: WORD_CLUSTERED_SOURCE },
  );
  expect(result.state).toBe('ready');
  expect(result.centroids).toBeGreaterThan(0);
  // The floor with rerank (also held in Node on larger sets, test/unit/compressed*.test.ts).
  expect(result.overlap).toBeGreaterThanOrEqual(0.99);
  expect(result.maxDiff).toBeLessThan(1e-5);
  expect(result.deletedGone).toBe(true);
});

/**
 * Runs `body` in the page with the library as `lib`, `open(name, extra)` creating a compressed
 * search (nbits 2, CPU scoring, the default worker) on the test model, and `clustered(n, seed)`
 * giving `{ docs, queries }` of word-clustered unit vectors (test/support/word-clusters.ts, one
 * vocabulary for every seed; ids `<prefix>0..`).
 */
async function inPage<T>(page: Page, body: string, arg: unknown = null): Promise<T> {
  return page.evaluate(
    async ({ body, hubUrl, repo, arg, generator }) => {
      const entry = '/dist/index.js';
      const lib = await import(/* @vite-ignore */ entry);
      const open = (name: string, extra: Record<string, unknown> = {}) => lib.createSearch({ model: repo, hubUrl, device: 'wasm', scoring: 'cpu', name, compression: { nbits: 2 }, ...extra });
      // The same vocabulary for every seed: documents of different calls share topics.
      const wordClustered = new Function(`return ${generator}`)() as typeof WordClusteredFn;
      const clustered = (n: number, seed: number, prefix = 'd') => wordClustered({ docs: n, seed, vocabularySeed: 99, prefix });
      /** Top-10 agreement of compressed and exhaustive search over `queries`, and the largest score difference. */
      const agreement = async (s: { searchEmbedding: (q: unknown, o: unknown) => Promise<{ id: string; score: number }[]> }, queries: unknown[]) => {
        let same = 0;
        let maxDiff = 0;
        for (const q of queries) {
          const want = await s.searchEmbedding(q, { k: 10, exhaustive: true });
          const got = await s.searchEmbedding(q, { k: 10 });
          const truth = new Map(want.map((h) => [h.id, h.score]));
          for (const h of got) {
            if (!truth.has(h.id)) continue;
            same++;
            maxDiff = Math.max(maxDiff, Math.abs(h.score - truth.get(h.id)!));
          }
        }
        return { overlap: same / (10 * queries.length), maxDiff };
      };
      /** The codec generations stored for index `name` (raw IndexedDB). */
      const storedCodecs = (name: string) =>
        new Promise<number[]>((resolve, reject) => {
          const req = indexedDB.open(`colbert-web:${name}`);
          req.onerror = () => reject(req.error);
          req.onsuccess = () => {
            const db = req.result;
            const keys = db.transaction('codecs').objectStore('codecs').getAllKeys();
            keys.onsuccess = () => {
              db.close();
              resolve(keys.result as number[]);
            };
            keys.onerror = () => reject(keys.error);
          };
        });
      const fn = new Function('lib', 'open', 'clustered', 'agreement', 'storedCodecs', 'arg', `return (async () => { ${body} })();`);
      return fn(lib, open, clustered, agreement, storedCodecs, arg);
    },
    { body, hubUrl: testHubUrl(), repo: TEST_HUB_REPO, arg, generator: WORD_CLUSTERED_SOURCE },
  ) as Promise<T>;
}

test('a reload keeps the codes: the reopened index reads them and does not train', async ({ page }) => {
  test.setTimeout(180_000);
  const before = await inPage<{ stats: { trainings: number; trainedTokens: number; state: string }; hits: unknown }>(
    page,
    `
    await lib.deleteIndex('cmp-reload');
    const { docs, queries } = clustered(200, 17);
    const s = await open('cmp-reload');
    await s.addEmbeddings(docs);
    const out = { stats: (await s.stats()).compression, hits: await s.searchEmbedding(queries[0], { k: 10 }) };
    await s.close();
    return out;
    `,
  );
  expect(before.stats).toMatchObject({ state: 'ready', trainings: 1 });
  await page.reload();
  const after = await inPage<{ stats: { trainings: number; trainedTokens: number; state: string }; hits: unknown; agreement: { overlap: number; maxDiff: number } }>(
    page,
    `
    const { queries } = clustered(200, 17);
    const s = await open('cmp-reload');
    const out = { stats: (await s.stats()).compression, hits: await s.searchEmbedding(queries[0], { k: 10 }), agreement: await agreement(s, queries) };
    await s.close();
    await lib.deleteIndex('cmp-reload');
    return out;
    `,
  );
  expect(after.stats).toMatchObject({ state: 'ready', trainings: 0, trainedTokens: before.stats.trainedTokens });
  expect(after.hits).toEqual(before.hits);
  expect(after.agreement.overlap).toBeGreaterThanOrEqual(0.95);
  expect(after.agreement.maxDiff).toBeLessThan(1e-5);
});

test('a browser killed while a background re-training writes its new generation leaves the old centroids serving, exact after reopening', async () => {
  test.setTimeout(240_000);
  const profile = mkdtempSync(join(tmpdir(), 'colbert-web-kill-'));
  try {
    // Browser 1 (the search in the page's thread, so the page sees its IndexedDB calls): trains,
    // grows past 4x, and is killed once the re-training stores its new generation's codes.
    let first: { trainedTokens: number };
    const context = await chromium.launchPersistentContext(profile, chromiumLaunchOptions());
    try {
      const pageA = await context.newPage();
      await pageA.goto(harnessUrl());
      let writing: () => void = () => undefined;
      const started = new Promise<void>((resolveStarted) => (writing = resolveStarted));
      await pageA.exposeFunction('reportWriting', () => writing());
      first = await inPage<{ trainedTokens: number }>(
        pageA,
        `
        await lib.deleteIndex('cmp-kill');
        globalThis.s = await open('cmp-kill', { worker: false });
        await globalThis.s.addEmbeddings(clustered(110, 23, 'a').docs);
        const st = await globalThis.s.stats();
        // From now on: the first codes record of a new generation reports, then the page hangs until it is killed.
        const put = IDBObjectStore.prototype.put;
        let next = null;
        IDBObjectStore.prototype.put = function (value, key) {
          if (this.name === 'codecs') next = key;
          if (this.name === 'codes' && next !== null && Array.isArray(key) && key[0] === next) {
            globalThis.reportWriting();
            const until = Date.now() + 60000;
            while (Date.now() < until) {}
          }
          return put.call(this, value, key);
        };
        return { trainedTokens: st.compression.trainedTokens };
        `,
      );
      expect(first.trainedTokens).toBeGreaterThan(0);
      void inPage(
        pageA,
        `
        const { docs } = clustered(700, 29, 'b');
        let st = await globalThis.s.stats();
        for (let i = 0; st.tokens < 4 * arg && i < docs.length; i += 50) {
          await globalThis.s.addEmbeddings(docs.slice(i, i + 50));
          st = await globalThis.s.stats();
        }
        `,
        first.trainedTokens,
      ).catch(() => undefined);
      await started;
    } finally {
      await context.close();
    }
    // Browser 2 on the same profile.
    const context2 = await chromium.launchPersistentContext(profile, chromiumLaunchOptions());
    try {
      const page = await context2.newPage();
      await page.goto(harnessUrl());
      const after = await inPage<{ before: number[]; stats: { trainings: number; trainedTokens: number; state: string }; codecs: number[]; agreement: { overlap: number; maxDiff: number } }>(
        page,
        `
        const before = await storedCodecs('cmp-kill');
        const s = await open('cmp-kill');
        const stats = (await s.stats()).compression;
        const codecs = await storedCodecs('cmp-kill');
        const out = { before, stats, codecs, agreement: await agreement(s, clustered(110, 23, 'a').queries) };
        await s.close();
        await lib.deleteIndex('cmp-kill');
        return out;
        `,
      );
      // The unfinished generation was there; opening serves the old one without training, and drops the leftovers
      // (a re-training may have started anew since, hence at most one other codec).
      expect(after.before.length).toBe(2);
      expect(after.stats).toMatchObject({ trainings: 0, trainedTokens: first.trainedTokens });
      expect(after.codecs.length).toBeLessThanOrEqual(2);
      expect(after.codecs).toContain(Math.min(...after.before));
      expect(after.codecs).not.toContain(Math.max(...after.before));
      expect(after.agreement.overlap).toBeGreaterThanOrEqual(0.95);
      expect(after.agreement.maxDiff).toBeLessThan(1e-5);
    } finally {
      await context2.close();
    }
  } finally {
    rmSync(profile, { recursive: true, force: true });
  }
});

test('two tabs: one adds, the other searches the new codes without training', async ({ page, context }) => {
  test.setTimeout(240_000);
  await inPage(page, `await lib.deleteIndex('cmp-tabs'); const s = await open('cmp-tabs'); await s.addEmbeddings(clustered(150, 31).docs); await s.close();`);
  const other = await context.newPage();
  await other.goto(harnessUrl());
  const setup = `globalThis.changes = 0; globalThis.s = await open('cmp-tabs', { onChange: () => globalThis.changes++ }); return (await globalThis.s.stats()).compression;`;
  const [a, b] = await Promise.all([inPage<{ trainings: number }>(page, setup), inPage<{ trainings: number }>(other, setup)]);
  expect(a.trainings).toBe(0);
  expect(b.trainings).toBe(0);
  await inPage(page, `await globalThis.s.addEmbeddings(clustered(30, 37, 'new').docs);`);
  const seen = await inPage<{ top: string[]; stats: { trainings: number; state: string }; documents: number }>(
    other,
    `
    const { docs } = clustered(30, 37, 'new');
    // A query made of one new document's own tokens: it ranks first only if this tab's codes hold it.
    const d = docs[5].embedding;
    const q = { data: d.data.slice(0, 16 * 128), tokens: 16, dim: 128, ids: new Int32Array(16).fill(-1) };
    for (let i = 0; i < 100 && (globalThis.changes === 0 || (await globalThis.s.searchEmbedding(q, { k: 1 }))[0].id !== 'new5'); i++) await new Promise((r) => setTimeout(r, 100));
    const top = (await globalThis.s.searchEmbedding(q, { k: 3 })).map((h) => h.id);
    const st = await globalThis.s.stats();
    return { top, stats: st.compression, documents: st.documents };
    `,
  );
  expect(seen.documents).toBe(180);
  expect(seen.top[0]).toBe('new5');
  expect(seen.stats).toMatchObject({ state: 'ready', trainings: 0 });
  await other.close();
  await inPage(page, `await globalThis.s.close(); await lib.deleteIndex('cmp-tabs');`);
});

test('a compressed index built in Node (colbert-web index --compression) imports into IndexedDB and searches its codes without training', async ({ page }) => {
  test.setTimeout(240_000);
  const dir = mkdtempSync(join(tmpdir(), 'cbw-node-index-'));
  try {
    writeFileSync(join(dir, 'corpus.txt'), corpusText(240));
    const out = join(dir, 'site.cbwidx');
    const lines: string[] = [];
    await indexFiles([dir], { model: TEST_TJS_DIR, out, compression: { nbits: 2 }, log: (l) => lines.push(l) });
    expect(lines.join('\n')).toContain('the file carries its codes');
    const file = [...readFileSync(out)];
    const result = await inPage<{ stats: { trainings: number; state: string; trainedTokens: number }; hits: { id: string }[]; exact: { id: string }[]; reopened: { trainings: number } }>(
      page,
      `
      await lib.deleteIndex('cmp-node');
      const s = await open('cmp-node');
      await s.importIndex(new Uint8Array(arg));
      const stats = (await s.stats()).compression;
      const hits = await s.search('glacier moraine alpine ice', { k: 5 });
      const exact = await s.search('glacier moraine alpine ice', { k: 5, exhaustive: true });
      await s.close();
      const again = await open('cmp-node');
      const reopened = (await again.stats()).compression;
      await again.close();
      await lib.deleteIndex('cmp-node');
      return { stats, hits, exact, reopened };
      `,
      file,
    );
    expect(result.stats).toMatchObject({ state: 'ready', trainings: 0 });
    expect(result.stats.trainedTokens).toBeGreaterThanOrEqual(4096);
    expect(result.hits).toEqual(result.exact);
    expect(result.reopened).toMatchObject({ trainings: 0 });
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
