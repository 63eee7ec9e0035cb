/**
 * `colbert-web index`: files and folders into the portable index file that importIndex() loads,
 * with passages within the model's budget, non-text files skipped with a reason, HTML reduced to
 * its visible text, and an interrupted run resumed without encoding finished files again.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { existsSync } from 'node:fs';
import { mkdir, readFile, rm, writeFile } from 'node:fs/promises';
import { resolve } from 'node:path';
import { createSearch } from '../../src/index.ts';
import { main } from '../../src/cli/main.ts';
import { htmlToText, indexFiles, readableText } from '../../src/cli/index-command.ts';
import { makeTestModels } from '../fixtures/make-models.ts';
import { corpusText } from '../support/corpus-text.ts';
import { HAVE_SHARED, REPO_ROOT, SHARED_MISSING, TOKENIZER_DIR } from '../support/shared.ts';
import { FORMAT_VERSION } from '../../src/store/manifest.ts';

const MODELS = resolve(REPO_ROOT, '.cache/test-models');
const TJS = resolve(MODELS, 'tjs');
const ROOT = resolve(REPO_ROOT, '.cache/cli-index-test');
const SITE = resolve(ROOT, 'site');

const LONG = Array.from({ length: 40 }, (_, i) => `Paragraph ${i} on supersonic boundary layer transition over swept wings, measured in flight at several Mach numbers.`).join('\n\n');

describe('htmlToText and skipReason', () => {
  it('keeps visible text in paragraphs, drops scripts and styles, decodes entities, reads the title', () => {
    const { text, title } = htmlToText('<html><head><title>Wings &amp; Flow</title><style>p{color:red}</style></head><body><h1>Swept wings</h1><p>Boundary&nbsp;layers <b>transition</b>.</p><script>secretScriptWord()</script><p>Second</p></body></html>');
    expect(title).toBe('Wings & Flow');
    expect(text).toBe('Swept wings\n\nBoundary\u00a0layers transition.\n\nSecond'.replace('\u00a0', ' '));
    expect(text).not.toMatch(/secretScriptWord|color/);
  });
  it('names why a file is skipped: by name, then by content (src/text/sniff.ts)', async () => {
    const png = new Uint8Array([137, 80, 78, 71, 13, 10, 26, 10, 0, 0, 0, 13, 73, 72, 68, 82, 0, 0, 0, 1, 0, 0, 0, 1, 8, 2, 0, 0, 0]);
    expect(await readableText('a.png', png)).toEqual({ skip: expect.stringMatching(/not a \.txt, \.md or \.html/) });
    expect(await readableText('renamed.txt', png)).toEqual({ skip: expect.stringMatching(/PNG|image/i) });
    expect(await readableText('a.txt', new Uint8Array([65, 0, 66, 0, 67]))).toHaveProperty('skip');
    expect(await readableText('a.md', new TextEncoder().encode('# Title'))).toEqual({ text: '# Title' });
  });
});

describe.skipIf(!HAVE_SHARED)(`colbert-web index ${HAVE_SHARED ? '' : SHARED_MISSING}`, () => {
  beforeAll(async () => {
    await makeTestModels(MODELS, TOKENIZER_DIR);
    await rm(ROOT, { recursive: true, force: true });
    await mkdir(resolve(SITE, 'docs'), { recursive: true });
    await writeFile(resolve(SITE, 'wings.txt'), LONG);
    await writeFile(resolve(SITE, 'docs/glaciers.md'), '# Glaciers\n\nAlpine glaciers retreat as summers warm; moraines mark where the ice once stood.');
    await writeFile(resolve(SITE, 'docs/kitchen.html'), '<html><head><title>Bread</title></head><body><p>Sourdough bread rises slowly with wild yeast and flour.</p><script>glacier()</script></body></html>');
    await writeFile(resolve(SITE, 'logo.png'), new Uint8Array([137, 80, 78, 71, 0, 0, 0, 13]));
  });
  afterAll(async () => {
    await rm(ROOT, { recursive: true, force: true });
  });

  it('writes a portable file that importIndex loads; passages fit the budget; the right file ranks first', async () => {
    const out = resolve(ROOT, 'full/docs.cbwidx');
    const lines: string[] = [];
    const result = await indexFiles([SITE], { model: TJS, out, log: (l) => lines.push(l) });
    expect(result).toMatchObject({ files: 3, resumed: 0, complete: true });
    expect(result.skipped).toEqual([{ file: 'logo.png', reason: expect.stringMatching(/not a \.txt/) }]);
    expect(result.passages).toBeGreaterThan(3); // the long file is split
    expect(lines.some((l) => /\[\d+\/4\] wings\.txt: \d+ passage\(s\).*tokens\/s/.test(l))).toBe(true);
    expect(existsSync(`${out}.partial`)).toBe(false);

    const search = await createSearch({ model: TJS, worker: false });
    try {
      const imported = await search.importIndex(await readFile(out));
      expect(imported.documents).toBe(result.passages);
      const budget = search.info.documentTextBudget;
      const counts = await search.countTokens([LONG]);
      expect(counts[0]!).toBeGreaterThan(budget);
      const hits = await search.search('sourdough bread yeast', { k: 3 });
      expect(hits[0]!.metadata).toMatchObject({ file: 'docs/kitchen.html', title: 'Bread', passage: 0 });
      const glacier = await search.search('alpine glaciers moraines', { k: 1 });
      expect(glacier[0]!.id).toBe('docs/glaciers.md#0');
    } finally {
      await search.close();
    }
  });

  it('resumes an interrupted run from <out>.partial without encoding finished files again', async () => {
    const out = resolve(ROOT, 'resume/docs.cbwidx');
    const first = await indexFiles([SITE], { model: TJS, out, checkpointSeconds: 0, stopAfter: 1, log: () => undefined });
    expect(first).toMatchObject({ files: 1, complete: false });
    expect(existsSync(out)).toBe(false);
    expect(existsSync(`${out}.partial`)).toBe(true);
    const second = await indexFiles([SITE], { model: TJS, out, log: () => undefined });
    expect(second).toMatchObject({ files: 2, resumed: 1, complete: true });
    expect(existsSync(`${out}.partial`)).toBe(false);
    const search = await createSearch({ model: TJS, worker: false });
    try {
      const full = await search.importIndex(await readFile(out));
      expect(full.documents).toBe(first.passages + second.passages);
    } finally {
      await search.close();
    }
  });

  it('--compression builds the trained compressed index into the file; a search with the same options imports it without training', async () => {
    const dir = resolve(ROOT, 'many');
    await mkdir(dir, { recursive: true });
    await writeFile(resolve(dir, 'many.txt'), corpusText(240));
    const out = resolve(ROOT, 'compressed/docs.cbwidx');
    expect(await main(['index', dir, '--model', TJS, '--out', out, '--compression', 'nbits=2,pool=1,rerank=true'])).toBe(0);
    const file = new Uint8Array(await readFile(out));
    expect(new DataView(file.buffer, file.byteOffset).getUint32(8, true)).toBe(FORMAT_VERSION);
    const search = await createSearch({ model: TJS, worker: false, compression: { nbits: 2 } });
    try {
      await search.importIndex(file);
      const stats = await search.stats();
      expect(stats.tokens).toBeGreaterThanOrEqual(4096);
      expect(stats.compression).toMatchObject({ state: 'ready', trainings: 0 });
      const hits = await search.search('glacier moraine alpine ice', { k: 3 });
      const exact = await search.search('glacier moraine alpine ice', { k: 3, exhaustive: true });
      expect(hits).toEqual(exact);
    } finally {
      await search.close();
    }
    expect(await main(['index', dir, '--model', TJS, '--out', out, '--compression', 'nbits=3'])).toBe(2);
    expect(await main(['index', dir, '--model', TJS, '--out', out, '--compression', 'bits=2'])).toBe(2);
  });

  it('runs as `colbert-web index` and fails with usage errors for bad arguments', async () => {
    const out = resolve(ROOT, 'cli/docs.cbwidx');
    expect(await main(['index', resolve(SITE, 'docs'), '--model', TJS, '--out', out, '--precision', 'int8'])).toBe(0);
    expect(existsSync(out)).toBe(true);
    expect(await main(['index', SITE, '--out', out])).toBe(2);
    expect(await main(['index', SITE, '--model', TJS, '--out', out, '--precision', 'fp8'])).toBe(2);
  });
});
