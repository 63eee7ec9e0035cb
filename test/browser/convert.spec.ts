/**
 * Conversion in the browser: a safetensors-only tiny PyLate ModernBERT checkpoint served Hub-style
 * is downloaded with progress and converted inside the Web Worker, its vectors agree with the
 * float64 reference (computed here in Node) on WASM and on WebGPU (SwiftShader) to 1e-4, and a
 * second load takes the converted model from Cache Storage without downloading or converting.
 */
import { expect, test, type Page } from '@playwright/test';
import { readFile } from 'node:fs/promises';
import { resolve } from 'node:path';
import { parseSafetensors, tensorToFloat32 } from '../../src/model/safetensors.ts';
import { makeCheckpoint, TINY } from '../fixtures/make-checkpoint.ts';
import { ReferenceModernBert } from '../fixtures/reference-modernbert.ts';
import { harnessUrl, libraryBuildMissing, testHubUrl, testModelsMissing } from '../support/browser.ts';
import { REPO_ROOT } from '../support/shared.ts';

const IN_CI = !!process.env['CI'];
/** Served by the Hub-like mount (/hub/ -> .cache/test-models/hub). */
const REPO = 'colbert-web-test/tiny-safetensors';
const DIR = resolve(REPO_ROOT, '.cache/test-models/hub', REPO);
const QUERY = 'laminar flow over a swept wing at supersonic speed';

let reference: ReferenceModernBert;

test.beforeAll(async () => {
  if ((libraryBuildMissing() ?? testModelsMissing()) !== null) return;
  await makeCheckpoint(DIR, TINY, 5);
  const config = JSON.parse(await readFile(resolve(DIR, 'config.json'), 'utf8')) as Record<string, unknown>;
  const dense = parseSafetensors(new Uint8Array(await readFile(resolve(DIR, '1_Dense/model.safetensors')))).get('linear.weight')!;
  reference = new ReferenceModernBert(config, new Uint8Array(await readFile(resolve(DIR, 'model.safetensors'))), [
    { weight: tensorToFloat32(dense), inFeatures: TINY.hidden_size, outFeatures: TINY.dim, bias: null, activation: 'identity' },
  ]);
});

// Conversion, several sessions and SwiftShader on two shared cores: more than the default 2 minutes.
test.describe.configure({ timeout: 420_000 });

test.beforeEach(async ({ page }) => {
  const missing = libraryBuildMissing() ?? testModelsMissing();
  test.skip(missing !== null, missing ?? '');
  page.on('pageerror', (err) => console.error(`[page error] ${err.message}`));
  await page.goto(harnessUrl());
});

interface LoadResult {
  device: string;
  dtype: string;
  converted: { cached: boolean } | null;
  progress: string[];
  safetensorsDownloads: number;
  ids: number[];
  data: number[];
  top: string;
}

/** Loads the repo in the page (default worker path), encodes the query with eager expansion, ranks two documents. */
async function load(page: Page, device: string, dtype = 'fp32'): Promise<LoadResult> {
  return page.evaluate(
    async ({ hubUrl, repo, device, dtype, query }) => {
      const entry = '/dist/index.js';
      const lib = await import(/* @vite-ignore */ entry);
      const progress: string[] = [];
      let safetensorsDownloads = 0;
      const search = await lib.createSearch({
        model: repo,
        hubUrl,
        device,
        dtype,
        expansion: 'eager',
        onProgress: (p: { status: string; stage?: string; file?: string; loaded?: number }) => {
          progress.push(p.stage ? `${p.status}:${p.stage}` : p.status);
          if (p.status === 'download' && p.file === 'model.safetensors' && p.loaded === 0) safetensorsDownloads++;
        },
      });
      const q = await search.encodeQuery(query);
      await search.add([
        { id: 'wing', text: 'laminar flow over a swept wing at supersonic speed' },
        { id: 'shell', text: 'buckling of thin cylindrical shells under axial load' },
      ]);
      const hits = await search.search(query);
      const out = { device: search.device, dtype: search.dtype, converted: search.info.converted ?? null, progress, safetensorsDownloads, ids: Array.from(q.ids as Int32Array), data: Array.from(q.data as Float32Array), top: hits[0].id };
      await search.close();
      return out;
    },
    { hubUrl: testHubUrl(), repo: REPO, device, dtype, query: QUERY },
  );
}

/** Largest difference to the reference over rows that see at least one real key inside the window. */
function deviation(result: LoadResult): number {
  const sep = result.ids.indexOf(50282);
  const mask = result.ids.map((_, i) => (i <= sep ? 1 : 0));
  const ref = reference.forward(result.ids, mask);
  const half = Math.floor(TINY.local_attention / 2);
  let worst = 0;
  ref.forEach((row, i) => {
    if (!mask.some((m, j) => m === 1 && Math.abs(i - j) <= half)) return;
    row.forEach((v, k) => (worst = Math.max(worst, Math.abs(result.data[i * TINY.dim + k]! - v))));
  });
  return worst;
}

test('WASM: downloads the safetensors, converts in the worker, matches the reference; the second load uses the cached conversion', async ({ page }) => {
  const first = await load(page, 'wasm');
  expect(first.device).toBe('wasm');
  expect(first.converted).toEqual({ cached: false });
  expect(first.progress).toContain('convert:start');
  expect(first.progress).toContain('convert:done');
  expect(first.safetensorsDownloads).toBe(1);
  expect(first.ids.length).toBe(39);
  expect(deviation(first)).toBeLessThan(1e-4);
  expect(first.top).toBe('wing');

  const second = await load(page, 'wasm');
  expect(second.converted).toEqual({ cached: true });
  expect(second.progress).toContain('convert:cached');
  expect(second.progress).not.toContain('convert:start');
  expect(second.safetensorsDownloads).toBe(0);
  expect(second.data).toEqual(first.data);
});

test('WebGPU: the converted fp32 graph matches the reference; q4 agrees with WASM', async ({ page }) => {
  const hasGpu = await page.evaluate(async () => {
    const entry = '/dist/index.js';
    const lib = await import(/* @vite-ignore */ entry);
    const caps = await lib.detectCapabilities();
    return caps.webgpu ? null : String(caps.webgpuReason);
  });
  if (hasGpu !== null) {
    expect(IN_CI, `no WebGPU adapter in CI: ${hasGpu}`).toBe(false);
    test.skip(true, `no WebGPU here: ${hasGpu}`);
    return;
  }
  const result = await load(page, 'webgpu');
  expect(result.device).toBe('webgpu');
  expect(result.converted).toEqual({ cached: false });
  expect(deviation(result)).toBeLessThan(1e-4);
  expect(result.top).toBe('wing');

  // The 4-bit graph (MatMulNBits) on WebGPU computes what it computes on WASM: quantized graphs
  // have returned silently wrong vectors on WebGPU for other models.
  const gpuQ4 = await load(page, 'webgpu', 'q4');
  const cpuQ4 = await load(page, 'wasm', 'q4');
  expect(gpuQ4.device).toBe('webgpu');
  expect(gpuQ4.dtype).toBe('q4');
  let worst = 0;
  gpuQ4.data.forEach((v, i) => (worst = Math.max(worst, Math.abs(v - cpuQ4.data[i]!))));
  expect(worst).toBeLessThan(1e-3);
});
