/**
 * Debian's Chromium driven by playwright-core against the real engine in browser mode (built app and UI).
 */
import fs from 'node:fs';
import path from 'node:path';
import { type Browser, chromium, type Page } from 'playwright-core';
import { afterAll, beforeAll } from 'vitest';
import { type EngineProcess, ROOT, startEngineProcess } from '../helpers/engine-process.js';
import { tmpDir } from '../helpers/tmp.js';

export const SCREENSHOTS = path.join(ROOT, 'tests', 'e2e', 'screenshots');

export function chromiumPath(): string {
  const candidates = [process.env.CHROMIUM_PATH, '/usr/bin/chromium', '/usr/bin/chromium-browser'];
  const found = candidates.find((p): p is string => Boolean(p && fs.existsSync(p)));
  if (!found)
    throw new Error('No Chromium found: install Debian chromium (apt-get install chromium) or set CHROMIUM_PATH');
  return found;
}

export interface Session {
  engine: EngineProcess;
  browser: Browser;
  page: Page;
  /** Browser console errors and page errors seen so far (a test fails on unexpected ones). */
  errors: string[];
  close(): Promise<void>;
  shot(name: string): Promise<string>;
}

export async function openApp(options: { home: string; project?: string }): Promise<Session> {
  if (!fs.existsSync(path.join(ROOT, 'build', 'renderer', 'index.html'))) {
    throw new Error('The UI is not built: run `npm run build` first (npm test does).');
  }
  const engine = await startEngineProcess({ ...options, fromBuild: true });
  // playwright-core gives every launch a fresh, empty profile (the --user-data-dir of a manual run).
  const browser = await chromium
    .launch({
      executablePath: chromiumPath(),
      args: [
        '--headless',
        '--no-sandbox',
        '--disable-gpu',
        '--disable-quic',
        '--no-first-run',
        '--disable-background-networking',
        '--disable-component-update',
        '--disable-sync',
      ],
    })
    .catch(async (err: unknown) => {
      await engine.stop();
      throw err;
    });
  const page = await browser.newPage({ viewport: { width: 1280, height: 800 } });
  const errors: string[] = [];
  page.on('pageerror', (e) => errors.push(`pageerror: ${e.message}`));
  page.on('console', (m) => {
    if (m.type() === 'error') errors.push(`console: ${m.text()}`);
  });
  await page.goto(`${engine.url}/?token=${engine.token}`);
  fs.mkdirSync(SCREENSHOTS, { recursive: true });
  return {
    engine,
    browser,
    page,
    errors,
    async close() {
      await browser.close();
      await engine.stop();
    },
    async shot(name) {
      const file = path.join(SCREENSHOTS, `${name}.png`);
      await page.screenshot({ path: file });
      return file;
    },
  };
}

/**
 * For a describe block: a fresh app home and work folder, the app opened before the tests and closed after.
 * `session()` returns the open session.
 */
export function useAppSession(): { home: string; work: string; session(): Session } {
  const home = tmpDir();
  const work = tmpDir();
  let s: Session | null = null;
  beforeAll(async () => {
    s = await openApp({ home });
  });
  afterAll(async () => {
    await s?.close();
  });
  return {
    home,
    work,
    session() {
      if (!s) throw new Error('the app is not open');
      return s;
    },
  };
}
