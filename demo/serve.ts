/**
 * `npm run demo`: builds the demo site and serves it on http://127.0.0.1:5173 with the
 * cross-origin isolation headers that multithreaded WASM needs.
 * Where ../shared is present it also ships the generated offline test model (not a language
 * model) and the Cranfield abstracts as the corpus; elsewhere the page loads the default Hub model
 * and a five-document sample corpus.
 */
import { cp, mkdir, writeFile } from 'node:fs/promises';
import { existsSync } from 'node:fs';
import { resolve } from 'node:path';
import { build, preview } from 'vite';
import { SAMPLE_CORPUS } from './sample-corpus.ts';

const root = resolve(import.meta.dirname, '..');
const out = resolve(root, 'demo-dist');
const shared = resolve(root, '../shared/fixtures');
const port = Number(process.env['PORT'] ?? 5173);

await build({ configFile: resolve(root, 'vite.config.ts'), mode: 'demo', logLevel: 'warn' });
await mkdir(resolve(out, 'data'), { recursive: true });

let corpus: { id: string; title: string; text: string }[] = SAMPLE_CORPUS;
if (existsSync(resolve(shared, 'cranfield/cran.all.1400'))) {
  const { loadCranfield } = await import('../test/fixtures/cranfield.ts');
  corpus = (await loadCranfield(resolve(shared, 'cranfield'))).docs.filter((d) => d.text.trim() !== '');
  console.log(`corpus: ${corpus.length} Cranfield abstracts`);
} else {
  console.log('corpus: the five-document sample (../shared/fixtures/cranfield not found)');
}
await writeFile(resolve(out, 'data/corpus.json'), JSON.stringify(corpus));

if (existsSync(resolve(shared, 'modernbert-tokenizer/tokenizer.json'))) {
  const { makeTestModels } = await import('../test/fixtures/make-models.ts');
  const models = await makeTestModels(resolve(root, '.cache/test-models'), resolve(shared, 'modernbert-tokenizer'));
  await cp(models.tjs, resolve(out, 'models/tiny-test'), { recursive: true });
  console.log('model: the generated offline test model (NOT a language model: it matches shared tokens only)');
} else {
  console.log('model: lightonai/ColBERT-Zero-supervised from the Hub (needs the internet and an ONNX export)');
}

const server = await preview({ configFile: resolve(root, 'vite.config.ts'), mode: 'demo', preview: { port, host: '127.0.0.1', strictPort: true } });
console.log(`\ncolbert-web demo: http://127.0.0.1:${port}/  (Ctrl+C to stop)`);
server.printUrls();
