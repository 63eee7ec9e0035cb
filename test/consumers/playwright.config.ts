/**
 * Consumer tests (`npm run test:consumers`): the packed tarball installed into fresh Node, Vite
 * and webpack 5 projects (test/consumers/setup.ts), run in Debian Chromium. Separate from the
 * browser specs because they test the published package, not the repository's sources.
 */
import { defineConfig } from '@playwright/test';
import { chromiumLaunchOptions } from '../support/browser.ts';

export default defineConfig({
  testDir: '.',
  testMatch: '*.spec.ts',
  workers: 1,
  fullyParallel: false,
  timeout: 180_000,
  retries: 0,
  forbidOnly: !!process.env['CI'],
  reporter: 'list',
  globalSetup: './setup.ts',
  use: { browserName: 'chromium', launchOptions: chromiumLaunchOptions(), trace: 'off' },
});
