/**
 * The contextual test model (test/fixtures/contextual-model.ts) in Debian Chromium: fetched
 * Hub-style from the test server, run by the default Web Worker on WASM and on WebGPU
 * (SwiftShader), its vectors equal the plain-TS reference forward pass computed here in Node.
 */
import { expect, test } from '@playwright/test';
import { contextualReference, contextualWeights } from '../fixtures/contextual-model.ts';
import { PUNCTUATION } from '../fixtures/make-models.ts';
import { harnessUrl, libraryBuildMissing, testHubUrl, testModelsMissing, TEST_CONTEXTUAL_HUB_REPO } from '../support/browser.ts';
import { CRANFIELD_DIR, TOKENIZER_DIR, loadPylateTokenizerFiles } from '../support/shared.ts';
import { Tokenizer } from '@huggingface/tokenizers';

const IN_CI = !!process.env['CI'];
// No punctuation in the text: every input position is an output row except the prompt's skiplist ones ("_", ":").
const TEXT = 'Boundary layer transition on a flat plate at supersonic speed';

test('WASM and WebGPU vectors equal the reference forward pass', async ({ page }) => {
  const missing = libraryBuildMissing() ?? testModelsMissing();
  test.skip(missing !== null, missing ?? '');
  page.on('pageerror', (err) => console.error(`[page error] ${err.message}`));
  await page.goto(harnessUrl());
  const result = await page.evaluate(
    async ({ hubUrl, repo, text }) => {
      const entry = '/dist/index.js';
      const lib = await import(/* @vite-ignore */ entry);
      const caps = await lib.detectCapabilities();
      const out: Record<string, { ids: number[]; data: number[]; device: string }> = {};
      for (const device of caps.webgpu ? ['wasm', 'webgpu'] : ['wasm']) {
        const search = await lib.createSearch({ model: repo, hubUrl, device, dtype: 'fp32' });
        const [m] = await search.encodeDocuments([text]);
        out[device] = { ids: [...m.ids], data: [...m.data], device: search.device };
        await search.close();
      }
      return { out, webgpuReason: caps.webgpuReason ?? null };
    },
    { hubUrl: testHubUrl(), repo: TEST_CONTEXTUAL_HUB_REPO, text: TEXT },
  );
  if (IN_CI) expect(Object.keys(result.out)).toContain('webgpu');
  const weights = await contextualWeights(TOKENIZER_DIR, CRANFIELD_DIR);
  const files = loadPylateTokenizerFiles(TOKENIZER_DIR);
  const hf = new Tokenizer(files.tokenizerJson, files.tokenizerConfig);
  // The whole input ([CLS] [D] prompt text [SEP]); skiplist ids are dropped only after the forward pass.
  const input = [50281, 50369, ...hf.encode(`search_document: ${TEXT}`, { add_special_tokens: false }).ids, 50282];
  const ref = contextualReference(weights, input, new Array<number>(input.length).fill(1));
  const skip = new Set(PUNCTUATION.map((p) => hf.token_to_id(p)).filter((id): id is number => id !== undefined));
  const kept = input.flatMap((id, i) => (skip.has(id) ? [] : [i]));
  expect(kept.length).toBeLessThan(input.length);
  for (const [device, m] of Object.entries(result.out)) {
    expect(m.device).toBe(device);
    expect(m.ids).toEqual(kept.map((i) => input[i]));
    let maxDiff = 0;
    kept.forEach((i, r) => {
      for (let d = 0; d < 128; d++) maxDiff = Math.max(maxDiff, Math.abs(ref[i * 128 + d]! - m.data[r * 128 + d]!));
    });
    console.log(`[contextual] ${device}: ${m.ids.length} rows, max |diff| to the reference ${maxDiff.toExponential(2)}`);
    expect(maxDiff).toBeLessThan(device === 'webgpu' ? 1e-4 : 1e-5);
  }
});
