/**
 * Builds test/browser/scoring-entry.ts (the scoring modules and stores as one ES bundle, with the
 * MaxSim sub-worker as its own chunk beside it) into `dir` under the repository, for specs and
 * benchmarks that drive the scorers directly in a page. Returns the bundle's URL path.
 */
import { resolve } from 'node:path';
import { REPO_ROOT } from './shared.ts';

export async function buildScoringBundle(dir: string, minify = false): Promise<string> {
  const { build } = await import('vite');
  await build({
    configFile: false,
    root: REPO_ROOT,
    logLevel: 'warn',
    // Relative: the worker chunk is found next to the bundle, wherever it is served from.
    base: './',
    worker: { format: 'es' },
    build: {
      outDir: resolve(REPO_ROOT, dir),
      emptyOutDir: true,
      target: 'es2022',
      minify,
      lib: { entry: resolve(REPO_ROOT, 'test/browser/scoring-entry.ts'), formats: ['es'], fileName: 'scoring-entry' },
    },
  });
  return `/${dir}/scoring-entry.js`;
}
