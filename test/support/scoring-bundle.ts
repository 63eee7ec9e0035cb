/**
 * Builds a page-side entry module (the library's modules it imports as one ES bundle, with any
 * worker, such as the MaxSim sub-worker, as its own chunk beside it) into `dir` under the
 * repository, for specs and benchmarks that drive the library's parts directly in a page.
 * Returns the bundle's URL path.
 */
import { basename, resolve } from 'node:path';
import { REPO_ROOT } from './shared.ts';

/** Builds test/browser/scoring-entry.ts (the scoring modules and stores); see {@link buildPageBundle}. */
export async function buildScoringBundle(dir: string, minify = false): Promise<string> {
  return buildPageBundle('test/browser/scoring-entry.ts', dir, minify);
}

/** Builds `entry` (a path under the repository) into `dir`; returns the bundle's URL path. */
export async function buildPageBundle(entry: string, dir: string, minify = false): Promise<string> {
  const name = basename(entry).replace(/\.ts$/, '');
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
      lib: { entry: resolve(REPO_ROOT, entry), formats: ['es'], fileName: name },
    },
  });
  return `/${dir}/${name}.js`;
}
