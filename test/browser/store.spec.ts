/**
 * The persistent index in Debian Chromium, through the built library and its real Web Worker:
 * persistence across a reload and across a browser restart on the same profile, a tab closed in
 * the middle of a large add (before-or-after, then resume), an injected quota failure, two pages
 * writing at once, and export / import / corrupted import.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { chromium, expect, test, type Page } from '@playwright/test';
import { chromiumLaunchOptions, harnessUrl, libraryBuildMissing, testHubUrl, testModelsMissing, TEST_HUB_REPO } from '../support/browser.ts';

// Each test loads the model in several pages or browsers on two shared cores.
test.setTimeout(240_000);

test.beforeEach(async ({ page }) => {
  const missing = libraryBuildMissing() ?? testModelsMissing();
  test.skip(missing !== null, missing ?? '');
  await page.goto(harnessUrl());
});

/**
 * Runs `body` in the page with the library as `lib`, `open(name, extra)` creating a search on
 * the test model (WASM, to keep SwiftShader out of these tests) and `emb(seed, tokens)` making a
 * random 128-d token matrix.
 */
async function inPage<T>(page: Page, body: string, arg: unknown = null): Promise<T> {
  return page.evaluate(
    async ({ body, hubUrl, repo, arg }) => {
      const entry = '/dist/index.js'; // served by the test server; not a module TypeScript resolves
      const lib = await import(/* @vite-ignore */ entry);
      const g = globalThis as Record<string, unknown>;
      g['lib'] = lib;
      const open = (name: string | null, extra: Record<string, unknown> = {}) =>
        lib.createSearch({ model: repo, hubUrl, device: 'wasm', ...(name === null ? {} : { name }), ...extra });
      const emb = (seed: number, tokens: number) => {
        let s = seed >>> 0;
        const data = new Float32Array(tokens * 128);
        for (let i = 0; i < data.length; i++) {
          s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
          data[i] = s / 2 ** 31 - 1;
        }
        return { data, tokens, dim: 128, ids: new Int32Array(tokens) };
      };
      const fn = new Function('lib', 'open', 'emb', 'arg', `return (async () => { ${body} })();`);
      return fn(lib, open, emb, arg);
    },
    { body, hubUrl: testHubUrl(), repo: TEST_HUB_REPO, arg },
  ) as Promise<T>;
}

const DOCS = (n: number, prefix = 'd') =>
  `Array.from({ length: ${n} }, (_, i) => ({ id: '${prefix}' + i, text: 'Document ' + i + ' on ' + ['supersonic wings', 'cylindrical shells', 'hypersonic heat transfer', 'laminar boundary layers'][i % 4] + ', case ' + (i * 7919 % 1000) + '.', metadata: { i } }))`;

test('a named index survives page.reload() without re-encoding, and listIndexes/deleteIndex manage it', async ({ page }) => {
  const before = await inPage<{ hits: unknown; stats: { documents: number } }>(
    page,
    `
    await lib.deleteIndex('reload');
    const s = await open('reload', { precision: 'int8' });
    await s.add(${DOCS(30)});
    const out = { hits: await s.search('hypersonic heat transfer', { k: 5 }), stats: await s.stats() };
    await s.close();
    return out;
    `,
  );
  expect(before.stats).toMatchObject({ documents: 30, storage: 'indexeddb', name: 'reload', precision: 'int8' });
  await page.reload();
  const after = await inPage<{ hits: unknown; add: unknown; stats: Record<string, unknown>; list: unknown[]; listAfter: string[] }>(
    page,
    `
    const s = await open('reload');
    const hits = await s.search('hypersonic heat transfer', { k: 5 });
    const add = await s.add(${DOCS(30)});
    const stats = await s.stats();
    await s.close();
    const list = await lib.listIndexes();
    await lib.deleteIndex('reload');
    return { hits, add, stats, list, listAfter: (await lib.listIndexes()).map((i) => i.name) };
    `,
  );
  expect(after.hits).toEqual(before.hits);
  expect(after.add).toEqual({ added: 0, tokens: 0, skipped: 30 });
  expect(after.stats['documents']).toBe(30);
  expect(after.stats['bytesOnDisk']).toBeGreaterThan(0);
  expect(after.stats['quota']).toBeGreaterThan(0);
  expect(typeof after.stats['persisted']).toBe('boolean');
  expect(after.list).toContainEqual(expect.objectContaining({ name: 'reload', documents: 30, precision: 'int8', model: TEST_HUB_REPO }));
  expect(after.listAfter).not.toContain('reload');
});

test('a named index survives closing the browser and reopening the same profile', async () => {
  const profile = mkdtempSync(join(tmpdir(), 'colbert-web-profile-'));
  try {
    const run = async <T>(body: string): Promise<T> => {
      const context = await chromium.launchPersistentContext(profile, chromiumLaunchOptions());
      try {
        const page = await context.newPage();
        await page.goto(harnessUrl());
        return await inPage<T>(page, body);
      } finally {
        await context.close();
      }
    };
    const first = await run<unknown>(`const s = await open('profile'); await s.add(${DOCS(12)}); const h = await s.search('cylindrical shells', { k: 3 }); await s.close(); return h;`);
    const second = await run<{ hits: unknown; documents: number }>(`const s = await open('profile'); const out = { hits: await s.search('cylindrical shells', { k: 3 }), documents: (await s.stats()).documents }; await s.close(); return out;`);
    expect(second.documents).toBe(12);
    expect(second.hits).toEqual(first);
  } finally {
    rmSync(profile, { recursive: true, force: true });
  }
});

test('a tab closed in the middle of a large add leaves the index before-or-after, and the add resumes', async ({ page, context }) => {
  await inPage(page, `await lib.deleteIndex('crash'); const s = await open('crash'); await s.add(${DOCS(10, 'base')}); await s.close();`);
  // Page A starts a 384-document add (6 encoded chunks) and is closed once some chunks are staged.
  const pageA = await context.newPage();
  await pageA.goto(harnessUrl());
  let staged = 0;
  const closed = new Promise<void>((resolveClosed) => {
    void pageA.exposeFunction('reportProgress', async (p: { status: string; done: number; total: number }) => {
      if (p.status === 'encode' && p.done >= 64 && p.done < p.total && staged === 0) {
        staged = p.done;
        await pageA.close();
        resolveClosed();
      }
    });
  });
  void inPage(pageA, `const s = await open('crash'); await s.add(${DOCS(384)}, { onProgress: (p) => globalThis.reportProgress(p) });`).catch(() => undefined);
  await closed;
  expect(staged).toBeGreaterThanOrEqual(64);

  const after = await inPage<{ documents: number; result: { added: number; skipped: number }; final: number; firstProgress: { skipped: number } }>(
    page,
    `
    const s = await open('crash');
    const documents = (await s.stats()).documents;
    const progress = [];
    const result = await s.add(${DOCS(384)}, { onProgress: (p) => progress.push(p) });
    const final = (await s.stats()).documents;
    await s.close();
    await lib.deleteIndex('crash');
    return { documents, result, final, firstProgress: progress[0] };
    `,
  );
  // Before the batch (10) or after it (394), never in between.
  expect([10, 394]).toContain(after.documents);
  expect(after.documents).toBe(10); // the commit comes after the last chunk, which page A never reached
  expect(after.result.skipped).toBeGreaterThanOrEqual(staged);
  expect(after.firstProgress.skipped).toBe(after.result.skipped);
  expect(after.result.added).toBe(384);
  expect(after.final).toBe(394);
});

test('an injected quota failure mid-batch is QUOTA_EXCEEDED and nothing changes, also after a reload', async ({ page }) => {
  const result = await inPage<{ code: string; before: unknown; after: unknown; stats: number; stageCode: string }>(
    page,
    `
    await lib.deleteIndex('quota');
    // In the page's thread, so that the injected failure reaches the store.
    const s = await open('quota', { worker: false });
    await s.addEmbeddings(Array.from({ length: 20 }, (_, i) => ({ id: 'keep' + i, embedding: emb(i + 1, 16) })));
    const before = await s.searchEmbedding(emb(999, 8), { k: 5 });
    const put = IDBObjectStore.prototype.put;
    let calls = 0;
    IDBObjectStore.prototype.put = function (...args) {
      if (++calls > 3) throw new DOMException('Quota exceeded (injected).', 'QuotaExceededError');
      return put.apply(this, args);
    };
    let code = 'no error', stageCode = 'no error';
    try {
      try { await s.addEmbeddings(Array.from({ length: 50 }, (_, i) => ({ id: 'new' + i, embedding: emb(i + 100, 16) }))); } catch (e) { code = e.code; }
      calls = 0;
      try { await s.add(${DOCS(5, 'text')}); } catch (e) { stageCode = e.code; }
    } finally {
      IDBObjectStore.prototype.put = put;
    }
    const after = await s.searchEmbedding(emb(999, 8), { k: 5 });
    const stats = (await s.stats()).documents;
    await s.close();
    return { code, before, after, stats, stageCode };
    `,
  );
  expect(result.code).toBe('QUOTA_EXCEEDED');
  expect(result.stageCode).toBe('QUOTA_EXCEEDED');
  expect(result.after).toEqual(result.before);
  expect(result.stats).toBe(20);
  await page.reload();
  const reopened = await inPage<{ documents: number; hits: unknown }>(
    page,
    `const s = await open('quota'); const out = { documents: (await s.stats()).documents, hits: await s.searchEmbedding(emb(999, 8), { k: 5 }) }; await s.close(); await lib.deleteIndex('quota'); return out;`,
  );
  expect(reopened.documents).toBe(20);
  expect(reopened.hits).toEqual(result.before);
});

test('two pages writing to one index at once: nothing lost, each sees the other without a reload', async ({ page, context }) => {
  await inPage(page, `await lib.deleteIndex('shared');`);
  const other = await context.newPage();
  await other.goto(harnessUrl());
  const setup = `
    globalThis.changes = [];
    globalThis.s = await open('shared', { onChange: (c) => globalThis.changes.push(c) });
  `;
  await Promise.all([inPage(page, setup), inPage(other, setup)]);
  const write = (prefix: string, seed: number) => `
    for (let b = 0; b < 6; b++) {
      await globalThis.s.addEmbeddings(Array.from({ length: 25 }, (_, i) => ({ id: '${prefix}' + b + '-' + i, embedding: emb(${seed} + b * 100 + i, 12), metadata: { b } })));
    }
    await globalThis.s.delete(['${prefix}0-0']);
  `;
  await Promise.all([inPage(page, write('a', 1)), inPage(other, write('b', 50000))]);
  const read = `
    await new Promise((r) => setTimeout(r, 200));
    const st = await globalThis.s.stats();
    const hits = await globalThis.s.searchEmbedding(emb(7, 8), { k: 10 });
    return { documents: st.documents, tokens: st.tokens, hits, changes: globalThis.changes.length };
  `;
  const [a, b] = await Promise.all([inPage<{ documents: number; tokens: number; hits: unknown; changes: number }>(page, read), inPage<{ documents: number; tokens: number; hits: unknown; changes: number }>(other, read)]);
  expect(a.documents).toBe(298);
  expect(a.tokens).toBe(298 * 12);
  expect(b).toMatchObject({ documents: a.documents, tokens: a.tokens, hits: a.hits });
  expect(a.changes).toBeGreaterThan(0);
  expect(b.changes).toBeGreaterThan(0);
  // A fresh page (new worker, new connection) reads the same, uncorrupted index.
  await other.close();
  const third = await context.newPage();
  await third.goto(harnessUrl());
  const fresh = await inPage<{ documents: number; hits: unknown }>(third, `const s = await open('shared'); const out = { documents: (await s.stats()).documents, hits: await s.searchEmbedding(emb(7, 8), { k: 10 }) }; await s.close(); return out;`);
  expect(fresh).toEqual({ documents: a.documents, hits: a.hits });
  await inPage(page, `await globalThis.s.close(); await lib.deleteIndex('shared');`);
});

test('export, import into another index, and a corrupted or truncated import that changes nothing', async ({ page }) => {
  const result = await inPage<Record<string, unknown>>(
    page,
    `
    for (const n of ['src', 'dst']) await lib.deleteIndex(n);
    const src = await open('src', { precision: 'fp16' });
    await src.add(${DOCS(25)});
    await src.delete(['d3']);
    const file = await src.exportIndex();
    const hits = await src.search('laminar boundary layers', { k: 8 });
    await src.close();
    const dst = await open('dst', { precision: 'fp16' });
    await dst.addEmbeddings([{ id: 'old', embedding: emb(1, 4) }]);
    const codes = {};
    const attempt = async (name, fn) => { try { await fn(); codes[name] = 'no error'; } catch (e) { codes[name] = e.code; } };
    const bad = file.slice(); bad[Math.floor(bad.length * 0.6)] ^= 0x40;
    await attempt('corrupt', () => dst.importIndex(new Blob([bad])));
    await attempt('truncated', () => dst.importIndex(file.slice(0, file.length - 100)));
    await attempt('garbage', () => dst.importIndex(new Uint8Array(64)));
    const untouched = (await dst.stats()).documents;
    const imported = await dst.importIndex(new Blob([file]));
    const after = await dst.search('laminar boundary layers', { k: 8 });
    await dst.close();
    return { magic: new TextDecoder().decode(file.subarray(0, 8)), codes, untouched, imported, same: JSON.stringify(after) === JSON.stringify(hits), hits: hits.length };
    `,
  );
  expect(result['magic']).toBe('CBWEBIDX');
  expect(result['codes']).toEqual({ corrupt: 'INDEX_CORRUPT', truncated: 'INDEX_CORRUPT', garbage: 'INDEX_CORRUPT' });
  expect(result['untouched']).toBe(1);
  expect(result['imported']).toMatchObject({ documents: 24 });
  expect(result['same']).toBe(true);
  expect(result['hits']).toBe(8);
  await page.reload();
  const reopened = await inPage<number>(page, `const s = await open('dst'); const n = (await s.stats()).documents; await s.close(); for (const n of ['src', 'dst']) await lib.deleteIndex(n); return n;`);
  expect(reopened).toBe(24);
});
