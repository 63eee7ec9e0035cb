/**
 * The demo site as users get it: `vite build --mode demo` output (not the dev server), served
 * under a sub-path (/colbert/) by a static server with COOP/COEP, driven like a person would:
 * load the offline test model, upload files, search, read the explanation, reload. Any console
 * error or page error fails the test. Screenshots of the main states go to test-results/demo/.
 */
import { expect, test, type Page } from '@playwright/test';
import { existsSync } from 'node:fs';
import { mkdir } from 'node:fs/promises';
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
  await shot(page, '7-phone');
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
  await page.getByRole('button', { name: 'Clear index' }).click();
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
