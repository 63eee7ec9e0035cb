/**
 * Browser tests: real Chromium with SwiftShader WebGPU (see ../shared/docs/browser-testing.md).
 * test/support/global-setup.ts builds the library, generates the test models and starts the
 * server; specs read its URL from COLBERT_TEST_BASE_URL (test/support/browser.ts).
 */
import { defineConfig } from '@playwright/test';
import { chromiumLaunchOptions } from './test/support/browser.ts';

export default defineConfig({
  testDir: 'test/browser',
  testMatch: '*.spec.ts',
  // Two cores, and SwiftShader uses them all: one spec at a time keeps timings stable.
  workers: 1,
  fullyParallel: false,
  timeout: 120_000,
  retries: 0,
  forbidOnly: !!process.env['CI'],
  reporter: 'list',
  globalSetup: './test/support/global-setup.ts',
  use: {
    browserName: 'chromium',
    launchOptions: chromiumLaunchOptions(),
    trace: 'off',
  },
});
