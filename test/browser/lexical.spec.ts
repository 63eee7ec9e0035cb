/**
 * The lexical index in Debian Chromium, through the built library and its real Web Worker: a tab
 * closed while a series of adds commits never leaves the lexical and vector indexes disagreeing
 * (same documents, same counts after reopening), and filtered, lexical and hybrid search and
 * exportFor (its stream transferred from the worker) work there.
 */
import { expect, test, type Page } from '@playwright/test';
import { harnessUrl, libraryBuildMissing, testHubUrl, testModelsMissing, TEST_HUB_REPO } from '../support/browser.ts';

test.setTimeout(240_000);

test.beforeEach(async ({ page }) => {
  const missing = libraryBuildMissing() ?? testModelsMissing();
  test.skip(missing !== null, missing ?? '');
  await page.goto(harnessUrl());
});

/** Runs `body` in the page with the library as `lib` and `open(name)` creating a search on the test model (WASM). */
async function inPage<T>(page: Page, body: string): Promise<T> {
  return page.evaluate(
    async ({ body, hubUrl, repo }) => {
      const entry = '/dist/index.js';
      const lib = await import(/* @vite-ignore */ entry);
      const open = (name: string) => lib.createSearch({ model: repo, hubUrl, device: 'wasm', name });
      const fn = new Function('lib', 'open', `return (async () => { ${body} })();`);
      return fn(lib, open);
    },
    { body, hubUrl: testHubUrl(), repo: TEST_HUB_REPO },
  ) as Promise<T>;
}

const BATCH = 16;
const BATCHES = 12;
/** Batch `b`: documents whose text holds one word no other document has (`zq<b>n<i>`). */
const batchDocs = (b: string) => `Array.from({ length: ${BATCH} }, (_, i) => ({ id: 'b' + ${b} + '-' + i, text: 'zq' + ${b} + 'n' + i + ' supersonic flow over a wing, case ' + i + '.', metadata: { batch: ${b} } }))`;
const allWords = `Array.from({ length: ${BATCHES} }, (_, b) => Array.from({ length: ${BATCH} }, (_, i) => 'zq' + b + 'n' + i).join(' ')).join(' ')`;

test('a tab closed during a series of adds leaves the lexical and vector indexes with the same documents', async ({ page, context }) => {
  await inPage(page, `await lib.deleteIndex('atomic');`);
  const rounds: { documents: number; lexicalDocuments: number; vectorIds: string[]; lexicalIds: string[] }[] = [];
  for (const [round, killAt] of [[0, 3], [1, 7]] as const) {
    const pageA = await context.newPage();
    await pageA.goto(harnessUrl());
    let killed = false;
    const closed = new Promise<void>((resolveClosed) => {
      void pageA.exposeFunction('reportProgress', async (p: { status: string; done: number; total: number; batch: number }) => {
        // Close the tab when a batch has finished encoding: its one commit transaction is starting or running.
        if (!killed && p.status === 'encode' && p.done === p.total && p.batch >= killAt) {
          killed = true;
          await new Promise((r) => setTimeout(r, 5 * round));
          await pageA.close();
          resolveClosed();
        }
      });
    });
    void inPage(pageA, `const s = await open('atomic'); for (let b = 0; b < ${BATCHES}; b++) await s.add(${batchDocs('b')}, { onProgress: (p) => globalThis.reportProgress({ ...p, batch: b }) });`).catch(() => undefined);
    await closed;
    rounds.push(
      await inPage(
        page,
        `
        const s = await open('atomic');
        const stats = await s.stats();
        const q = await s.encodeQuery('wing');
        const vectorIds = stats.documents ? (await s.searchEmbedding(q, { k: stats.documents })).map((h) => h.id).sort() : [];
        const lexicalIds = (await s.search(${allWords}, { mode: 'lexical', k: 100000 })).map((h) => h.id).sort();
        await s.close();
        return { documents: stats.documents, lexicalDocuments: stats.lexicalDocuments, vectorIds, lexicalIds };
        `,
      ),
    );
  }
  for (const r of rounds) {
    expect(r.documents % BATCH, 'whole batches only').toBe(0);
    expect(r.documents).toBeGreaterThan(0);
    expect(r.lexicalDocuments).toBe(r.documents);
    expect(r.lexicalIds).toEqual(r.vectorIds);
  }
  expect(rounds[1]!.documents).toBeGreaterThanOrEqual(rounds[0]!.documents);
  console.log(`[lexical atomicity] documents after each kill: ${rounds.map((r) => r.documents).join(', ')}`);

  // Filters, lexical and hybrid search through the worker, on the reopened index.
  const out = await inPage<{ filtered: string[]; lexical: string[]; hybrid: number; explained: string[]; exported: { count: number; points: number; ids: string[]; documents: number } }>(
    page,
    `
    const s = await open('atomic');
    const filtered = (await s.search('wing', { k: 100, filter: { batch: { $in: [0, 1] } } })).map((h) => h.id);
    const lexical = (await s.search('zq1n3', { mode: 'lexical' })).map((h) => h.id);
    const hybrid = (await s.search('zq1n3 wing', { mode: 'hybrid', k: 5 })).length;
    const explained = (await s.explain('zq1n3 wing', { id: 'b1-3' })).lexical.terms.map((t) => t.term);
    // exportFor through the worker: the documents stream is transferred and read here.
    const ex = await s.exportFor('qdrant', { name: 'docs', batchSize: 50 });
    const bodies = (await new Response(ex.documents).text()).trim().split('\\n').map((l) => JSON.parse(l));
    const exported = { count: ex.documentCount, points: bodies.reduce((n, b) => n + b.points.length, 0), ids: bodies.flatMap((b) => b.points.map((p) => p.payload.doc_id)).sort(), documents: (await s.stats()).documents };
    await s.close();
    await lib.deleteIndex('atomic');
    return { filtered, lexical, hybrid, explained, exported };
    `,
  );
  expect(out.filtered.length).toBe(2 * BATCH);
  expect(out.filtered.every((id) => id.startsWith('b0-') || id.startsWith('b1-'))).toBe(true);
  expect(out.lexical).toEqual(['b1-3']);
  expect(out.hybrid).toBe(5);
  expect(out.explained).toEqual(['zq1n3', 'wing']);
  expect(out.exported.count).toBe(out.exported.documents);
  expect(out.exported.points).toBe(out.exported.documents);
  expect(out.exported.ids).toEqual(rounds[1]!.vectorIds);
});
