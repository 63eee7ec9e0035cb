/**
 * `npm run demo`: builds the demo site (`vite build --mode demo`, into demo-dist/) and serves it
 * on http://127.0.0.1:5173 with the cross-origin isolation headers that multithreaded WASM needs.
 * Where ../shared is present the build includes the offline test model (NOT a language model)
 * and the Cranfield abstracts (see demo/build-plugins.ts).
 */
import { resolve } from 'node:path';
import { build, preview } from 'vite';

const root = resolve(import.meta.dirname, '..');
const port = Number(process.env['PORT'] ?? 5173);

await build({ configFile: resolve(root, 'vite.config.ts'), mode: 'demo', logLevel: 'warn' });
const server = await preview({ configFile: resolve(root, 'vite.config.ts'), mode: 'demo', preview: { port, host: '127.0.0.1', strictPort: true } });
console.log(`\ncolbert-web demo: http://127.0.0.1:${port}/  (Ctrl+C to stop)`);
server.printUrls();
