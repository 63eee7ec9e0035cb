/**
 * The compressed index in Debian Chromium through the built library's default worker: a
 * collection large enough to train, searched through the codes and with `exhaustive: true`,
 * the same top 10 with the same scores; a delete reaches the codes.
 */
import { expect, test } from '@playwright/test';
import { harnessUrl, libraryBuildMissing, testHubUrl, testModelsMissing, TEST_HUB_REPO } from '../support/browser.ts';

test.beforeEach(async ({ page }) => {
  const missing = libraryBuildMissing() ?? testModelsMissing();
  test.skip(missing !== null, missing ?? '');
  page.on('pageerror', (err) => console.error(`[page error] ${err.message}`));
  await page.goto(harnessUrl());
});

test('compressed search in the worker equals exhaustive search on the top 10', async ({ page }) => {
  test.setTimeout(180_000);
  const result = await page.evaluate(
    async ({ hubUrl, repo }) => {
      const entry = '/dist/index.js';
      const lib = await import(/* @vite-ignore */ entry);
      // Word-clustered unit vectors (as in test/support/clusters.ts, inlined: the page has no test imports).
      let seed = 17;
      const rand = () => {
        seed = (seed + 0x6d2b79f5) | 0;
        let t = seed;
        t = Math.imul(t ^ (t >>> 15), t | 1);
        t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
        return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
      };
      const dim = 128;
      const gauss = () => Math.sqrt(-2 * Math.log(1 - rand())) * Math.cos(2 * Math.PI * rand());
      const unit = (v: Float32Array, o: number) => {
        let n = 0;
        for (let d = 0; d < dim; d++) n += v[o + d]! * v[o + d]!;
        for (let d = 0; d < dim; d++) v[o + d]! /= Math.sqrt(n);
      };
      const words = new Float32Array(512 * dim);
      for (let i = 0; i < words.length; i++) words[i] = gauss();
      for (let w = 0; w < 512; w++) unit(words, w * dim);
      const token = (out: Float32Array, o: number, w: number) => {
        for (let d = 0; d < dim; d++) out[o + d] = words[w * dim + d]! + (0.3 / Math.sqrt(dim)) * gauss();
        unit(out, o);
      };
      const used: number[][] = [];
      const docs = Array.from({ length: 200 }, (_, i) => {
        const topic = Math.floor(rand() * 16);
        const tokens = 24 + Math.floor(rand() * 40);
        const data = new Float32Array(tokens * dim);
        const mine: number[] = [];
        for (let j = 0; j < tokens; j++) {
          const w = topic * 32 + Math.floor(rand() * 32);
          mine.push(w);
          token(data, j * dim, w);
        }
        used.push(mine);
        return { id: `d${i}`, embedding: { data, tokens, dim, ids: new Int32Array(tokens).fill(-1) } };
      });
      const queries = Array.from({ length: 8 }, () => {
        const mine = used[Math.floor(rand() * used.length)]!;
        const data = new Float32Array(16 * dim);
        for (let j = 0; j < 16; j++) token(data, j * dim, mine[Math.floor(rand() * mine.length)]!);
        return { data, tokens: 16, dim, ids: new Int32Array(16).fill(-1) };
      });
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
    { hubUrl: testHubUrl(), repo: TEST_HUB_REPO },
  );
  expect(result.state).toBe('ready');
  expect(result.centroids).toBeGreaterThan(0);
  // The floor with rerank (also held in Node on larger sets, test/unit/compressed*.test.ts).
  expect(result.overlap).toBeGreaterThanOrEqual(0.99);
  expect(result.maxDiff).toBeLessThan(1e-5);
  expect(result.deletedGone).toBe(true);
});
