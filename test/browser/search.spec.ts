/**
 * The library end to end in Debian Chromium: the built dist/, the default Web Worker path, the
 * generated test model fetched Hub-style from the local server, WebGPU (SwiftShader) and WASM.
 */
import { expect, test, type Page } from '@playwright/test';
import { harnessUrl, libraryBuildMissing, testHubUrl, testModelsMissing, TEST_HUB_REPO } from '../support/browser.ts';

const IN_CI = !!process.env['CI'];

test.beforeEach(async ({ page }) => {
  const missing = libraryBuildMissing() ?? testModelsMissing();
  test.skip(missing !== null, missing ?? '');
  page.on('pageerror', (err) => console.error(`[page error] ${err.message}`));
  await page.goto(harnessUrl());
});

/** Runs `body` in the page with the library imported as `lib` and shared options. */
async function inPage<T>(page: Page, body: string): Promise<T> {
  return page.evaluate(
    async ({ body, hubUrl, repo }) => {
      const entry = '/dist/index.js'; // served by the test server; not a module TypeScript resolves
      const lib = await import(/* @vite-ignore */ entry);
      const fn = new Function('lib', 'hubUrl', 'repo', `return (async () => { ${body} })();`);
      return fn(lib, hubUrl, repo);
    },
    { body, hubUrl: testHubUrl(), repo: TEST_HUB_REPO },
  ) as Promise<T>;
}

const CORPUS = `[
  { id: 'wing', text: 'Pressure distribution over a swept wing at supersonic speed.', metadata: { title: 'Wing' } },
  { id: 'heat', text: 'Heat transfer in a hypersonic laminar boundary layer.', metadata: { title: 'Heat' } },
  { id: 'shell', text: 'Buckling of thin cylindrical shells under axial compression.', metadata: { title: 'Shell' } },
]`;

test('worker path: loads from a Hub-like URL with progress, adds, searches, deletes', async ({ page }) => {
  const result = await inPage<{
    device: string;
    dtype: string;
    fallbackReason: string | null;
    progress: string[];
    downloadBytes: number;
    top: string[];
    topMeta: unknown;
    afterDelete: string[];
    stats: { documents: number; tokens: number };
    runtime: string;
    transformers: string;
  }>(
    page,
    `
    const progress = [];
    let downloadBytes = 0;
    const search = await lib.createSearch({
      model: repo, hubUrl, revision: 'main',
      onProgress: (p) => { progress.push(p.status); if (p.status === 'download' && p.total) downloadBytes = Math.max(downloadBytes, p.loaded); },
    });
    await search.add(${CORPUS});
    const hits = await search.search('buckling of cylindrical shells', { k: 2 });
    await search.delete(['shell']);
    const after = await search.search('buckling of cylindrical shells', { k: 10 });
    const stats = await search.stats();
    const out = { device: search.device, dtype: search.dtype, fallbackReason: search.fallbackReason ?? null, progress, downloadBytes,
      top: hits.map((h) => h.id), topMeta: hits[0].metadata, afterDelete: after.map((h) => h.id), stats,
      runtime: search.info.runtime, transformers: search.info.transformers };
    await search.close();
    return out;
    `,
  );
  expect(result.top[0]).toBe('shell');
  expect(result.top).toHaveLength(2);
  expect(result.topMeta).toEqual({ title: 'Shell' });
  expect(result.afterDelete.sort()).toEqual(['heat', 'wing']);
  expect(result.stats.documents).toBe(2);
  expect(result.progress).toContain('download');
  expect(result.progress.at(-1)).toBe('ready');
  expect(result.downloadBytes).toBeGreaterThan(1_000_000);
  // The worker runs the graph through @huggingface/transformers' browser build, on onnxruntime-web.
  expect(result.runtime).toBe('onnxruntime-web');
  expect(result.transformers).toMatch(/^4\.3\./);
  if (IN_CI) {
    // SwiftShader gives an adapter in CI: 'auto' must pick WebGPU, with fp32 (no shader-f16 there).
    expect(result.device).toBe('webgpu');
    expect(result.dtype).toBe('fp32');
  }
  console.log(`[search] auto picked ${result.device}/${result.dtype}${result.fallbackReason ? ` (${result.fallbackReason})` : ''}`);
});

test('WebGPU and WASM give the same token vectors (fp32)', async ({ page }) => {
  const result = await inPage<{ webgpu: string; maxDiff: number; sameIds: boolean; rows: number } | { skipped: string }>(
    page,
    `
    const caps = await lib.detectCapabilities();
    if (!caps.webgpu) return { skipped: caps.webgpuReason };
    const gpu = await lib.createSearch({ model: repo, hubUrl, device: 'webgpu', dtype: 'fp32' });
    const cpu = await lib.createSearch({ model: repo, hubUrl, device: 'wasm', dtype: 'fp32' });
    const text = 'Shock wave and boundary layer interaction on a flat plate at Mach 2.';
    const [a] = await gpu.encodeDocuments([text]);
    const [b] = await cpu.encodeDocuments([text]);
    let maxDiff = 0;
    for (let i = 0; i < a.data.length; i++) maxDiff = Math.max(maxDiff, Math.abs(a.data[i] - b.data[i]));
    const out = { webgpu: gpu.device, maxDiff, sameIds: a.ids.join() === b.ids.join(), rows: a.tokens };
    await Promise.all([gpu.close(), cpu.close()]);
    return out;
    `,
  );
  if ('skipped' in result) {
    expect(IN_CI, `no WebGPU adapter in CI: ${result.skipped}`).toBe(false);
    test.skip(true, `no WebGPU here: ${result.skipped}`);
    return;
  }
  expect(result.webgpu).toBe('webgpu');
  expect(result.sameIds).toBe(true);
  expect(result.rows).toBeGreaterThan(10);
  expect(result.maxDiff).toBeLessThan(1e-4);
});

test('coded errors cross the worker boundary and leave the index unchanged', async ({ page }) => {
  const result = await inPage<Record<string, unknown>>(
    page,
    `
    const search = await lib.createSearch({ model: repo, hubUrl, device: 'wasm' });
    await search.add(${CORPUS});
    const codes = {};
    const attempt = async (name, fn) => { try { await fn(); codes[name] = 'no error'; } catch (e) { codes[name] = (e instanceof lib.ColbertError ? '' : 'not-ColbertError:') + e.code; } };
    await attempt('duplicate', () => search.add([{ id: 'a', text: 'x' }, { id: 'a', text: 'y' }]));
    await attempt('empty', () => search.add([{ id: 'b', text: '' }]));
    await attempt('k', () => search.search('wing', { k: -1 }));
    await attempt('dim', () => search.addEmbeddings([{ id: 'e', embedding: { data: new Float32Array(8), tokens: 1, dim: 8, ids: new Int32Array(1) } }]));
    await attempt('unknown', () => search.delete(['nope']));
    const stats = await search.stats();
    await search.close();
    await attempt('closed', () => search.search('wing'));
    await attempt('missing', () => lib.createSearch({ model: 'colbert-web-test/does-not-exist', hubUrl }));
    return { ...codes, documents: stats.documents };
    `,
  );
  expect(result).toEqual({
    duplicate: 'DUPLICATE_ID',
    empty: 'EMPTY_TEXT',
    k: 'INVALID_K',
    dim: 'DIMENSION_MISMATCH',
    unknown: 'UNKNOWN_ID',
    closed: 'CLOSED',
    missing: 'MODEL_NOT_FOUND',
    documents: 3,
  });
});

test('a second visit loads the model from Cache Storage with the network gone', async ({ page }) => {
  await inPage(page, `const s = await lib.createSearch({ model: repo, hubUrl, device: 'wasm' }); await s.close();`);
  await page.reload();
  // From now on every model request fails as if offline.
  let blocked = 0;
  await page.route('**/hub/**', (route) => {
    blocked++;
    return route.abort('internetdisconnected');
  });
  const result = await inPage<{ cached: number; downloads: number; top: string }>(
    page,
    `
    let cached = 0, downloads = 0;
    const s = await lib.createSearch({ model: repo, hubUrl, device: 'wasm', onProgress: (p) => { if (p.status === 'cached') cached++; if (p.status === 'download') downloads++; } });
    await s.add(${CORPUS});
    const [hit] = await s.search('hypersonic heat transfer', { k: 1 });
    await s.close();
    return { cached, downloads, top: hit.id };
    `,
  );
  expect(result.downloads).toBe(0);
  expect(result.cached).toBeGreaterThan(3);
  expect(result.top).toBe('heat');
  // Probes for files the model does not have (absent dtypes, modules) may still reach the network.
  console.log(`[search] offline reload: ${result.cached} files from cache, ${blocked} requests blocked`);
});

test('in-thread mode (worker: false) in the page gives the same ranking', async ({ page }) => {
  const result = await inPage<string[]>(
    page,
    `
    const s = await lib.createSearch({ model: repo, hubUrl, device: 'wasm', worker: false });
    await s.add(${CORPUS});
    const hits = await s.search('swept wing pressure', { k: 3 });
    await s.close();
    return hits.map((h) => h.id);
    `,
  );
  expect(result[0]).toBe('wing');
  expect(result).toHaveLength(3);
});
