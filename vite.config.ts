/**
 * Builds from one config (the npm package itself is `npm run build`: tsc, one dist module per
 * source module, dependencies left to the app's bundler; see scripts/finish-dist.ts):
 * - `vite build` (default): a self-contained browser bundle in .cache/bundle/ (index.js,
 *   worker.js, the engine worker chunk and onnxruntime-web's .wasm as files next to them), which
 *   the browser specs and benches import from a plain page, without a bundler or import map.
 * - `vite build --mode demo`: the static demo site in demo-dist/ (relative base: any host, any
 *   sub-path), with a service worker for offline use and, where ../shared exists, the offline
 *   test model and the Cranfield corpus (demo/build-plugins.ts).
 */
import { defineConfig, defaultClientConditions, type Plugin } from 'vite';
import { existsSync, readFileSync } from 'node:fs';
import { resolve } from 'node:path';
import { demoFixtures, demoServiceWorker, sharedFixtures } from './demo/build-plugins.ts';

/**
 * onnxruntime-web's runtime files, shipped in dist/ort/: the asyncify build (WebGPU + WASM), the
 * one that `onnxruntime-web/webgpu` (what @huggingface/transformers imports) loads.
 */
const ORT_FILES = ['ort-wasm-simd-threaded.asyncify.mjs', 'ort-wasm-simd-threaded.asyncify.wasm'];
/** The onnxruntime-web that @huggingface/transformers resolves (its own copy when npm nested one). */
const ORT_DIST = [
  resolve(import.meta.dirname, 'node_modules/@huggingface/transformers/node_modules/onnxruntime-web/dist'),
  resolve(import.meta.dirname, 'node_modules/onnxruntime-web/dist'),
].find((dir) => existsSync(dir))!;

/**
 * Library mode inlines every asset as base64, which would turn the 28 MB .wasm into 38 MB of
 * JavaScript. Instead the library imports onnxruntime-web's "extern wasm" build, copies its
 * runtime files to dist/ort/ and points `wasmPaths` there (see src/search.ts).
 */
const ortRuntimeFiles: Plugin = {
  name: 'colbert-web:ort-runtime-files',
  generateBundle() {
    for (const file of ORT_FILES) {
      this.emitFile({ type: 'asset', fileName: `ort/${file}`, source: readFileSync(resolve(ORT_DIST, file)) });
    }
  },
};

/** Headers that make pages cross-origin isolated, so WASM can use several threads. */
export const ISOLATION_HEADERS = {
  'Cross-Origin-Opener-Policy': 'same-origin',
  'Cross-Origin-Embedder-Policy': 'require-corp',
  'Cross-Origin-Resource-Policy': 'cross-origin',
};

const isolation: Plugin = {
  name: 'colbert-web:isolation-headers',
  configureServer(server) {
    server.middlewares.use((_req, res, next) => {
      for (const [k, v] of Object.entries(ISOLATION_HEADERS)) res.setHeader(k, v);
      next();
    });
  },
  configurePreviewServer(server) {
    server.middlewares.use((_req, res, next) => {
      for (const [k, v] of Object.entries(ISOLATION_HEADERS)) res.setHeader(k, v);
      next();
    });
  },
};

export default defineConfig(({ mode }) => {
  if (mode === 'demo') {
    return {
      root: resolve(import.meta.dirname, 'demo'),
      base: './',
      plugins: [isolation, demoServiceWorker(), demoFixtures(import.meta.dirname)],
      define: { __DEMO_FIXTURES__: JSON.stringify(sharedFixtures(import.meta.dirname)) },
      worker: { format: 'es' },
      build: { outDir: resolve(import.meta.dirname, 'demo-dist'), emptyOutDir: true, target: 'es2022', assetsInlineLimit: 0 },
      server: { host: '127.0.0.1' },
      preview: { host: '127.0.0.1' },
    };
  }
  return {
    // Relative base: the worker chunk is found next to dist/index.js wherever the package is served.
    base: './',
    plugins: [isolation, ortRuntimeFiles],
    resolve: { conditions: ['onnxruntime-web-use-extern-wasm', ...defaultClientConditions] },
    define: { __COLBERT_ORT_DIR__: JSON.stringify('./ort/') },
    worker: { format: 'es' },
    build: {
      outDir: '.cache/bundle',
      emptyOutDir: true,
      target: 'es2022',
      sourcemap: true,
      assetsInlineLimit: 0,
      lib: {
        entry: { index: resolve(import.meta.dirname, 'src/index.ts'), worker: resolve(import.meta.dirname, 'src/worker.ts') },
        formats: ['es'],
      },
    },
  };
});
