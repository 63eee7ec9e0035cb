/**
 * Second half of `npm run build` (after `tsc -p tsconfig.build.json` emitted one dist module per
 * source module, dependencies left as imports). Makes dist/ plain ESM that Node runs and that
 * every bundler resolves on its own:
 * - `new URL('./x.ts', import.meta.url)` (workers) → `.js`, the file tsc wrote beside it, so the
 *   consumer's bundler sees `new Worker(new URL('./x.js', import.meta.url), { type: 'module' })`.
 * - `import s from './x.wgsl?raw'` (a Vite-only query) → `./x.wgsl.js`, a module exporting the
 *   shader text, written here.
 * Fails when anything Vite-specific or a TypeScript path is left in dist/.
 */
import { readFileSync, readdirSync, statSync, writeFileSync } from 'node:fs';
import { dirname, join, relative, resolve } from 'node:path';

const ROOT = resolve(import.meta.dirname, '..');
const DIST = join(ROOT, 'dist');

function* jsFiles(dir: string): Generator<string> {
  for (const name of readdirSync(dir)) {
    const path = join(dir, name);
    if (statSync(path).isDirectory()) yield* jsFiles(path);
    else if (name.endsWith('.js')) yield path;
  }
}

const problems: string[] = [];
let rewritten = 0;
for (const file of jsFiles(DIST)) {
  const source = readFileSync(file, 'utf8');
  let out = source.replace(/new URL\((['"])(\.{1,2}\/[^'"]+)\.ts\1, import\.meta\.url\)/g, (_m, q: string, path: string) => `new URL(${q}${path}.js${q}, import.meta.url)`);
  out = out.replace(/from (['"])(\.{1,2}\/[^'"]+\.wgsl)\?raw\1/g, (_m, q: string, path: string) => {
    const srcFile = resolve(ROOT, relative(DIST, dirname(file)), path);
    const target = resolve(dirname(file), `${path}.js`);
    writeFileSync(target, `// Generated from ${relative(ROOT, srcFile)} by scripts/finish-dist.ts.\nexport default ${JSON.stringify(readFileSync(srcFile, 'utf8'))};\n`);
    return `from ${q}${path}.js${q}`;
  });
  if (out !== source) {
    writeFileSync(file, out);
    rewritten++;
  }
  for (const m of out.matchAll(/(?:from |import\(|new URL\()\s*(['"])([^'"]+)\1/g)) {
    const spec = m[2]!;
    if (spec.endsWith('.ts') || spec.includes('?')) problems.push(`${relative(ROOT, file)}: ${spec}`);
  }
  if (/import\.meta\.env/.test(out)) problems.push(`${relative(ROOT, file)}: Vite-only import.meta.env`);
}
// Declarations: relative `.ts` specifiers (tsc keeps them in type imports) → `.js`; files that
// name WebGPU types reference @webgpu/types (a dependency), so a strict consumer
// (skipLibCheck: false) compiles without installing it.
function* dtsFiles(dir: string): Generator<string> {
  for (const name of readdirSync(dir)) {
    const path = join(dir, name);
    if (statSync(path).isDirectory()) yield* dtsFiles(path);
    else if (name.endsWith('.d.ts')) yield path;
  }
}
for (const file of dtsFiles(DIST)) {
  const source = readFileSync(file, 'utf8');
  let out = source.replace(/(from |import\()(['"])(\.{1,2}\/[^'"]+)\.ts\2/g, (_m, lead: string, q: string, path: string) => `${lead}${q}${path}.js${q}`);
  if (/\bGPU[A-Z]\w*\b/.test(out.replace(/\/\*[\s\S]*?\*\/|\/\/.*$/gm, '')) && !out.includes('types="@webgpu/types"')) out = `/// <reference types="@webgpu/types" />\n${out}`;
  if (out !== source) writeFileSync(file, out);
}

if (problems.length) {
  console.error(`dist/ still has specifiers no plain ESM host resolves:\n  ${problems.join('\n  ')}`);
  process.exit(1);
}
console.log(`finish-dist: ${rewritten} module(s) rewritten`);
