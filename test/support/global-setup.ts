/**
 * Playwright global setup for test/browser: builds the library, generates the tiny test models,
 * and starts the test server. Returns the teardown that stops the server.
 *
 * What specs get (environment variables, see TEST_ENV in ./browser.ts):
 * - `COLBERT_TEST_BASE_URL`: the server, serving the repo root, with `/dist/` → the
 *   self-contained browser bundle of the library in `.cache/bundle/` (so `/dist/index.js`,
 *   `/test/browser/harness.html` and `/node_modules/onnxruntime-web/dist/*` resolve), plus
 *   `/models/` → `.cache/test-models` and `/hub/` → `.cache/test-models/hub`, in which
 *   `colbert-web-test/tiny-modernbert` is the transformers.js-layout test model (`tjs/`; linked
 *   there unless makeTestModels already wrote it).
 * - `COLBERT_TEST_BUILD`, `COLBERT_TEST_MODELS`: `"ready"` or `"skipped: <reason>"`.
 *
 * Switches (for working on the test infrastructure itself, never needed in CI):
 * - `COLBERT_SKIP_BUILD=1`: do not run `vite build`; specs that need dist/ skip.
 * - `COLBERT_SKIP_MODELS=1`: do not generate test models; specs that need them skip.
 * Test models are also skipped, with the reason recorded, when ../shared/fixtures/modernbert-tokenizer
 * is absent (users' machines); in CI that is an error instead, so nothing is silently untested.
 */
import { existsSync } from 'node:fs';
import { mkdir, rm, symlink } from 'node:fs/promises';
import { dirname, join, relative, resolve } from 'node:path';
import { assertChromium, TEST_ENV, TEST_HUB_PREFIX, TEST_HUB_REPO, TEST_MODELS_PREFIX } from './browser.ts';
import { startServer } from './server.ts';
import { REPO_ROOT, TOKENIZER_DIR } from './shared.ts';

/** Where makeTestModels writes (gitignored). */
export const TEST_MODELS_DIR = resolve(REPO_ROOT, '.cache/test-models');
/** The transformers.js-layout test model that makeTestModels writes. */
export const TEST_TJS_DIR = resolve(TEST_MODELS_DIR, 'tjs');
/** Root of the Hub-like mount: `<owner>/<name>/<file>`, as test/unit/engine.test.ts also uses it. */
export const TEST_HUB_DIR = resolve(TEST_MODELS_DIR, 'hub');

const flag = (name: string): boolean => {
  const v = process.env[name];
  return v !== undefined && v !== '' && v !== '0' && v.toLowerCase() !== 'false';
};

const timed = async <T>(label: string, fn: () => Promise<T>): Promise<T> => {
  const t0 = performance.now();
  try {
    return await fn();
  } finally {
    console.log(`[global-setup] ${label}: ${((performance.now() - t0) / 1000).toFixed(1)} s`);
  }
};

/**
 * Where `vite build` writes the self-contained browser bundle the specs import as `/dist/index.js`
 * (dependencies inlined, so a plain page can import it without an import map). The package's own
 * dist/ (npm run build) leaves dependencies to the app's bundler; test/consumers/ tests that one.
 */
export const BUNDLE_DIR = resolve(REPO_ROOT, '.cache/bundle');

/** Runs `vite build` with the repo's vite.config.ts (the browser bundle into .cache/bundle/). */
async function buildLibrary(): Promise<string> {
  if (flag('COLBERT_SKIP_BUILD')) return 'skipped: COLBERT_SKIP_BUILD is set';
  const { build } = await import('vite');
  await timed('vite build', () => build({ configFile: resolve(REPO_ROOT, 'vite.config.ts'), root: REPO_ROOT, logLevel: 'warn' }));
  if (!existsSync(resolve(BUNDLE_DIR, 'index.js'))) {
    throw new Error(`vite build finished but ${BUNDLE_DIR}/index.js is missing: check the library entry in vite.config.ts.`);
  }
  return 'ready';
}

/** Generates the test models and links the transformers.js one into the Hub-like mount. */
async function prepareModels(): Promise<string> {
  if (flag('COLBERT_SKIP_MODELS')) return 'skipped: COLBERT_SKIP_MODELS is set';
  if (!existsSync(resolve(TOKENIZER_DIR, 'tokenizer.json'))) {
    const reason = `skipped: the ModernBERT tokenizer is not at ${TOKENIZER_DIR} (../shared exists on project machines and in CI only)`;
    if (process.env['CI']) throw new Error(`In CI the shared fixtures must be present, but ${reason.slice('skipped: '.length)}.`);
    return reason;
  }
  const { makeTestModels } = await import('../fixtures/make-models.ts');
  await timed('makeTestModels', () => makeTestModels(TEST_MODELS_DIR, TOKENIZER_DIR));

  // makeTestModels may lay out the Hub repo itself; if not, link the tjs model there.
  const repoDir = join(TEST_HUB_DIR, ...TEST_HUB_REPO.split('/'));
  if (!existsSync(repoDir)) {
    if (!existsSync(join(TEST_TJS_DIR, 'onnx'))) {
      throw new Error(`makeTestModels wrote no transformers.js layout at ${TEST_TJS_DIR} (expected onnx/*.onnx there).`);
    }
    await rm(repoDir, { recursive: true, force: true });
    await mkdir(dirname(repoDir), { recursive: true });
    await symlink(relative(dirname(repoDir), TEST_TJS_DIR), repoDir, 'dir');
    console.log(`[global-setup] linked ${relative(REPO_ROOT, repoDir)} → ${relative(REPO_ROOT, TEST_TJS_DIR)}`);
  }
  return 'ready';
}

/** Playwright calls this once before all specs; the returned function is the global teardown. */
export default async function globalSetup(): Promise<() => Promise<void>> {
  assertChromium();
  const build = await buildLibrary();
  const models = await prepareModels();
  await mkdir(TEST_MODELS_DIR, { recursive: true });
  await mkdir(TEST_HUB_DIR, { recursive: true });

  const server = await startServer({
    root: REPO_ROOT,
    aliases: { '/dist/': BUNDLE_DIR },
    mounts: { [TEST_MODELS_PREFIX]: TEST_MODELS_DIR, [TEST_HUB_PREFIX]: TEST_HUB_DIR },
  });
  process.env[TEST_ENV.baseUrl] = server.url;
  process.env[TEST_ENV.build] = build;
  process.env[TEST_ENV.models] = models;
  console.log(`[global-setup] server ${server.url}; build: ${build}; models: ${models}`);
  return () => server.close();
}
