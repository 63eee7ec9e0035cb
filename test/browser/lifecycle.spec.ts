/**
 * The defects adversarial testing found, in Debian Chromium through the built library and its
 * real Web Worker and IndexedDB: close() during add() settles the add with CLOSED; after close()
 * every method rejects and none throws; metadata that cannot cross to the worker or be exported
 * is INVALID_METADATA (not a DataCloneError); random bytes are INDEX_CORRUPT; two pages adding
 * the same ids with other texts both succeed; delete() and clear() work at a full quota; and a
 * 0-token query embedding is INVALID_MATRIX on the GPU scorer too.
 */
import { expect, test, type Page } from '@playwright/test';
import { harnessUrl, libraryBuildMissing, testHubUrl, testModelsMissing, TEST_HUB_REPO } from '../support/browser.ts';

// Several tests load the model in two pages on two shared cores.
test.setTimeout(240_000);

test.beforeEach(async ({ page }) => {
  const missing = libraryBuildMissing() ?? testModelsMissing();
  test.skip(missing !== null, missing ?? '');
  await page.goto(harnessUrl());
});

/** Runs `body` in the page with the library as `lib`, `open(name, extra)` and `emb(seed, tokens)` (see store.spec.ts). */
async function inPage<T>(page: Page, body: string, arg: unknown = null): Promise<T> {
  return page.evaluate(
    async ({ body, hubUrl, repo, arg }) => {
      const entry = '/dist/index.js'; // served by the test server; not a module TypeScript resolves
      const lib = await import(/* @vite-ignore */ entry);
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

const DOCS = (n: number, topic = 'supersonic wings') => `Array.from({ length: ${n} }, (_, i) => ({ id: 'd' + i, text: 'Document ' + i + ' on ${topic}, case ' + (i * 7919 % 1000) + '.', metadata: { topic: '${topic}' } }))`;

test('worker: close() during add() rejects the add with CLOSED (not pending), and a new search resumes it', async ({ page }) => {
  const result = await inPage<{ settled: string; closed: string; documents: number; resumed: { added: number; skipped: number } }>(
    page,
    `
    await lib.deleteIndex('closing');
    const s = await open('closing');
    let closing;
    const add = s.add(${DOCS(300)}, { onProgress: (p) => { if (p.status === 'encode' && p.done >= 64) closing ??= s.close(); } });
    const settled = await Promise.race([add.then(() => 'resolved', (e) => e.code ?? String(e)), new Promise((r) => setTimeout(() => r('pending after 30 s'), 30000))]);
    const closed = await closing.then(() => 'closed', (e) => e.code);
    const again = await open('closing');
    const documents = (await again.stats()).documents;
    const r = await again.add(${DOCS(300)});
    await again.close();
    await lib.deleteIndex('closing');
    return { settled, closed, documents, resumed: { added: r.added, skipped: r.skipped } };
    `,
  );
  expect(result.settled).toBe('CLOSED');
  expect(result.closed).toBe('closed');
  expect(result.documents).toBe(0);
  expect(result.resumed.added).toBe(300);
  expect(result.resumed.skipped).toBeGreaterThanOrEqual(64);
});

test('worker: after close() every method returns a rejected promise (CLOSED), none throws', async ({ page }) => {
  const result = await inPage<Record<string, string>>(
    page,
    `
    const s = await open(null);
    await s.close();
    const m = emb(1, 2);
    const calls = {
      add: () => s.add([{ id: 'a', text: 'b' }]), addEmbeddings: () => s.addEmbeddings([{ id: 'a', embedding: m }]),
      delete: () => s.delete(['a']), search: () => s.search('x'), searchEmbedding: () => s.searchEmbedding(m),
      encodeQuery: () => s.encodeQuery('x'), encodeDocuments: () => s.encodeDocuments(['x']), stats: () => s.stats(),
      countTokens: () => s.countTokens(['x']), explain: () => s.explain('x', { text: 'y' }), clear: () => s.clear(),
      exportIndex: () => s.exportIndex(), importIndex: () => s.importIndex(new Uint8Array(8)),
    };
    const out = {};
    for (const [name, call] of Object.entries(calls)) {
      try {
        out[name] = await call().then(() => 'resolved', (e) => 'rejected ' + e.code);
      } catch (e) {
        out[name] = 'threw ' + (e.code ?? e);
      }
    }
    out.close = await s.close().then(() => 'resolved', (e) => 'rejected ' + e.code);
    return out;
    `,
  );
  const methods = ['add', 'addEmbeddings', 'delete', 'search', 'searchEmbedding', 'encodeQuery', 'encodeDocuments', 'stats', 'countTokens', 'explain', 'clear', 'exportIndex', 'importIndex'];
  expect(result).toEqual({ ...Object.fromEntries(methods.map((m) => [m, 'rejected CLOSED'])), close: 'resolved' });
});

test('worker: metadata that cannot be stored or exported is INVALID_METADATA, random bytes are INDEX_CORRUPT, and the index keeps working', async ({ page }) => {
  const result = await inPage<{ codes: Record<string, string>; imports: string[]; documents: number; exported: number; top: unknown }>(
    page,
    `
    await lib.deleteIndex('meta');
    const s = await open('meta');
    await s.add([{ id: 'ok', text: 'Buckling of thin cylindrical shells.', metadata: { title: 'Shell' } }]);
    const cyclic = {}; cyclic.me = cyclic;
    const bad = { function: { f: () => 1 }, symbol: { s: Symbol('x') }, bigint: { n: 10n }, cyclic, date: { at: new Date(0) } };
    const codes = {};
    for (const [name, metadata] of Object.entries(bad)) {
      codes[name] = await s.add([{ id: 'bad', text: 'A bad document.', metadata }]).then(() => 'added', (e) => (e instanceof Error && e.name === 'ColbertError' ? '' : 'not a ColbertError: ') + e.code);
      codes[name + ' (embedding)'] = await s.addEmbeddings([{ id: 'bad', embedding: emb(1, 2), metadata }]).then(() => 'added', (e) => e.code);
    }
    // Anything else that cannot cross to the worker is coded too.
    codes.clone = await s.search('x', { k: 2, extra: () => 1 }).then(() => 'ok', (e) => e.code);
    const imports = [];
    let seed = 7;
    const random = (n) => Uint8Array.from({ length: n }, () => (seed = (Math.imul(seed, 1664525) + 1013904223) >>> 0) >>> 24);
    for (const n of [1, 19, 64, 5000]) imports.push(await s.importIndex(random(n)).then(() => 'imported', (e) => e.code));
    const signed = random(4000); signed.set(new TextEncoder().encode('CBWEBIDX'));
    imports.push(await s.importIndex(signed).then(() => 'imported', (e) => e.code));
    const out = { codes, imports, documents: (await s.stats()).documents, exported: (await s.exportIndex()).length, top: (await s.search('cylindrical shells'))[0] };
    await s.close();
    await lib.deleteIndex('meta');
    return out;
    `,
  );
  expect(result.codes).toEqual({
    function: 'INVALID_METADATA', 'function (embedding)': 'INVALID_METADATA',
    symbol: 'INVALID_METADATA', 'symbol (embedding)': 'INVALID_METADATA',
    bigint: 'INVALID_METADATA', 'bigint (embedding)': 'INVALID_METADATA',
    cyclic: 'INVALID_METADATA', 'cyclic (embedding)': 'INVALID_METADATA',
    date: 'INVALID_METADATA', 'date (embedding)': 'INVALID_METADATA',
    clone: 'INVALID_ARGUMENT',
  });
  expect(result.imports).toEqual(new Array(5).fill('INDEX_CORRUPT'));
  expect(result.documents).toBe(1);
  expect(result.exported).toBeGreaterThan(0);
  expect(result.top).toMatchObject({ id: 'ok', metadata: { title: 'Shell' } });
});

test('two pages adding the same 150 ids with other texts at once both succeed, and one batch wins whole', async ({ page, context }) => {
  await inPage(page, `await lib.deleteIndex('same-ids');`);
  const other = await context.newPage();
  await other.goto(harnessUrl());
  const setup = `globalThis.s = await open('same-ids');`;
  await Promise.all([inPage(page, setup), inPage(other, setup)]);
  const add = (topic: string) => `return await globalThis.s.add(${DOCS(150, topic)}).then((r) => r.added, (e) => e.code + ': ' + e.message);`;
  const [a, b] = await Promise.all([inPage(page, add('supersonic wings')), inPage(other, add('cylindrical shells'))]);
  expect([a, b]).toEqual([150, 150]);
  const read = `
    const hits = await globalThis.s.search('document case', { k: 200 });
    return { documents: (await globalThis.s.stats()).documents, topics: [...new Set(hits.map((h) => h.metadata.topic))], hits: hits.length };
  `;
  const [ra, rb] = await Promise.all([inPage<{ documents: number; topics: string[] }>(page, read), inPage<{ documents: number; topics: string[] }>(other, read)]);
  expect(ra.documents).toBe(150);
  expect(ra.topics).toHaveLength(1);
  expect(rb).toEqual(ra);
  await other.close();
  await inPage(page, `await globalThis.s.close(); await lib.deleteIndex('same-ids');`);
});

test('at an exhausted quota, delete() and clear() still work (adds fail with QUOTA_EXCEEDED), also after a reload', async ({ page }) => {
  const result = await inPage<Record<string, unknown>>(
    page,
    `
    await lib.deleteIndex('full');
    // In the page's thread, so that the injected full disk reaches the store.
    const s = await open('full', { worker: false });
    await s.addEmbeddings(Array.from({ length: 30 }, (_, i) => ({ id: 'k' + i, embedding: emb(i + 1, 16) })));
    const proto = IDBObjectStore.prototype;
    const { put, add } = proto;
    proto.put = proto.add = function () { throw new DOMException('Quota exceeded (injected).', 'QuotaExceededError'); };
    const out = {};
    try {
      out.add = await s.addEmbeddings([{ id: 'new', embedding: emb(99, 16) }]).then(() => 'added', (e) => e.code);
      out.deleted = await s.delete(['k0', 'k1', 'k2']).then((n) => n, (e) => e.code);
      out.afterDelete = (await s.stats()).documents;
      out.hits = (await s.searchEmbedding(emb(1, 16), { k: 3 })).map((h) => h.id);
    } finally {
      proto.put = put; proto.add = add;
    }
    await s.close();
    return out;
    `,
  );
  expect(result).toEqual({ add: 'QUOTA_EXCEEDED', deleted: 3, afterDelete: 27, hits: expect.not.arrayContaining(['k0', 'k1', 'k2']) });
  await page.reload();
  const cleared = await inPage<Record<string, unknown>>(
    page,
    `
    const s = await open('full', { worker: false });
    const out = { reopened: (await s.stats()).documents, has: (await s.searchEmbedding(emb(1, 16), { k: 30 })).some((h) => h.id === 'k0') };
    const proto = IDBObjectStore.prototype;
    const { put, add } = proto;
    proto.put = proto.add = function () { throw new DOMException('Quota exceeded (injected).', 'QuotaExceededError'); };
    try {
      out.clear = await s.clear().then(() => 'cleared', (e) => e.code);
      out.afterClear = (await s.stats()).documents;
    } finally {
      proto.put = put; proto.add = add;
    }
    await s.close();
    return out;
    `,
  );
  expect(cleared).toEqual({ reopened: 27, has: false, clear: 'cleared', afterClear: 0 });
  await page.reload();
  const after = await inPage<{ documents: number; added: number }>(
    page,
    `const s = await open('full'); const documents = (await s.stats()).documents; const r = await s.addEmbeddings([{ id: 'x', embedding: emb(5, 8) }]); const out = { documents, added: (await s.stats()).documents }; await s.close(); await lib.deleteIndex('full'); return out;`,
  );
  expect(after).toEqual({ documents: 0, added: 1 });
});

test('a 0-token query embedding is INVALID_MATRIX on the GPU scorer too, not the previous query\'s scores', async ({ page }) => {
  const result = await inPage<{ device: string; reason: string | null; first: number; empty: string; again: number }>(
    page,
    `
    const s = await open(null, { scoring: 'webgpu' });
    await s.addEmbeddings(Array.from({ length: 20 }, (_, i) => ({ id: 'e' + i, embedding: emb(i + 1, 8) })));
    const q = emb(1, 4);
    const first = (await s.searchEmbedding(q, { k: 3 }))[0].score;
    const empty = await s.searchEmbedding({ data: new Float32Array(0), tokens: 0, dim: 128, ids: new Int32Array(0) }, { k: 3 }).then((h) => 'scores ' + h.map((x) => x.score).join(','), (e) => e.code);
    const again = (await s.searchEmbedding(q, { k: 3 }))[0].score;
    const out = { device: s.scoringDevice, reason: s.scoringFallbackReason ?? null, first, empty, again };
    await s.close();
    return out;
    `,
  );
  expect(result.device, result.reason ?? '').toBe('webgpu');
  expect(result.empty).toBe('INVALID_MATRIX');
  expect(result.again).toBeCloseTo(result.first, 4);
});
