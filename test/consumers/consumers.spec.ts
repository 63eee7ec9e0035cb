/**
 * The packed package as users install it (see setup.ts): the Node project's quick start and
 * index command, and the Vite and webpack 5 builds in Debian Chromium, with and without
 * cross-origin isolation: the right top hit (quick start, and the index file built in Node),
 * the default engine worker, CPU MaxSim threads >= 2 only where isolated, `scoring: 'webgpu'` on
 * SwiftShader, no failed request and no console error; and the Vite project once more on the
 * vite dev server (unbuilt, no config), as a developer first runs it.
 */
import { spawn } from 'node:child_process';
import { copyFile, mkdir, rm, symlink } from 'node:fs/promises';
import { createServer, type AddressInfo } from 'node:net';
import { dirname, join } from 'node:path';
import { expect, test, type Page } from '@playwright/test';
import { startServer, type TestServer } from '../support/server.ts';
import { CONSUMERS_ENV, TEST_MODELS_DIR, type ConsumerSetup } from './setup.ts';

const setup = JSON.parse(process.env[CONSUMERS_ENV] ?? '{"state":"global setup did not run"}') as ConsumerSetup;
const missing = setup.state === 'ready' ? null : `consumer projects unavailable (${setup.state})`;

test('Node: the README quick start runs natively (onnxruntime-node), and `colbert-web index` writes the index', () => {
  test.skip(missing !== null, missing ?? '');
  expect(setup.node).toMatchObject({ device: 'wasm', runtime: 'onnxruntime-node' });
  expect(setup.node!.hits.map((h) => h.id)).toEqual(['d1', 'd2']);
  expect(setup.indexLog).toMatch(/skip logo\.png: not a \.txt, \.md or \.html file/);
  expect(setup.indexLog).toMatch(/Wrote site\/docs\.cbwidx: \d+ passages from 3 file\(s\)/);
});

test('Types: the public declarations compile in a strict consumer (skipLibCheck: false) under bundler and nodenext resolution', () => {
  test.skip(missing !== null, missing ?? '');
  expect(setup.types).toEqual({ bundler: '', nodenext: '' });
});

/** What the app page reports and loads, checked the same way for every way of serving it. */
async function checkApp(page: Page, url: string, isolated: boolean): Promise<{ failed: string[]; wasm: boolean }> {
  const problems: string[] = [];
  page.on('console', (m) => {
    if (m.type() === 'error') problems.push(`console: ${m.text()}`);
  });
  page.on('pageerror', (e) => problems.push(`pageerror: ${e.message}`));
  const workers: string[] = [];
  page.on('worker', (w) => workers.push(w.url()));
  const failed: string[] = [];
  let wasm = false;
  page.on('response', (r) => {
    if (r.status() >= 400) failed.push(`${r.status()} ${r.url()}`);
    if (new URL(r.url()).pathname.endsWith('.wasm') && r.status() === 200) wasm = true;
  });
  await page.goto(url);
  await page.waitForFunction(() => (window as { __result?: unknown }).__result !== undefined, undefined, { timeout: 150_000 });
  const result = (await page.evaluate(() => (window as { __result?: unknown }).__result)) as Record<string, any>;
  expect(result['error'], JSON.stringify(result)).toBeUndefined();
  expect(result['crossOriginIsolated']).toBe(isolated);
  expect(result['quickStart'].top).toBe('d1');
  expect(result['index'].top).toMatchObject({ file: 'kitchen.html', title: 'Bread' });
  expect(result['index'].imported.documents).toBeGreaterThanOrEqual(3);
  const cpu = result['index'].scoring;
  expect(cpu.device).toBe('cpu');
  if (isolated) expect(cpu.threads).toBeGreaterThanOrEqual(2);
  else expect(cpu.threads ?? 1).toBe(1);
  expect(result['webgpu'].scoring.device).toBe('webgpu');
  expect(result['webgpu'].top).toMatchObject({ file: 'kitchen.html' });
  // The default worker: createSearch() without a worker option started the engine's own
  // module worker, one per search instance (quick start, CPU, WebGPU), from the app's origin.
  expect(workers.length, workers.join(', ')).toBeGreaterThanOrEqual(3);
  const origin = new URL(url).origin;
  for (const w of workers) expect(w.startsWith(origin)).toBe(true);
  expect(problems).toEqual([]);
  return { failed, wasm };
}

for (const bundler of ['vite', 'webpack'] as const) {
  for (const isolated of [true, false]) {
    test(`${bundler}, ${isolated ? 'cross-origin isolated' : 'not isolated'}: quick start, the Node-built index, WebGPU scoring, default worker`, async ({ page }) => {
      test.skip(missing !== null, missing ?? '');
      const server: TestServer = await startServer({ root: setup.dirs![bundler], isolation: isolated, mounts: { '/models/': TEST_MODELS_DIR } });
      try {
        await checkApp(page, `${server.url}/index.html`, isolated);
        const failed = server.log.filter((r) => r.status >= 400).map((r) => `${r.status} ${r.path}`);
        expect(failed).toEqual([]);
        expect(server.log.some((r) => r.path.endsWith('.wasm') && r.status === 200)).toBe(true);
      } finally {
        await server.close();
      }
    });
  }
}

test('vite dev server, no config: the same app runs unbuilt (dependency pre-bundling, the worker and the .wasm served by vite)', async ({ page }) => {
  test.skip(missing !== null, missing ?? '');
  const project = dirname(setup.dirs!.vite);
  // What a developer does: static files in public/ (the test models and the Node-built index).
  await mkdir(join(project, 'public'), { recursive: true });
  await rm(join(project, 'public/models'), { force: true, recursive: true });
  await symlink(TEST_MODELS_DIR, join(project, 'public/models'), 'dir');
  await copyFile(join(setup.dirs!.vite, 'docs.cbwidx'), join(project, 'public/docs.cbwidx'));
  const port = await freePort();
  const dev = spawn(join(project, 'node_modules/.bin/vite'), ['--port', String(port), '--strictPort', '--host', '127.0.0.1'], { cwd: project, stdio: ['ignore', 'pipe', 'pipe'] });
  let log = '';
  dev.stdout.on('data', (d: Buffer) => (log += d.toString()));
  dev.stderr.on('data', (d: Buffer) => (log += d.toString()));
  try {
    await expect.poll(() => log, { timeout: 60_000 }).toContain(`${port}`);
    const { failed, wasm } = await checkApp(page, `http://127.0.0.1:${port}/index.html`, false);
    expect(failed, log).toEqual([]);
    expect(wasm).toBe(true);
    // vite prints warnings for dependencies it cannot serve well (e.g. source maps naming files
    // the package does not ship): none.
    expect(log).not.toMatch(/error|Sourcemap for/i);
  } finally {
    dev.kill();
  }
});

function freePort(): Promise<number> {
  return new Promise((done, fail) => {
    const probe = createServer();
    probe.once('error', fail);
    probe.listen(0, '127.0.0.1', () => {
      const { port } = probe.address() as AddressInfo;
      probe.close(() => done(port));
    });
  });
}
