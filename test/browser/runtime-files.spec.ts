/**
 * A runtime file that cannot be loaded is reported with its URL and HTTP status, not with
 * onnxruntime-web's "previous call to 'initWasm()' failed".
 */
import { expect, test } from '@playwright/test';
import { harnessUrl, libraryBuildMissing, testHubUrl, testModelsMissing, TEST_HUB_REPO } from '../support/browser.ts';

test('a missing onnxruntime-web .wasm/.mjs is MODEL_LOAD_FAILED naming its URL and HTTP 404', async ({ page }) => {
  const missing = libraryBuildMissing() ?? testModelsMissing();
  test.skip(missing !== null, missing ?? '');
  await page.goto(harnessUrl());
  const result = await page.evaluate(
    async ({ hubUrl, repo }) => {
      const entry = '/dist/index.js';
      const lib = await import(/* @vite-ignore */ entry);
      try {
        await lib.createSearch({ model: repo, hubUrl, device: 'wasm', wasmPaths: '/no-such-folder/' });
        return { code: 'none', message: '' };
      } catch (err) {
        return { code: (err as { code?: string }).code ?? 'none', message: (err as Error).message };
      }
    },
    { hubUrl: testHubUrl(), repo: TEST_HUB_REPO },
  );
  expect(result.code).toBe('MODEL_LOAD_FAILED');
  expect(result.message).toMatch(/\/no-such-folder\/ort-wasm-simd-threaded\.asyncify\.(wasm|mjs) \(HTTP 404\)/);
  expect(result.message).not.toMatch(/initWasm/);
});
