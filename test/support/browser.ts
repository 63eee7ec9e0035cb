/**
 * Launching Chromium for browser tests, with SwiftShader WebGPU, exactly as
 * ../shared/docs/browser-testing.md describes. `npx playwright install` cannot work on the
 * project's machines, so the browser is always the system one (`apt-get install chromium`) or
 * whatever `CHROMIUM_PATH` names (your own Chrome, or Playwright's).
 */
import { existsSync } from 'node:fs';
import { chromium, type Browser, type LaunchOptions } from 'playwright-core';

/** Used when `CHROMIUM_PATH` is not set: Debian's `chromium` package. */
export const DEFAULT_CHROMIUM_PATH = '/usr/bin/chromium';

/**
 * Chromium flags for every browser test.
 * - `--enable-unsafe-webgpu`, `--enable-webgpu-developer-features`: WebGPU on Linux (SwiftShader
 *   when no GPU), with adapter info and developer features.
 * - `--no-sandbox`: tests run as root in containers.
 * - The rest stop background traffic: without them the browser keeps trying to reach outside and
 *   gets refused.
 */
export const CHROMIUM_ARGS: readonly string[] = Object.freeze([
  '--enable-unsafe-webgpu',
  '--enable-webgpu-developer-features',
  '--no-sandbox',
  '--disable-quic',
  '--no-first-run',
  '--disable-background-networking',
  '--disable-component-update',
  '--disable-sync',
]);

/** The Chromium executable: `$CHROMIUM_PATH`, else {@link DEFAULT_CHROMIUM_PATH}. */
export function chromiumPath(): string {
  const fromEnv = process.env['CHROMIUM_PATH'];
  return fromEnv !== undefined && fromEnv !== '' ? fromEnv : DEFAULT_CHROMIUM_PATH;
}

/** Launch options shared by {@link launchChromium} and playwright.config.ts (headless). */
export function chromiumLaunchOptions(): LaunchOptions {
  return { executablePath: chromiumPath(), headless: true, args: [...CHROMIUM_ARGS] };
}

/** Throws a message that says how to fix it when the Chromium executable is missing. */
export function assertChromium(): void {
  const path = chromiumPath();
  if (!existsSync(path)) {
    const origin = process.env['CHROMIUM_PATH'] ? 'CHROMIUM_PATH' : `the default (CHROMIUM_PATH is not set)`;
    throw new Error(
      `Chromium not found at ${path}, taken from ${origin}. Install it ` +
        '(`apt-get install -y --no-install-recommends chromium` on Debian) or set CHROMIUM_PATH to a Chrome/Chromium executable.',
    );
  }
}

/** Starts headless Chromium with WebGPU enabled. Close it with `browser.close()`. */
export async function launchChromium(): Promise<Browser> {
  assertChromium();
  return chromium.launch(chromiumLaunchOptions());
}

/** Environment variables that test/support/global-setup.ts sets for the specs. */
export const TEST_ENV = Object.freeze({
  /** Base URL of the test server, no trailing slash. */
  baseUrl: 'COLBERT_TEST_BASE_URL',
  /** `"ready"`, or `"skipped: <reason>"` when the test models were not generated. */
  models: 'COLBERT_TEST_MODELS',
  /** `"ready"`, or `"skipped: <reason>"` when the library build was skipped. */
  build: 'COLBERT_TEST_BUILD',
});

/** URL prefix under which `.cache/test-models` (everything makeTestModels wrote) is served. */
export const TEST_MODELS_PREFIX = '/models/';
/** URL prefix of the Hub-like mount: `/hub/<owner>/<name>/resolve/<revision>/<file>`. */
export const TEST_HUB_PREFIX = '/hub/';
/** Repo id under which the Hub-like mount serves the tiny model in the transformers.js layout. */
export const TEST_HUB_REPO = 'colbert-web-test/tiny-modernbert';
/** Repo id of the contextual test model (test/fixtures/contextual-model.ts) on the Hub-like mount; `/models/contextual-tjs/` serves it by path. */
export const TEST_CONTEXTUAL_HUB_REPO = 'colbert-web-test/contextual-modernbert';

/** The test server's base URL (no trailing slash); throws when global setup did not run. */
export function testBaseUrl(): string {
  const url = process.env[TEST_ENV.baseUrl];
  if (!url) {
    throw new Error(`${TEST_ENV.baseUrl} is not set: run browser tests through \`npx playwright test\` so test/support/global-setup.ts starts the server.`);
  }
  return url;
}

/** The Hub host serving {@link TEST_HUB_REPO}, for the library's `hubUrl` option. */
export function testHubUrl(): string {
  return `${testBaseUrl()}${TEST_HUB_PREFIX.slice(0, -1)}`;
}

/** URL of the empty fixture page that specs `page.goto` before `page.evaluate`. */
export function harnessUrl(): string {
  return `${testBaseUrl()}/test/browser/harness.html`;
}

/** Why the test models are unavailable, or null when they are ready. For `test.skip(cond, reason)`. */
export function testModelsMissing(): string | null {
  const state = process.env[TEST_ENV.models];
  return state === 'ready' ? null : `test models unavailable (${state ?? 'global setup did not run'})`;
}

/** Why the library build (dist/) is unavailable, or null when it is ready. */
export function libraryBuildMissing(): string | null {
  const state = process.env[TEST_ENV.build];
  return state === 'ready' ? null : `library build unavailable (${state ?? 'global setup did not run'})`;
}
