/**
 * Global setup of the consumer tests: packs the library as a user gets it (`npm pack`, which
 * builds dist/ through `prepack`), creates three projects in a temp folder outside the repository
 * (so nothing resolves from the repository's node_modules) and installs the tarball into each:
 * - node: runs the README quick start (node-app.mjs), then `colbert-web index` on a few files;
 * - vite: index.html + app.js and no vite.config at all, `vite build`;
 * - webpack: a webpack.config.js with only mode, entry and output, `webpack`.
 * npm's cache keeps the installs fast after the first run. The specs (consumers.spec.ts) serve
 * the two builds, with the index file from the Node project, to Debian Chromium.
 *
 * Sets COLBERT_CONSUMERS to JSON ({ state, node, dirs }) for the specs; state is "ready" or
 * "skipped: <reason>" (never skipped in CI).
 */
import { execFileSync } from 'node:child_process';
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { cp, mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { assertChromium } from '../support/browser.ts';
import { REPO_ROOT, TOKENIZER_DIR } from '../support/shared.ts';

export const CONSUMERS_ENV = 'COLBERT_CONSUMERS';
export const TEST_MODELS_DIR = resolve(REPO_ROOT, '.cache/test-models');

/** What the specs get through {@link CONSUMERS_ENV}. */
export interface ConsumerSetup {
  state: string;
  /** What the Node project's quick start printed. */
  node?: { device: string; runtime: string; hits: { id: string; score: number }[] };
  /** tsc's output on a strict consumer file (skipLibCheck: false) per moduleResolution; '' = no error. */
  types?: Record<'bundler' | 'nodenext', string>;
  /** The index command's output lines. */
  indexLog?: string;
  /** Built static sites: vite/dist and webpack/dist, each with docs.cbwidx beside index.html. */
  dirs?: { vite: string; webpack: string };
}

const ENV = { ...process.env, ONNXRUNTIME_NODE_INSTALL: 'skip', PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD: '1', npm_config_audit: 'false', npm_config_fund: 'false', npm_config_update_notifier: 'false' };

function sh(cmd: string, args: string[], cwd: string): string {
  try {
    return execFileSync(cmd, args, { cwd, env: ENV, encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'], maxBuffer: 64 * 1024 * 1024 });
  } catch (err) {
    const e = err as { stdout?: string; stderr?: string; message: string };
    throw new Error(`${cmd} ${args.join(' ')} failed in ${cwd}:\n${e.stdout ?? ''}\n${e.stderr ?? ''}\n${e.message}`);
  }
}

const timed = <T>(label: string, fn: () => T): T => {
  const t0 = performance.now();
  try {
    return fn();
  } finally {
    console.log(`[consumers] ${label}: ${((performance.now() - t0) / 1000).toFixed(1)} s`);
  }
};

async function project(dir: string, pkg: Record<string, unknown>, files: Record<string, string | Uint8Array>): Promise<void> {
  await mkdir(dir, { recursive: true });
  await writeFile(join(dir, 'package.json'), JSON.stringify({ name: `consumer-${dir.split('/').pop()}`, private: true, version: '0.0.0', type: 'module', ...pkg }, null, 2));
  for (const [name, content] of Object.entries(files)) {
    await mkdir(join(dir, name, '..'), { recursive: true });
    await writeFile(join(dir, name), content);
  }
}

const DOCS: Record<string, string | Uint8Array> = {
  'docs/wings.txt': Array.from({ length: 80 }, (_, i) => `Paragraph ${i} on supersonic boundary layer transition over swept wings.`).join('\n\n'),
  'docs/glaciers.md': '# Glaciers\n\nAlpine glaciers retreat as summers warm; moraines mark where the ice once stood.',
  'docs/kitchen.html': '<html><head><title>Bread</title></head><body><p>Sourdough bread rises slowly with wild yeast and flour.</p><script>glacier()</script></body></html>',
  'docs/logo.png': new Uint8Array([137, 80, 78, 71, 13, 10, 26, 10, 0, 0, 0, 13]),
};

const html = (src: string) => `<!doctype html><html><head><meta charset="utf-8"><link rel="icon" href="data:,"><title>consumer</title></head><body><script type="module" src="${src}"></script></body></html>\n`;

async function prepare(): Promise<ConsumerSetup> {
  if (!existsSync(resolve(TOKENIZER_DIR, 'tokenizer.json'))) {
    const reason = `skipped: the ModernBERT tokenizer is not at ${TOKENIZER_DIR} (../shared exists on project machines and in CI only)`;
    if (process.env['CI']) throw new Error(`In CI the shared fixtures must be present, but ${reason.slice('skipped: '.length)}.`);
    return { state: reason };
  }
  const { makeTestModels } = await import('../fixtures/make-models.ts');
  await makeTestModels(TEST_MODELS_DIR, TOKENIZER_DIR);
  const model = resolve(TEST_MODELS_DIR, 'tjs');

  // COLBERT_CONSUMERS_REUSE=<dir kept by COLBERT_KEEP_CONSUMERS=1>: only rebuild the two apps
  // from the current app.js (for working on the tests themselves, never in CI).
  const reuse = process.env['COLBERT_CONSUMERS_REUSE'];
  if (reuse) {
    const read = (f: string) => readFile(join(reuse, 'node', f), 'utf8');
    return buildApps(reuse, await read('out.json'), await read('index.log'), JSON.parse(await read('types.json')) as ConsumerSetup['types']);
  }
  const tmp = await mkdtemp(join(tmpdir(), 'colbert-web-consumers-'));
  try {
    return await createProjects(tmp, model);
  } catch (err) {
    if (!process.env['COLBERT_KEEP_CONSUMERS']) await rm(tmp, { recursive: true, force: true });
    throw err;
  }
}

/** Packs the library into `tmp`, creates and installs the three projects, runs the Node one, builds the apps. */
async function createProjects(tmp: string, model: string): Promise<ConsumerSetup> {
  // prepack's build output precedes npm's JSON on stdout.
  const packOutput = timed('npm pack (builds dist/)', () => sh('npm', ['pack', '--json', '--pack-destination', tmp], REPO_ROOT));
  const packed = JSON.parse(packOutput.slice(packOutput.search(/^\[$/m))) as { filename: string; files: { path: string }[] }[];
  const tarball = join(tmp, packed[0]!.filename);
  const shipped = packed[0]!.files.map((f) => f.path);
  for (const required of ['LICENSE', 'dist/src/index.js', 'dist/src/index.d.ts', 'dist/workers/engine.worker.js', 'dist/workers/maxsim.worker.js', 'dist/src/cli/main.js']) {
    if (!shipped.includes(required)) throw new Error(`npm pack left out ${required}; it packed: ${shipped.join(', ')}`);
  }
  const dep = { 'colbert-web': `file:${tarball}` };
  const viteVersion = (JSON.parse(readFileSync(resolve(REPO_ROOT, 'node_modules/vite/package.json'), 'utf8')) as { version: string }).version;

  await project(join(tmp, 'node'), { dependencies: dep }, { 'main.mjs': await readFile(resolve(import.meta.dirname, 'node-app.mjs'), 'utf8'), ...DOCS });
  await project(join(tmp, 'vite'), { dependencies: dep, devDependencies: { vite: viteVersion } }, { 'index.html': html('./main.js') });
  await project(
    join(tmp, 'webpack'),
    { dependencies: dep, devDependencies: { webpack: '^5.100.0', 'webpack-cli': '^6.0.1' } },
    {
      'webpack.config.js': "import { resolve } from 'node:path';\n\nexport default {\n  mode: 'production',\n  entry: './src/index.js',\n  output: { path: resolve(import.meta.dirname, 'dist'), filename: 'main.js' },\n};\n",
    },
  );
  for (const name of ['node', 'vite', 'webpack']) timed(`npm install (${name})`, () => sh('npm', ['install', '--no-audit', '--no-fund', '--prefer-offline'], join(tmp, name)));

  const nodeDir = join(tmp, 'node');
  const quickStart = timed('node quick start', () => sh('node', ['main.mjs', model], nodeDir));
  const indexLog = timed('colbert-web index', () => sh(join(nodeDir, 'node_modules/.bin/colbert-web'), ['index', 'docs', '--model', model, '--out', 'site/docs.cbwidx'], nodeDir));
  const types = { bundler: typecheck(nodeDir, 'bundler'), nodenext: typecheck(nodeDir, 'nodenext') };
  await writeFile(join(nodeDir, 'types.json'), JSON.stringify(types));
  await writeFile(join(nodeDir, 'out.json'), quickStart);
  await writeFile(join(nodeDir, 'index.log'), indexLog);
  return buildApps(tmp, quickStart, indexLog, types);
}

const CHECK_TS = `import { createSearch, isColbertError, type ColbertSearch, type Hit, type ScoringStatus } from 'colbert-web';
import { exposeEngine } from 'colbert-web/worker';
const search: ColbertSearch = await createSearch({ model: 'x', scoring: 'cpu', precision: 'int8' });
const hits: Hit[] = await search.search('q', { k: 3 });
const status: ScoringStatus = { device: search.scoringDevice };
console.log(hits.length, status, isColbertError(null), typeof exposeEngine, search.info.runtime);
`;

/** Type-checks a strict consumer file against the installed package with the repository's tsc; returns its output. */
function typecheck(dir: string, resolution: 'bundler' | 'nodenext'): string {
  writeFileSync(join(dir, 'check.ts'), CHECK_TS);
  const compilerOptions = {
    strict: true, skipLibCheck: false, noEmit: true, target: 'ES2022', lib: ['ES2023', 'DOM'], types: [],
    module: resolution === 'bundler' ? 'ESNext' : 'NodeNext', moduleResolution: resolution,
    exactOptionalPropertyTypes: true, noUncheckedIndexedAccess: true,
  };
  writeFileSync(join(dir, `tsconfig.${resolution}.json`), JSON.stringify({ compilerOptions, files: ['check.ts'] }));
  try {
    execFileSync(process.execPath, [resolve(REPO_ROOT, 'node_modules/typescript/bin/tsc'), '-p', `tsconfig.${resolution}.json`], { cwd: dir, encoding: 'utf8', stdio: 'pipe' });
    return '';
  } catch (err) {
    return `${(err as { stdout?: string }).stdout ?? ''}${(err as { stderr?: string }).stderr ?? ''}` || String(err);
  }
}

/** Builds the Vite and webpack apps and puts the Node-built index file beside each. */
async function buildApps(tmp: string, quickStart: string, indexLog: string, types: ConsumerSetup['types']): Promise<ConsumerSetup> {
  const app = await readFile(resolve(import.meta.dirname, 'app.js'), 'utf8');
  await writeFile(join(tmp, 'vite/main.js'), app);
  await mkdir(join(tmp, 'webpack/src'), { recursive: true });
  await writeFile(join(tmp, 'webpack/src/index.js'), app);
  timed('vite build', () => sh(join(tmp, 'vite/node_modules/.bin/vite'), ['build'], join(tmp, 'vite')));
  timed('webpack', () => sh(join(tmp, 'webpack/node_modules/.bin/webpack'), [], join(tmp, 'webpack')));
  await writeFile(join(tmp, 'webpack/dist/index.html'), html('./main.js'));
  for (const name of ['vite', 'webpack']) await cp(join(tmp, 'node/site/docs.cbwidx'), join(tmp, name, 'dist/docs.cbwidx'));
  const node = JSON.parse(quickStart.trim().split('\n').pop()!) as ConsumerSetup['node'];
  const result: ConsumerSetup = { state: 'ready', indexLog, dirs: { vite: join(tmp, 'vite/dist'), webpack: join(tmp, 'webpack/dist') } };
  if (node) result.node = node;
  if (types) result.types = types;
  return result;
}

export default async function setup(): Promise<() => Promise<void>> {
  assertChromium();
  const result = await prepare();
  process.env[CONSUMERS_ENV] = JSON.stringify(result);
  const tmp = result.dirs ? resolve(result.dirs.vite, '../..') : undefined;
  return async () => {
    if (tmp && !process.env['COLBERT_KEEP_CONSUMERS'] && !process.env['COLBERT_CONSUMERS_REUSE']) await rm(tmp, { recursive: true, force: true });
  };
}
