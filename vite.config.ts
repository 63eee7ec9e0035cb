/**
 * Two builds from one config:
 * - `vite build` (default): the library, self-contained ESM in dist/ (index.js, worker.js, the
 *   engine worker chunk and onnxruntime-web's .wasm as files next to them, so nothing is fetched
 *   from a CDN).
 * - `vite build --mode demo`: the static demo site in demo-dist/ (relative base: any host, any sub-path).
 */
import { defineConfig, type Plugin } from 'vite';
import { resolve } from 'node:path';

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
      root: resolve(__dirname, 'demo'),
      base: './',
      plugins: [isolation],
      worker: { format: 'es' },
      build: { outDir: resolve(__dirname, 'demo-dist'), emptyOutDir: true, target: 'es2022', assetsInlineLimit: 0 },
      server: { host: '127.0.0.1' },
      preview: { host: '127.0.0.1' },
    };
  }
  return {
    plugins: [isolation],
    worker: { format: 'es' },
    build: {
      outDir: 'dist',
      emptyOutDir: true,
      target: 'es2022',
      sourcemap: true,
      assetsInlineLimit: 0,
      lib: {
        entry: { index: resolve(__dirname, 'src/index.ts'), worker: resolve(__dirname, 'src/worker.ts') },
        formats: ['es'],
      },
    },
  };
});
