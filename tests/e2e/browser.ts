/**
 * A headless Chromium from npm (`@sparticuz/chromium`, or CHROMIUM_PATH) driven by playwright-core against the real
 * engine in browser mode (built app and UI).
 */
import fs from 'node:fs';
import path from 'node:path';
import sparticuz from '@sparticuz/chromium';
import { type Browser, chromium, type LaunchOptions, type Locator, type Page } from 'playwright-core';
import { afterAll, beforeAll, expect } from 'vitest';
import { unpackedChromium } from '../helpers/chromium.js';
import { type EngineProcess, ROOT, startEngineProcess } from '../helpers/engine-process.js';
import { fixturePath } from '../helpers/fixtures.js';
import { tmpDir } from '../helpers/tmp.js';

export const SCREENSHOTS = path.join(ROOT, 'tests', 'e2e', 'screenshots');

/** No network chatter from the browser: these tests run offline. */
const QUIET = [
  '--disable-quic',
  '--no-first-run',
  '--disable-background-networking',
  '--disable-component-update',
  '--disable-sync',
];

/**
 * The package's flags weaken web security for serverless scraping; the app's CSP and same-origin checks are part of
 * what these tests exercise, so those two stay off.
 */
const INSECURE = new Set(['--disable-web-security', '--allow-running-insecure-content']);

/**
 * How to launch the browser: CHROMIUM_PATH when set (any Chromium, e.g. Debian's /usr/bin/chromium), otherwise the
 * one inside `@sparticuz/chromium` with its own fonts and libraries, so the run needs nothing outside npm.
 */
export function browserLaunch(): LaunchOptions {
  const override = process.env.CHROMIUM_PATH;
  if (override) {
    if (!fs.existsSync(override)) throw new Error(`CHROMIUM_PATH is set to ${override}, which does not exist`);
    return { executablePath: override, args: ['--headless', '--no-sandbox', '--disable-gpu', ...QUIET] };
  }
  const c = unpackedChromium();
  return {
    executablePath: c.executable,
    args: [...sparticuz.args.filter((a) => !INSECURE.has(a)), '--no-sandbox', ...QUIET],
    env: {
      ...process.env,
      // Only the package's fonts (Open Sans): screenshots show text, and the same text, on any machine.
      FONTCONFIG_FILE: c.fontConfig,
      LD_LIBRARY_PATH: [c.libraries, process.env.LD_LIBRARY_PATH].filter(Boolean).join(':'),
    },
  };
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
  // Before the engine starts: a missing browser leaves nothing running.
  const launch = browserLaunch();
  const engine = await startEngineProcess({ ...options, fromBuild: true });
  let browser: Browser | null = null;
  try {
    // playwright-core gives every launch a fresh, empty profile (the --user-data-dir of a manual run).
    browser = await chromium.launch(launch);
    const page = await browser.newPage({ viewport: { width: 1280, height: 800 } });
    const errors: string[] = [];
    page.on('pageerror', (e) => errors.push(`pageerror: ${e.message}`));
    page.on('console', (m) => {
      if (m.type() === 'error') errors.push(`console: ${m.text()}`);
    });
    await page.goto(`${engine.url}/?token=${engine.token}`);
    fs.mkdirSync(SCREENSHOTS, { recursive: true });
    const opened = browser;
    return {
      engine,
      browser: opened,
      page,
      errors,
      async close() {
        try {
          await opened.close();
        } finally {
          await engine.stop();
        }
      },
      async shot(name) {
        const file = path.join(SCREENSHOTS, `${name}.png`);
        await page.screenshot({ path: file });
        return file;
      },
    };
  } catch (err) {
    // Any step after the engine started failed (launch, new page, first load): leave no process behind.
    await browser?.close().catch(() => undefined);
    await engine.stop();
    throw err;
  }
}

/**
 * For a describe block: a fresh app home and work folder, the app opened before the tests and closed after.
 * `session()` returns the open session.
 */
export function useAppSession(): { home: string; work: string; session(): Session } {
  const home = tmpDir();
  const work = tmpDir();
  let opening: Promise<Session> | null = null;
  let s: Session | null = null;
  beforeAll(async () => {
    opening = openApp({ home });
    s = await opening;
  });
  afterAll(async () => {
    // Also when the hook timed out before the app finished opening: wait for it, then close it.
    const opened = s ?? (await opening?.catch(() => null));
    await opened?.close();
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

/**
 * Draws a lasso ring of radius `r` around (`cx`, `cy`) on the Map's canvas, in the map's `width` x `height` drawing
 * units (24 points, moved through with the mouse held down), after choosing the Lasso tool.
 */
export async function lassoRing(
  page: Page,
  canvas: Locator,
  size: { width: number; height: number },
  ring: { cx: number; cy: number; r: number },
): Promise<void> {
  await page.getByRole('button', { name: 'Lasso' }).click();
  await canvas.scrollIntoViewIfNeeded();
  const box = await canvas.boundingBox();
  if (!box) throw new Error('no canvas');
  const toPage = (x: number, y: number) =>
    [box.x + (x * box.width) / size.width, box.y + (y * box.height) / size.height] as const;
  const points = Array.from({ length: 24 }, (_, i) => {
    const a = (2 * Math.PI * i) / 24;
    return toPage(ring.cx + ring.r * Math.cos(a), ring.cy + ring.r * Math.sin(a));
  });
  await page.mouse.move(...(points[0] as readonly [number, number]));
  await page.mouse.down();
  for (const p of points.slice(1)) await page.mouse.move(p[0], p[1], { steps: 2 });
  await page.mouse.up();
}

/** Creates a project at `folder` through the Home view, without the starter model (the test brings its own). */
export async function createBareProject(s: Session, folder: string): Promise<void> {
  const { page } = s;
  await page.getByLabel('Project folder', { exact: true }).fill(folder);
  // A project without the starter model: this test brings its own (issue 26 adds it by default).
  await page.getByLabel('Add the starter model').uncheck();
  await page.getByRole('button', { name: 'Create project' }).click();
  await page
    .getByTestId('project-name')
    .filter({ hasText: path.basename(folder) })
    .waitFor();
}

/**
 * Creates a project at `folder` through the Home view, adds the synthetic tour (2 fps, 48 px short side) and, once it
 * is ingested, opens the Train view with the tiny ViT from scratch chosen.
 */
export async function trainViewOnTour(s: Session, folder: string): Promise<void> {
  const { page } = s;
  await createBareProject(s, folder);
  await s.engine.call('library.add', {
    paths: [fixturePath('synthetic', 'tour.mp4')],
    sampling: { policy: 'fps', fps: 2 },
    frameSize: { mode: 'short-side', size: 48 },
  });
  await expect.poll(async () => (await s.engine.call('library.list', { status: 'done' })).items.length).toBe(1);
  await page.getByRole('link', { name: 'Train' }).click();
  await page.getByRole('checkbox').first().waitFor();
  await page.getByLabel('Start from').selectOption('scratch:tiny');
}

/**
 * In the Train view: a small NeCo run adapting model `baseId` (2 local crops, 1 frame a step, 32 px crops, `steps`
 * steps), ready to start.
 */
export async function fillNecoRun(page: Page, o: { baseId: number; steps: number }): Promise<void> {
  await page.getByLabel('Start from').selectOption(`model:${o.baseId}`);
  await page.getByLabel('Method').selectOption('neco');
  await page.getByTestId('neco-settings').waitFor();
  await page.getByLabel('Local crops').fill('2');
  await page.getByLabel('Batch').fill('1');
  await page.getByLabel('Steps').fill(String(o.steps));
  await page.getByLabel('Crop size').fill('32');
}
