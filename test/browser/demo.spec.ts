/**
 * The demo site as users get it: `vite build --mode demo` output (not the dev server), served
 * under a sub-path (/colbert/) by a static server with COOP/COEP, driven like a person would:
 * load the offline test model, upload files, search, read the explanation, reload. Any console
 * error or page error fails the test. Screenshots of the main states go to test-results/demo/.
 */
import { expect, test, type Page } from '@playwright/test';
import { existsSync } from 'node:fs';
import { mkdir, readFile } from 'node:fs/promises';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { resolve } from 'node:path';
import { build } from 'vite';
import { startServer, type TestServer } from '../support/server.ts';
import { HAVE_SHARED, REPO_ROOT, SHARED_MISSING } from '../support/shared.ts';

const SUB_PATH = '/colbert/';
/** The test model again, outside the site: "another model by URL". */
const ELSEWHERE = '/elsewhere/tiny/';
const SHOTS = resolve(REPO_ROOT, 'test-results/demo');

let server: TestServer;
let site: string;

test.describe.configure({ mode: 'serial' });

test.beforeAll(async () => {
  test.skip(!HAVE_SHARED, SHARED_MISSING);
  test.setTimeout(180_000);
  await build({ configFile: resolve(REPO_ROOT, 'vite.config.ts'), mode: 'demo', logLevel: 'warn' });
  expect(existsSync(resolve(REPO_ROOT, 'demo-dist/models/tiny-test/onnx/model.onnx'))).toBe(true);
  // Everything outside the sub-path is a 404: the site must only use relative URLs.
  server = await startServer({
    root: resolve(REPO_ROOT, 'test/fixtures/empty-root'),
    mounts: { [SUB_PATH]: resolve(REPO_ROOT, 'demo-dist'), [ELSEWHERE]: resolve(REPO_ROOT, '.cache/test-models/tjs') },
  });
  site = `${server.url}${SUB_PATH}`;
  await mkdir(SHOTS, { recursive: true });
});

test.afterAll(async () => {
  await server?.close();
});

/** Collects console errors and uncaught page errors; the test fails on any at the end. */
function watchErrors(page: Page): string[] {
  const errors: string[] = [];
  page.on('console', (msg) => {
    if (msg.type() === 'error') errors.push(`console: ${msg.text()}`);
  });
  page.on('pageerror', (err) => errors.push(`pageerror: ${err.message}`));
  return errors;
}

async function shot(page: Page, name: string, fullPage = true): Promise<void> {
  await page.screenshot({ path: resolve(SHOTS, `${name}.png`), fullPage });
}

/** Chooses the offline test model and loads it. */
async function loadTestModel(page: Page): Promise<void> {
  await page.goto(site);
  await expect(page.getByText('test model — matches shared tokens, not a language model')).toBeVisible();
  await page.getByRole('radio', { name: /Offline test model/ }).check();
  await page.getByRole('button', { name: 'Load model' }).click();
  await expect(page.locator('#model-status')).toContainText('Ready', { timeout: 60_000 });
}

const LONG = Array.from({ length: 40 }, (_, i) => `Paragraph ${i + 1} on the history of wind tunnels and the measurement of drag on model aircraft at low speed.`).join('\n\n');

const FILES = [
  { name: 'heat.txt', mimeType: 'text/plain', buffer: Buffer.from('Heat transfer in a hypersonic laminar boundary layer.\n\nThe wall temperature rises with the Mach number.') },
  { name: 'shells.md', mimeType: 'text/markdown', buffer: Buffer.from('# Shells\n\nBuckling of thin cylindrical shells under axial compression.') },
  {
    name: 'wing<img src=x onerror=window.__xss=1>.html',
    mimeType: 'text/html',
    buffer: Buffer.from('<!doctype html><title>Wing</title><body><h1>Swept wings</h1><p>Pressure distribution over a swept wing at supersonic speed.</p><img src=x onerror="window.__xss=1"><script>window.__xss=2</script><p>Shock waves <b>form</b> near the leading edge.</p></body>'),
  },
  { name: 'tunnels.txt', mimeType: 'text/plain', buffer: Buffer.from(LONG) },
  { name: 'café-notes.md', mimeType: 'text/markdown', buffer: Buffer.from('Notes in French: la traînée d’un profil à faible vitesse, café 東京 🚀.') },
];

async function addFiles(page: Page): Promise<void> {
  await page.locator('#file').setInputFiles(FILES);
  await expect(page.locator('#index-status')).toContainText('Indexed 5 documents', { timeout: 90_000 });
}

async function searchFor(page: Page, query: string): Promise<void> {
  const box = page.getByRole('searchbox', { name: 'Search your documents' });
  await box.fill('');
  await box.pressSequentially(query, { delay: 10 });
  await expect(page.locator('#results')).toHaveAttribute('data-query', query, { timeout: 30_000 });
  await expect(page.locator('#search-status')).toContainText(/\d+ results? from/, { timeout: 30_000 });
}

test('load the test model, upload files, search, see highlights and the explanation', async ({ page }) => {
  const errors = watchErrors(page);
  await loadTestModel(page);
  await expect(page.locator('#device')).toContainText(/Model on (WEBGPU|WASM)/);
  await shot(page, '1-model-loaded');

  await addFiles(page);
  const stats = page.locator('#index-stats');
  await expect(stats.locator('[data-stat=sources]')).toHaveText('5');
  // The 40-paragraph file is longer than one passage (511 tokens of text) and is split.
  const passages = Number(await stats.getAttribute('data-passages'));
  expect(passages).toBeGreaterThan(5);
  await shot(page, '2-indexed');

  await searchFor(page, 'buckling of cylindrical shells');
  const first = page.locator('#results li.hit').first();
  await expect(first).toHaveAttribute('data-id', 'shells.md#1');
  await expect(first.locator('mark.match').first()).toBeVisible();
  const marked = await first.locator('mark.match').allTextContents();
  // The test model matches identical tokens: the query's words are marked where they occur.
  expect(marked).toEqual(expect.arrayContaining(['cylindrical', 'shells']));
  await expect(page.locator('#search-status')).toContainText(/query encoding .* scoring/);
  await shot(page, '3-results');

  await first.getByRole('button', { name: 'Why this result?' }).click();
  const table = first.locator('table.explain-table');
  await expect(table).toBeVisible();
  await expect(table.locator('tbody tr').first()).toBeVisible();
  const rows = await table.locator('tbody tr:not(.others) td:first-child').allTextContents();
  expect(rows).toEqual(expect.arrayContaining(['cylindrical', 'shells']));
  const cells = await table.locator('tbody tr:not(.others)').filter({ hasText: 'cylindrical' }).locator('td').allTextContents();
  expect(cells[1]).toBe('cylindrical');
  expect(Number.parseFloat(cells[2]!)).toBeGreaterThan(0.5);
  await shot(page, '4-explanation');

  // A passage from the long file points back to it.
  await searchFor(page, 'Paragraph 33 wind tunnels drag');
  await expect(page.locator('#results li.hit').first()).toContainText(/tunnels\.txt.*passage \d+ of \d+/s);
  expect(errors).toEqual([]);
});

test('document text and file names are shown as text, never run as HTML', async ({ page }) => {
  const errors = watchErrors(page);
  await loadTestModel(page);
  const scriptsBefore = await page.locator('script').count();
  await addFiles(page);
  await page.locator('#paste summary').click();
  await page.locator('#paste-name').fill('<b id="injected-name">bold name</b>');
  await page.locator('#paste-text').fill('Markup test: <img id="injected" src=x onerror="window.__xss=3"> and <script>window.__xss=4</script> plus <b id="injected-b">bold</b> onerror payload.');
  await page.getByRole('button', { name: 'Add text' }).click();
  await expect(page.locator('#index-status')).toContainText('Indexed 1 document');
  await searchFor(page, 'markup onerror payload img script');
  await expect(page.locator('#results li.hit').first()).toHaveAttribute('data-id', '<b id="injected-name">bold name</b>#1');
  await searchFor(page, 'swept wing pressure supersonic');
  const wing = page.locator('#results li.hit').first();
  await expect(wing).toContainText('wing<img src=x onerror=window.__xss=1>.html');
  // The HTML file's text was extracted; its script and image were not.
  await expect(wing.locator('.passage')).toContainText('Pressure distribution over a swept wing');
  await expect(wing.locator('.passage')).not.toContainText('__xss');
  await searchFor(page, 'markup onerror payload img script');
  await expect(page.locator('#results li.hit').first().locator('.passage')).toContainText('<img id="injected" src=x');
  await page.waitForTimeout(300);
  expect(await page.evaluate(() => (window as { __xss?: unknown }).__xss)).toBeUndefined();
  await expect(page.locator('#injected, #injected-b, #injected-name, main img')).toHaveCount(0);
  expect(await page.locator('script').count()).toBe(scriptsBefore);
  await shot(page, '5-markup-as-text');
  expect(errors).toEqual([]);
});

test('keyboard only: load, add the sample, search and open an explanation', async ({ page }) => {
  const errors = watchErrors(page);
  await page.goto(site);
  await expect(page.getByText('test model — matches shared tokens, not a language model')).toBeVisible();
  // Radio group: Tab reaches the checked radio, arrows move the choice; Enter submits the form.
  await page.keyboard.press('Tab'); // skip link
  await page.keyboard.press('Tab');
  await expect(page.getByRole('radio', { name: /ColBERT-Zero/ })).toBeFocused();
  await page.keyboard.press('ArrowDown');
  await expect(page.getByRole('radio', { name: /Offline test model/ })).toBeChecked();
  await page.keyboard.press('Enter');
  await expect(page.locator('#model-status')).toContainText('Ready', { timeout: 60_000 });
  const sample = page.getByRole('button', { name: 'Load sample corpus' });
  for (let i = 0; i < 12 && !(await sample.evaluate((el) => el === document.activeElement)); i++) await page.keyboard.press('Tab');
  await expect(sample).toBeFocused();
  await page.keyboard.press('Enter');
  await expect(page.locator('#index-status')).toContainText('Indexed 5 documents', { timeout: 60_000 });
  // The skip link takes the focus to the search box.
  await page.keyboard.press('Shift+Tab');
  await page.locator('.skip').focus();
  await page.keyboard.press('Enter');
  await expect(page.locator('#query')).toBeFocused();
  await page.keyboard.type('search index kept across reloads in the browser');
  await expect(page.locator('#results li.hit').first()).toHaveAttribute('data-id', 'indexeddb.txt#1', { timeout: 30_000 });
  await page.keyboard.press('Tab');
  await expect(page.locator('#results li.hit').first().getByRole('button', { name: 'Why this result?' })).toBeFocused();
  await page.keyboard.press('Enter');
  await expect(page.locator('#results li.hit').first().locator('table.explain-table')).toBeVisible();
  await shot(page, '6-keyboard');
  expect(errors).toEqual([]);
});

test('phone-sized screen: no horizontal overflow', async ({ page }) => {
  const errors = watchErrors(page);
  await page.setViewportSize({ width: 390, height: 844 });
  await loadTestModel(page);
  await page.getByRole('button', { name: 'Load sample corpus' }).click();
  await expect(page.locator('#index-status')).toContainText('Indexed 5 documents', { timeout: 60_000 });
  await searchFor(page, 'late interaction scores every query token');
  await page.locator('#results li.hit').first().getByRole('button', { name: 'Why this result?' }).click();
  await expect(page.locator('table.explain-table').first()).toBeVisible();
  const overflow = await page.evaluate(() => document.documentElement.scrollWidth - document.documentElement.clientWidth);
  expect(overflow).toBeLessThanOrEqual(0);
  // No token in the table wraps inside itself (a one-word cell draws on one line).
  const broken = await page.locator('table.explain-table').first().evaluate((table) =>
    [...table.querySelectorAll('td.tok')]
      .filter((td) => td.textContent !== null && !/\s/.test(td.textContent.trim()) && td.firstChild)
      .filter((td) => {
        const range = document.createRange();
        range.selectNodeContents(td);
        return new Set([...range.getClientRects()].map((r) => Math.round(r.top))).size > 1;
      })
      .map((td) => td.textContent),
  );
  expect(broken).toEqual([]);
  await page.locator('table.explain-table').first().scrollIntoViewIfNeeded();
  await shot(page, '7-phone');
  await shot(page, '7-phone-table', false);
  expect(errors).toEqual([]);
});

test('the index survives a reload: search again without re-indexing', async ({ page }) => {
  const errors = watchErrors(page);
  await loadTestModel(page);
  const persistent = await page.locator('#index-stats').getAttribute('data-persistent');
  // Needs wip/store (createSearch({ name }) keeping the index in IndexedDB). This library build
  // keeps indexes in memory only, which the page reports; enable once the store lands.
  test.fixme(persistent !== 'true', 'needs the IndexedDB store (wip/store): createSearch({ name }) does not persist in this build');
  await addFiles(page);
  await page.reload();
  // The page reloads the last model by itself and finds the saved index.
  await expect(page.locator('#index-status')).toContainText('Restored the saved index', { timeout: 60_000 });
  await expect(page.locator('#index-progress')).toBeHidden();
  await searchFor(page, 'buckling of cylindrical shells');
  await expect(page.locator('#results li.hit').first()).toHaveAttribute('data-id', 'shells.md#1');
  await expect(page.locator('#results li.hit').first().locator('mark.match').first()).toBeVisible();
  await shot(page, '8-after-reload');
  await page.getByRole('button', { name: 'Clear index…' }).click();
  await page.getByRole('button', { name: 'Delete the index' }).click();
  await expect(page.locator('#index-stats [data-stat=passages]')).toHaveText('0');
  expect(errors).toEqual([]);
});

test('works offline after the first visit (service worker and model cache)', async ({ page, context }) => {
  const errors = watchErrors(page);
  await loadTestModel(page);
  await page.evaluate(async () => {
    await navigator.serviceWorker.ready;
  });
  await expect.poll(() => page.evaluate(() => navigator.serviceWorker.controller !== null), { timeout: 30_000 }).toBe(true);
  // Wait until the app's files are all in the service worker's cache.
  await expect
    .poll(() => page.evaluate(async () => {
      const keys = await caches.keys();
      const app = keys.find((k) => k.startsWith('colbert-demo-app-'));
      return app ? (await (await caches.open(app)).keys()).length : 0;
    }), { timeout: 60_000 })
    .toBeGreaterThanOrEqual(5);
  await context.setOffline(true);
  await page.reload();
  await expect(page.locator('#model-status')).toContainText('Ready', { timeout: 60_000 });
  await page.getByRole('button', { name: 'Load sample corpus' }).click();
  await expect(page.locator('#index-status')).toContainText('Indexed 5 documents', { timeout: 60_000 });
  await searchFor(page, 'graphics processor compute shaders');
  await expect(page.locator('#results li.hit').first()).toHaveAttribute('data-id', 'webgpu.txt#1');
  await context.setOffline(false);
  expect(errors).toEqual([]);
});

test('another model by URL: byte progress while it downloads, size warning before', async ({ page }) => {
  const errors = watchErrors(page);
  await page.goto(site);
  await page.getByRole('radio', { name: /Another model/ }).check();
  await expect(page.locator('#model-note')).toContainText('downloads 150–600 MB once');
  await page.getByRole('textbox', { name: 'Model repo id or URL' }).fill(`${server.url}${ELSEWHERE}`);
  await expect(page.getByRole('button', { name: 'Load model' })).toHaveCount(0);
  const downloads: string[] = [];
  const seen = page.locator('#model-progress-text');
  const watcher = (async () => {
    for (let i = 0; i < 400; i++) {
      const text = await seen.textContent().catch(() => null);
      if (text && text.startsWith('Downloading') && !downloads.includes(text)) downloads.push(text);
      if (await page.locator('#model-status.ok').count()) return;
      await page.waitForTimeout(25);
    }
  })();
  await page.getByRole('button', { name: 'Download and load' }).click();
  await expect(page.locator('#model-status')).toContainText(/Ready: .*MB read/, { timeout: 60_000 });
  await watcher;
  expect(downloads.some((t) => /Downloading: [\d.]+ (kB|MB)/.test(t))).toBe(true);
  expect(errors).toEqual([]);
});

test('indexing shows its rate and can be cancelled; what was indexed stays searchable', async ({ page }) => {
  const errors = watchErrors(page);
  await loadTestModel(page);
  await page.getByRole('button', { name: /Load Cranfield/ }).click();
  const progress = page.locator('#index-progress-text');
  // 1,398 abstracts; the few longer than one passage are split, so a few more passages.
  await expect(progress).toContainText(/\d[\d,]* of 1,[34]\d\d passages · [\d.]+ passages\/s · [\d,]+ tokens\/s/, { timeout: 60_000 });
  await shot(page, '9-indexing', false);
  await page.getByRole('button', { name: 'Cancel' }).click();
  await expect(page.locator('#index-status')).toContainText('Cancelled: indexed', { timeout: 60_000 });
  const passages = Number(await page.locator('#index-stats').getAttribute('data-passages'));
  expect(passages).toBeGreaterThan(0);
  expect(passages).toBeLessThan(1398);
  await searchFor(page, 'boundary layer');
  await expect(page.locator('#results li.hit').first()).toContainText('cranfield-');
  expect(errors).toEqual([]);
});

// ------------------------------------------------------------ issue 14: the first visitor

/** Adds files and waits until the indexing message is final (no progress bar). */
async function upload(page: Page, files: { name: string; mimeType: string; buffer: Buffer }[]): Promise<string> {
  const status = page.locator('#index-status');
  // The demo counts finished add-files jobs; waiting for the next count waits for this job's own
  // message (the files are read and sniffed before indexing starts, so "no progress bar" alone
  // can still be the message from before).
  const jobs = Number((await status.getAttribute('data-jobs')) ?? '0');
  await page.locator('#file').setInputFiles(files);
  await expect(status).toHaveAttribute('data-jobs', String(jobs + 1), { timeout: 90_000 });
  await expect(status).toHaveAttribute('aria-busy', 'false');
  await expect(page.locator('#index-progress')).toBeHidden();
  return (await status.textContent()) ?? '';
}

async function loadSample(page: Page): Promise<void> {
  await page.getByRole('button', { name: 'Load sample corpus' }).click();
  await expect(page.locator('#index-status')).toContainText('Indexed 5 documents', { timeout: 60_000 });
}

const text = (name: string, body: string) => ({ name, mimeType: 'text/plain', buffer: Buffer.from(body) });

test('1. the model notes say what the library does: safetensors checkpoints are converted in the browser', async ({ page }) => {
  const errors = watchErrors(page);
  await page.goto(site);
  const note = page.locator('#model-note');
  await expect(note).toContainText('safetensors');
  await expect(note).not.toContainText('needs an ONNX export');
  await page.getByRole('radio', { name: /Another model/ }).check();
  await expect(note).toContainText('Any PyLate checkpoint works: its ONNX export when the repository has one, otherwise its safetensors weights, converted here in the browser');
  await expect(note).not.toContainText('with an ONNX export works');
  await expect(page.locator('label.choice').filter({ hasText: 'Another model' })).toContainText('ONNX export or safetensors');
  expect(errors).toEqual([]);
});

test('2. a binary file renamed .txt is skipped with the reason, the others are indexed', async ({ page }) => {
  const errors = watchErrors(page);
  await loadTestModel(page);
  const elf = Buffer.alloc(4096);
  Buffer.from([0x7f, 0x45, 0x4c, 0x46, 2, 1, 1, 0]).copy(elf, 0);
  Buffer.from([2, 0, 0x3e, 0, 1, 0, 0, 0]).copy(elf, 16);
  for (let i = 64; i < elf.length; i++) elf[i] = (i * 7919) % 251;
  const png = Buffer.from('89504e470d0a1a0a0000000d4948445200000001000000010806000000', 'hex');
  const status = await upload(page, [
    { name: 'x.txt', mimeType: 'text/plain', buffer: elf },
    { name: 'photo.md', mimeType: 'text/markdown', buffer: png },
    FILES[0]!,
  ]);
  expect(status).toContain('Indexed 1 document: 1 passage');
  expect(status).toContain('Skipped 2 files: x.txt is an ELF executable, not text; photo.md is a PNG image, not text.');
  await expect(page.locator('#index-stats [data-stat=sources]')).toHaveText('1');
  await expect(page.locator('#index-stats [data-stat=passages]')).toHaveText('1');
  await shot(page, '10-binary-skipped');
  expect(errors).toEqual([]);
});

test('3. a long line without punctuation: split between words, with progress, and the time includes splitting', async ({ page }) => {
  const errors = watchErrors(page);
  await loadTestModel(page);
  // About 60 kB on one line, no sentence punctuation.
  const words = Array.from({ length: 9000 }, (_, i) => `kw${i}x`);
  await page.evaluate(() => {
    const seen: string[] = [];
    (window as { __seen?: string[] }).__seen = seen;
    const target = document.getElementById('index-progress-text')!;
    new MutationObserver(() => seen.push(target.textContent ?? '')).observe(target, { childList: true, characterData: true, subtree: true });
  });
  const status = await upload(page, [text('one-line.txt', words.join(' '))]);
  const seen = await page.evaluate(() => (window as { __seen?: string[] }).__seen ?? []);
  const percents = seen.map((t) => /^Splitting one-line\.txt into passages: (\d+)%/.exec(t)?.[1]).filter((p) => p !== undefined).map(Number);
  expect(percents.some((p) => p > 0 && p < 100)).toBe(true);
  const times = /Indexed 1 document: ([\d,]+) passages, [\d,]+ token vectors in ([\d.]+) s \(splitting ([\d.]+) s, encoding ([\d.]+) s\)/.exec(status);
  expect(times, status).not.toBeNull();
  const [total, split, encode] = [Number(times![2]), Number(times![3]), Number(times![4])];
  expect(Math.abs(total - split - encode)).toBeLessThanOrEqual(0.15);
  expect(Number(times![1]!.replace(/,/g, ''))).toBeGreaterThan(20);
  // Every passage shown is whole words: kwNx, never a piece of one.
  for (const query of ['kw17x kw18x', 'kw4500x kw4501x', 'kw8998x']) {
    await searchFor(page, query);
    const passages = await page.locator('#results li.hit .passage').allTextContents();
    expect(passages.length).toBeGreaterThan(0);
    for (const p of passages) expect(p).toMatch(/^kw\d+x( kw\d+x)*$/);
  }
  expect(errors).toEqual([]);
});

test('4. an empty file is reported once', async ({ page }) => {
  const errors = watchErrors(page);
  await loadTestModel(page);
  let status = await upload(page, [text('empty.txt', ''), FILES[0]!]);
  expect(status.match(/empty\.txt/g)).toHaveLength(1);
  expect(status).toContain('Indexed 1 document');
  expect(status).toContain('Skipped 1 file: empty.txt: no text in it.');
  status = await upload(page, [text('empty.txt', '  \n\n ')]);
  expect(status).toBe('Skipped 1 file: empty.txt: no text in it.');
  await expect(page.locator('#index-status')).toHaveClass(/error/);
  expect(errors).toEqual([]);
});

test('5. re-adding an unchanged file says it was already indexed and skipped', async ({ page }) => {
  const errors = watchErrors(page);
  await loadTestModel(page);
  const tunnels = FILES[3]!;
  const first = await upload(page, [tunnels]);
  const passages = /Indexed 1 document: (\d+) passages/.exec(first)?.[1];
  expect(Number(passages)).toBeGreaterThan(1);
  const again = await upload(page, [tunnels]);
  expect(again).toBe(`Already indexed and unchanged, so skipped: tunnels.txt (${passages} passages, nothing re-encoded).`);
  expect(again).not.toContain('0 token vectors');
  // A changed file among unchanged ones is indexed; the unchanged one is counted as skipped.
  const mixed = await upload(page, [tunnels, text('new.txt', 'A new note about laminar flow.')]);
  expect(mixed).toMatch(new RegExp(`Indexed 2 documents: ${Number(passages) + 1} passages \\(${passages} already indexed and unchanged, skipped\\)`));
  expect(errors).toEqual([]);
});

test('6. "Clear index" asks first, empties the search box, and can be undone', async ({ page }) => {
  const errors = watchErrors(page);
  await loadTestModel(page);
  await loadSample(page);
  await searchFor(page, 'graphics processor');
  await page.getByRole('button', { name: 'Clear index…' }).click();
  const dialog = page.getByRole('alertdialog');
  await expect(dialog).toBeVisible();
  await expect(dialog).toContainText('Delete the whole index: 5 documents, 5 passages, about');
  await expect(page.getByRole('button', { name: 'Keep it' })).toBeFocused();
  await shot(page, '11-clear-confirm', false);
  await page.getByRole('button', { name: 'Keep it' }).click();
  await expect(dialog).toBeHidden();
  await expect(page.locator('#index-stats [data-stat=passages]')).toHaveText('5');
  // Escape keeps it too.
  await page.getByRole('button', { name: 'Clear index…' }).click();
  await expect(dialog).toBeVisible();
  await page.keyboard.press('Escape');
  await expect(dialog).toBeHidden();
  await expect(page.locator('#index-stats [data-stat=passages]')).toHaveText('5');
  await expect(page.locator('#results li.hit')).not.toHaveCount(0);
  await page.getByRole('button', { name: 'Clear index…' }).click();
  await page.getByRole('button', { name: 'Delete the index' }).click();
  await expect(page.locator('#index-stats [data-stat=passages]')).toHaveText('0');
  await expect(page.locator('#query')).toHaveValue('');
  await expect(page.locator('#query')).toBeDisabled();
  await expect(page.locator('#results li.hit')).toHaveCount(0);
  await expect(page.getByRole('button', { name: 'Undo: restore the index' })).toBeFocused();
  await page.keyboard.press('Enter');
  await expect(page.locator('#index-status')).toContainText('Restored the index: 5 passages');
  await expect(page.locator('#index-stats [data-stat=sources]')).toHaveText('5');
  await searchFor(page, 'graphics processor compute shaders');
  await expect(page.locator('#results li.hit').first()).toHaveAttribute('data-id', 'webgpu.txt#1');
  await expect(page.getByRole('button', { name: 'Undo: restore the index' })).toBeHidden();
  expect(errors).toEqual([]);
});

test('7. a failed "Another model" load keeps the working model and its index', async ({ page }) => {
  const errors = watchErrors(page);
  await loadTestModel(page);
  await loadSample(page);
  await page.getByRole('radio', { name: /Another model/ }).check();
  await page.getByRole('textbox', { name: 'Model repo id or URL' }).fill(`${server.url}/no-such-model/`);
  await page.getByRole('button', { name: 'Download and load' }).click();
  const status = page.locator('#model-status');
  await expect(status).toHaveClass(/error/, { timeout: 60_000 });
  await expect(status).toContainText(`Loading failed: MODEL_NOT_FOUND: No model found at ${server.url}/no-such-model/`);
  await expect(status).toContainText('Still using the offline test model, with its index as it was.');
  await expect(page.locator('#query')).toBeEnabled();
  await expect(page.locator('#index-stats [data-stat=passages]')).toHaveText('5');
  await expect(page.locator('#docs-controls')).toBeEnabled();
  await searchFor(page, 'graphics processor compute shaders');
  await expect(page.locator('#results li.hit').first()).toHaveAttribute('data-id', 'webgpu.txt#1');
  await shot(page, '12-model-failed');
  expect(errors).toEqual([]);
});

test('8. a model URL on a server that answers with an HTML page: "not found", with the URL', async ({ page }) => {
  const errors = watchErrors(page);
  // A single-page-app host: every path is its index.html, HTTP 200.
  const spa = createServer((_req, res) => {
    res.writeHead(200, { 'content-type': 'text/html; charset=utf-8', 'access-control-allow-origin': '*', 'cross-origin-resource-policy': 'cross-origin' });
    res.end('<!doctype html><html><head><title>My app</title></head><body><div id="root"></div></body></html>');
  });
  await new Promise<void>((done) => spa.listen(0, '127.0.0.1', done));
  try {
    const url = `http://127.0.0.1:${(spa.address() as AddressInfo).port}/models/mine/`;
    await page.goto(site);
    await page.getByRole('radio', { name: /Another model/ }).check();
    await page.getByRole('textbox', { name: 'Model repo id or URL' }).fill(url);
    await page.getByRole('button', { name: 'Download and load' }).click();
    const status = page.locator('#model-status');
    await expect(status).toHaveClass(/error/, { timeout: 60_000 });
    await expect(status).toContainText('MODEL_NOT_FOUND');
    await expect(status).toContainText(new RegExp(`\\S+\\.json at ${url.replace(/[.]/g, '\\.')}\\S+\\.json was not found: the server answered with an HTML page where JSON was expected`));
    await expect(status).not.toContainText('Unexpected token');
    await shot(page, '13-model-html');
  } finally {
    // The page keeps its connections alive: close them, or close() waits for them to time out.
    spa.closeAllConnections();
    await new Promise<void>((done) => spa.close(() => done()));
  }
  expect(errors).toEqual([]);
});

test('9. sizes say which figure is an estimate and whose it is', async ({ page }) => {
  const errors = watchErrors(page);
  await loadTestModel(page);
  await addFiles(page);
  await expect(page.locator('#index-stats [data-stat=tokens]')).toContainText(/^[\d,]+ \((fp32|fp16|int8), \d+ bytes each\)$/);
  const size = page.locator('#index-stats [data-stat=bytes]');
  await expect(size).toContainText(/^about [\d.]+ (kB|MB) \(estimate\): [\d.]+ (kB|MB) of token vectors \(exact\) \+ about [\d.]+ (kB|MB|B) of texts, ids and metadata \(estimated, uncompressed\)$/);
  await expect(page.locator('#index-stats')).not.toContainText('on disk (this site uses');
  const site = page.locator('#index-stats [data-stat=site]');
  await expect(site).toContainText(/used of [\d.]+ (MB|GB) \(the browser's figure for this whole site, model files included\)/);
  // The index estimate above the browser's figure for the whole site is explained, not left to puzzle.
  const parse = (t: string) => {
    const m = /([\d.]+) (B|kB|MB|GB)/.exec(t)!;
    return Number(m[1]) * { B: 1, kB: 1e3, MB: 1e6, GB: 1e9 }[m[2] as 'B']!;
  };
  const index = parse((await size.textContent())!);
  const used = parse((await site.textContent())!);
  if (index > used) await expect(page.locator('#size-note')).toContainText('the browser compresses what it stores');
  else await expect(page.locator('#size-note')).toBeHidden();
  expect(errors).toEqual([]);
});

test('10. highlights: whole words, no weak matches, every result, whole lines with a scroll cue', async ({ page }) => {
  const errors = watchErrors(page);
  await loadTestModel(page);
  await addFiles(page);
  await loadSample(page);
  await page.locator('#paste summary').click();
  await page.locator('#paste-name').fill('license.txt');
  await page.locator('#paste-text').fill('This program is under the GNU Affero General Public License, a free software license for gnu tools.');
  await page.getByRole('button', { name: 'Add text' }).click();
  await expect(page.locator('#index-status')).toContainText('Indexed 1 document');
  // "Affero" is two tokens (Aff|ero): one mark for the word.
  await searchFor(page, 'the GNU Affero license');
  const license = page.locator('#results li.hit[data-id="license.txt#1"]');
  await expect(license.locator('.passage')).toHaveAttribute('data-highlighted', 'true');
  const marks = await license.locator('mark.match').allTextContents();
  expect(marks).toContain('Affero');
  expect(marks).not.toContain('Aff');
  expect(marks).not.toContain('ero');
  // A query word the passage lacks ("zebra") marks nothing (its best match is weak).
  await searchFor(page, 'thin shells zebra');
  const shells = page.locator('#results li.hit[data-id="shells.md#1"]');
  await expect(shells.locator('.passage')).toHaveAttribute('data-highlighted', 'true');
  expect(await shells.locator('mark.match').allTextContents()).toEqual(['thin', 'shells']);
  await expect(page.locator('#highlight-legend')).toContainText('similarity of 0.50 or more');
  await expect(page.locator('#highlight-legend')).toContainText('Every result is marked as it comes into view');
  // Every result is highlighted once seen, not only the first three.
  await searchFor(page, 'wind tunnels drag speed wall shells');
  const hits = page.locator('#results li.hit');
  await expect(hits).toHaveCount(10);
  await hits.last().scrollIntoViewIfNeeded();
  await expect(hits.last().locator('.passage')).toHaveAttribute('data-highlighted', 'true');
  // A long passage shows whole lines and says that there is more below.
  const long = page.locator('#results li.hit[data-id^="tunnels.txt"]').first().locator('.passage');
  await long.scrollIntoViewIfNeeded();
  await expect(long).toHaveClass(/scrolls/);
  const lines = await long.evaluate((el) => el.clientHeight / Number.parseFloat(getComputedStyle(el).lineHeight));
  expect(Math.abs(lines - Math.round(lines))).toBeLessThan(0.02);
  const cue = page.locator('#results li.hit[data-id^="tunnels.txt"]').first().locator('.more-cue');
  await long.evaluate((el) => (el.scrollTop = 0));
  await expect(cue).toBeVisible();
  await expect(cue).toContainText('More of this passage below');
  await shot(page, '14-highlights', false);
  await long.evaluate((el) => (el.scrollTop = el.scrollHeight));
  await expect(cue).toBeHidden();
  expect(errors).toEqual([]);
});

test('11. the paste box says how text becomes passages, and it does so', async ({ page }) => {
  const errors = watchErrors(page);
  await loadTestModel(page);
  await page.locator('#paste summary').click();
  const hint = page.locator('#paste-hint');
  await expect(hint).toContainText(/of up to [\d,]+ tokens each .*short paragraphs are packed together into one passage/);
  await expect(page.locator('#paste-text')).not.toHaveAttribute('placeholder', /paragraphs become passages/);
  await page.locator('#paste-text').fill('First short paragraph.\n\nSecond short paragraph.\n\nThird short paragraph.');
  await page.getByRole('button', { name: 'Add text' }).click();
  await expect(page.locator('#index-status')).toContainText('Indexed 1 document: 1 passage,');
  expect(errors).toEqual([]);
});

test('export the index to a file and import it back; a damaged file changes nothing', async ({ page }) => {
  const errors = watchErrors(page);
  await loadTestModel(page);
  await loadSample(page);
  const [download] = await Promise.all([page.waitForEvent('download'), page.getByRole('button', { name: 'Export index' }).click()]);
  expect(download.suggestedFilename()).toBe('colbert-demo-test-model.cbwidx');
  const file = await readFile((await download.path())!);
  expect(file.byteLength).toBeGreaterThan(1000);
  await expect(page.locator('#index-status')).toContainText('Exported the index');
  await page.getByRole('button', { name: 'Clear index…' }).click();
  await page.getByRole('button', { name: 'Delete the index' }).click();
  await expect(page.locator('#index-stats [data-stat=passages]')).toHaveText('0');
  await page.locator('#import-file').setInputFiles({ name: 'mine.cbwidx', mimeType: 'application/octet-stream', buffer: file });
  await expect(page.locator('#index-status')).toContainText('Imported mine.cbwidx: 5 documents, 5 passages', { timeout: 30_000 });
  await expect(page.locator('#index-stats [data-stat=sources]')).toHaveText('5');
  await searchFor(page, 'graphics processor compute shaders');
  await expect(page.locator('#results li.hit').first()).toHaveAttribute('data-id', 'webgpu.txt#1');
  await expect(page.locator('#results li.hit').first().locator('mark.match').first()).toBeVisible();
  const damaged = Buffer.from(file);
  damaged[Math.floor(damaged.length / 2)]! ^= 0xff;
  await page.locator('#import-file').setInputFiles({ name: 'damaged.cbwidx', mimeType: 'application/octet-stream', buffer: damaged });
  await expect(page.locator('#index-status')).toContainText('damaged.cbwidx was not imported, the index is unchanged: INDEX_CORRUPT', { timeout: 30_000 });
  await expect(page.locator('#index-stats [data-stat=passages]')).toHaveText('5');
  await shot(page, '15-import-damaged');
  expect(errors).toEqual([]);
});

test('12. "In" a chosen file: results come only from that file, and the choice lists the files indexed', async ({ page }) => {
  const errors = watchErrors(page);
  await loadTestModel(page);
  await addFiles(page);
  const files = page.getByRole('combobox', { name: 'In' });
  const options = await files.locator('option').allTextContents();
  expect(options[0]).toBe('All files');
  expect([...options.slice(1)].sort()).toEqual(FILES.map((f) => f.name).sort());
  await searchFor(page, 'buckling of cylindrical shells');
  await expect(page.locator('#results li.hit').first()).toHaveAttribute('data-id', 'shells.md#1');
  // Choosing a file searches again, in that file only.
  await files.selectOption('tunnels.txt');
  await expect(page.locator('#results')).toHaveAttribute('data-filter', 'tunnels.txt', { timeout: 30_000 });
  await expect(page.locator('#search-status')).toContainText(/\d+ results from \d+ passages of tunnels\.txt/);
  const ids = await page.locator('#results li.hit').evaluateAll((els) => els.map((el) => el.getAttribute('data-id')));
  expect(ids.length).toBeGreaterThan(1);
  for (const id of ids) expect(id).toMatch(/^tunnels\.txt#\d+$/);
  const sources = await page.locator('#results li.hit .source').allTextContents();
  expect(new Set(sources)).toEqual(new Set(['tunnels.txt']));
  // A file name that is markup is an option's text, and filtering by it works.
  await files.selectOption('wing<img src=x onerror=window.__xss=1>.html');
  await expect(page.locator('#results li.hit')).toHaveCount(1, { timeout: 30_000 });
  await expect(page.locator('#results li.hit').first()).toHaveAttribute('data-id', 'wing<img src=x onerror=window.__xss=1>.html#1');
  await shot(page, '16-filter-by-file', false);
  await files.selectOption('');
  await expect(page.locator('#results')).toHaveAttribute('data-filter', '', { timeout: 30_000 });
  await expect(page.locator('#results li.hit').first()).toHaveAttribute('data-id', 'shells.md#1');
  expect(errors).toEqual([]);
});

test('13. Semantic / Lexical / Hybrid ranking, and the lexical terms in "Why this result?"', async ({ page }) => {
  const errors = watchErrors(page);
  await loadTestModel(page);
  await addFiles(page);
  // Semantic scores every passage; "zebra" is in none, so it still returns k results.
  await searchFor(page, 'buckled shell zebra');
  const hits = page.locator('#results li.hit');
  const semantic = await hits.count();
  expect(semantic).toBeGreaterThan(1);
  await expect(page.locator('#results')).toHaveAttribute('data-mode', 'semantic');
  // Lexical (BM25, stemmed): only the passage with the words "buckling" / "shells" matches.
  await page.getByRole('radio', { name: 'Lexical' }).check();
  await expect(page.locator('#results')).toHaveAttribute('data-mode', 'lexical', { timeout: 30_000 });
  await expect(hits).toHaveCount(1);
  await expect(hits.first()).toHaveAttribute('data-id', 'shells.md#1');
  await expect(hits.first().locator('.score')).toHaveAttribute('title', /BM25/);
  await expect(page.locator('#search-status')).toContainText('lexical search');
  await hits.first().getByRole('button', { name: 'Why this result?' }).click();
  const terms = hits.first().locator('.lexical-terms');
  await expect(terms).toContainText(/Lexical \(BM25\) score [\d.]+ from the words/);
  expect(await terms.locator('code.term').allTextContents()).toEqual(expect.arrayContaining(['buckl', 'shell']));
  await shot(page, '17-lexical-terms', false);
  // Hybrid: both rankings fused with reciprocal ranks (the library's default): small scores, shells first.
  await page.getByRole('radio', { name: 'Hybrid' }).check();
  await expect(page.locator('#results')).toHaveAttribute('data-mode', 'hybrid', { timeout: 30_000 });
  expect(await hits.count()).toBeGreaterThan(1);
  await expect(hits.first()).toHaveAttribute('data-id', 'shells.md#1');
  const fused = Number(await hits.first().locator('.score').textContent());
  expect(fused).toBeGreaterThan(0);
  expect(fused).toBeLessThanOrEqual(2 / 61 + 1e-4);
  await expect(hits.first().locator('.score')).toHaveAttribute('title', /reciprocal rank fusion/);
  // Back to semantic: MaxSim scores again.
  await page.getByRole('radio', { name: 'Semantic' }).check();
  await expect(page.locator('#results')).toHaveAttribute('data-mode', 'semantic', { timeout: 30_000 });
  expect(Number(await hits.first().locator('.score').textContent())).toBeGreaterThan(1);
  expect(errors).toEqual([]);
});

test('14. opt-in compressed index: untrained below 4,096 tokens, then bytes per token against fp32; search still right', async ({ page }) => {
  const errors = watchErrors(page);
  await page.goto(site);
  await page.getByRole('radio', { name: /Offline test model/ }).check();
  await page.getByRole('checkbox', { name: /Compressed index \(experimental\)/ }).check();
  await page.getByRole('button', { name: 'Load model' }).click();
  await expect(page.locator('#model-status')).toContainText('Ready', { timeout: 60_000 });
  await page.getByRole('button', { name: 'Load sample corpus' }).click();
  await expect(page.locator('#index-status')).toContainText('Indexed 5 documents', { timeout: 60_000 });
  const row = page.locator('#index-stats [data-stat=compression]');
  await expect(row).toContainText(/^not trained yet: searched exhaustively until the index holds 4,096 tokens \(now [\d,]+\)$/);
  // Enough text to cross 4,096 tokens: the add that crosses it trains the codes.
  const many = Array.from({ length: 400 }, (_, i) => `Section ${i + 1} on the calibration of pressure probes and the drag of bluff bodies in a water tunnel.`).join('\n\n');
  await page.locator('#file').setInputFiles([...FILES, { name: 'probes.txt', mimeType: 'text/plain', buffer: Buffer.from(many) }]);
  await expect(page.locator('#index-status')).toContainText('Indexed 6 documents', { timeout: 120_000 });
  await expect(page.locator('#index-stats')).toHaveAttribute('data-compression', 'ready', { timeout: 60_000 });
  const text = (await row.textContent())!;
  const m = /^\d-bit codes, [\d,]+ centroids: ([\d.]+) bytes per token, against (\d+) for fp32 \(([\d.]+)× smaller: .* less than fp32 vectors would take\)\. The full vectors stay stored beside the codes for reranking/.exec(text);
  expect(m, text).not.toBeNull();
  const [perToken, fp32, ratio] = [Number(m![1]), Number(m![2]), Number(m![3])];
  expect(perToken).toBeGreaterThan(0);
  expect(perToken).toBeLessThan(fp32);
  expect(Math.abs(fp32 / perToken - ratio)).toBeLessThan(0.1);
  await expect(page.locator('#index-stats [data-stat=tokens]')).toContainText(/^[\d,]+ \((fp32|fp16|int8), \d+ bytes each\)$/);
  // The stored vectors in the size estimate exclude the in-memory codes: texts and metadata are not "0 B".
  await expect(page.locator('#index-stats [data-stat=bytes]')).not.toContainText('about 0 B of texts');
  await shot(page, '18-compressed', false);
  // Through the codes (reranked exactly), with and without a file filter.
  await searchFor(page, 'buckling of cylindrical shells');
  await expect(page.locator('#results li.hit').first()).toHaveAttribute('data-id', 'shells.md#1');
  await page.getByRole('combobox', { name: 'In' }).selectOption('probes.txt');
  await expect(page.locator('#results')).toHaveAttribute('data-filter', 'probes.txt', { timeout: 30_000 });
  for (const id of await page.locator('#results li.hit').evaluateAll((els) => els.map((el) => el.getAttribute('data-id')))) expect(id).toMatch(/^probes\.txt#\d+$/);
  expect(errors).toEqual([]);
});
