/**
 * Get models, end to end in browser mode: the catalog panel, a DINO training checkpoint (.pth) dropped on the
 * panel and imported without Python, the model used to segment a frame in Segment, and a Download click against a
 * local server on 127.0.0.1 (the shipped catalog plus two test entries through FLANEUR_CATALOG; no real host is
 * ever contacted) and against a closed port (the offline message).
 */
import crypto from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { pathToFileURL } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ROOT } from '../helpers/engine-process.js';
import { closedPort, serveFiles } from '../helpers/file-server.js';
import { fixturePath } from '../helpers/fixtures.js';
import { tmpDir } from '../helpers/tmp.js';
import { type Session, useAppSession } from './browser.js';

const FILE = 'dino_tiny.dino-checkpoint.pth';
// The server's file differs from the dropped one (a dropped file with the entry's SHA-256 would be recognised as it).
const SERVED = 'dino_tiny.zip.pth';
const bytes = fs.readFileSync(fixturePath('pth', SERVED));
const server = await serveFiles({ [SERVED]: bytes });
const shipped = JSON.parse(fs.readFileSync(path.join(ROOT, 'models', 'catalog.json'), 'utf8')) as {
  entries: Record<string, unknown>[];
};
const base = shipped.entries[0] as Record<string, unknown>;
const tiny = {
  ...base,
  id: 'tiny-local',
  title: 'Tiny DINO (local test server)',
  dim: 48,
  depth: 2,
  heads: 3,
  fileName: 'tiny-local.pth',
  url: server.url(SERVED),
  huggingFace: null,
  bytes: bytes.length,
  sha256: crypto.createHash('sha256').update(bytes).digest('hex'),
};
const offline = {
  ...tiny,
  id: 'tiny-offline',
  title: 'Tiny DINO (no network)',
  url: `http://127.0.0.1:${await closedPort()}/x.pth`,
  fileName: 'x.pth',
};
const catalogFile = path.join(tmpDir(), 'catalog.json');
fs.writeFileSync(catalogFile, JSON.stringify({ ...shipped, entries: [...shipped.entries, tiny, offline] }));
process.env.FLANEUR_CATALOG = catalogFile;

describe('Get models, end to end in browser mode', () => {
  const app = useAppSession();
  const { work } = app;
  let s: Session;
  beforeAll(() => {
    s = app.session();
  });
  afterAll(() => server.close());
  const mask = (f: number) => fixturePath('synthetic', 'masks', `${String(f * 10).padStart(4, '0')}.png`);

  it('lists the published models with what they are good for and how to get them', async () => {
    const { page } = s;
    await page.getByLabel('Project folder', { exact: true }).fill(path.join(work, 'get'));
    // A project without the starter model: this test brings its own (issue 26 adds it by default).
    await page.getByLabel('Add the starter model').uncheck();
    await page.getByRole('button', { name: 'Create project' }).click();
    await page.getByTestId('project-name').filter({ hasText: 'get' }).waitFor();
    await page.getByRole('link', { name: 'Models' }).click();
    await page.getByRole('heading', { name: 'Get models' }).waitFor();
    const dino = page.getByTestId('catalog-dino-vits16');
    await expect(dino.textContent()).resolves.toMatch(/DINO ViT-S\/16.*object discovery.*Apache-2\.0.*≈ 8\d\.\d MB/);
    await expect(dino.getByRole('button', { name: 'Download' }).count()).resolves.toBe(1);
    const v3 = page.getByTestId('catalog-dinov3-vits16');
    await expect(v3.textContent()).resolves.toMatch(/SHA-256 prefix 08c60483.*Gated: accept Meta's DINOv3 licence/);
    await expect(v3.getByRole('button', { name: 'Download' }).count()).resolves.toBe(0);
    await s.shot('20-get-models');
  });

  it('imports a .pth dropped on the panel: the teacher, without Python', async () => {
    const { page } = s;
    // A training checkpoint as users receive it, with the Hugging Face-style config.json naming its head count.
    const dir = path.join(work, 'downloaded');
    fs.mkdirSync(dir);
    const file = path.join(dir, 'checkpoint.pth');
    fs.copyFileSync(fixturePath('pth', FILE), file);
    fs.writeFileSync(path.join(dir, 'config.json'), JSON.stringify({ num_attention_heads: 3 }));
    await page.getByTestId('model-dropzone').evaluate((el, uri) => {
      // In the page: a file manager's drop (a file:// URI list). Typed by hand: the tests compile without DOM types.
      const w = globalThis as unknown as {
        DataTransfer: new () => { setData(type: string, value: string): void };
        DragEvent: new (type: string, init: Record<string, unknown>) => unknown;
      };
      const dt = new w.DataTransfer();
      dt.setData('text/uri-list', uri);
      const drop = new w.DragEvent('drop', { dataTransfer: dt, bubbles: true, cancelable: true });
      (el as unknown as { dispatchEvent(e: unknown): boolean }).dispatchEvent(drop);
    }, pathToFileURL(file).href);
    const row = page.getByTestId('model-1');
    await row.waitFor();
    await expect(row.textContent()).resolves.toMatch(
      /checkpoint.*'teacher' of a PyTorch checkpoint \(zip format\); not 'student'; prefix 'module\.backbone\.' removed/,
    );
  });

  it('segments a frame with the imported model', async () => {
    const { page } = s;
    await s.engine.call('library.add', {
      paths: [fixturePath('synthetic', 'tour.mp4')],
      sampling: { policy: 'fps', fps: 1 },
      frameSize: { mode: 'short-side', size: 240 },
    });
    await page.getByRole('link', { name: 'Segment' }).click();
    await page.getByRole('button', { name: 'Extract features for the library' }).click();
    await page.getByTestId('run-1').filter({ hasText: '20 frames' }).waitFor({ timeout: 60_000 });
    await expect(page.getByTestId('run-1').textContent()).resolves.toMatch(/checkpoint/);
    await page.getByLabel('Classes, in mask order').fill('background, disc, box, kite');
    await page.locator('#ex0-media').selectOption({ label: 'tour.mp4 (20 frames)' });
    await page.locator('#ex0-frame').fill('5');
    await page.locator('#ex0-mask').fill(mask(4));
    await page.getByRole('button', { name: 'Build bank' }).click();
    await page.getByTestId('bank-1').waitFor();
    await page.locator('#apply-media').selectOption({ label: 'tour.mp4 (20 frames)' });
    await page.locator('#apply-frame').fill('9');
    await page.getByLabel('Ground-truth mask (optional, for IoU)').fill(mask(8));
    await page.getByRole('button', { name: 'Segment', exact: true }).click();
    await page.getByTestId('segment-result').waitFor({ timeout: 30_000 });
    await expect(page.getByTestId('segment-miou').textContent()).resolves.toMatch(/mIoU \d+\.\d/);
  });

  it('downloads on click from a local server with progress, then lists the model; offline says what to do', async () => {
    const { page } = s;
    await page.getByRole('link', { name: 'Models' }).click();
    server.cutNext(1, 200_000);
    const local = page.getByTestId('catalog-tiny-local');
    await local.getByRole('button', { name: 'Download' }).click();
    await local.filter({ hasText: /In this project \(#2\)/ }).waitFor({ timeout: 30_000 });
    await page.getByTestId('model-2').filter({ hasText: 'Tiny DINO (local test server)' }).waitFor();
    expect(server.requests.filter((r) => r.startsWith('bytes=')).length).toBe(1);

    const off = page.getByTestId('catalog-tiny-offline');
    await off.getByRole('button', { name: 'Download' }).click();
    await off
      .getByRole('status')
      .filter({ hasText: /seems offline/ })
      .waitFor({ timeout: 30_000 });
    await expect(off.textContent()).resolves.toMatch(/Flaneur works without a network: download x\.pth/);
    await expect(off.getByRole('link', { name: 'Import a file instead' }).count()).resolves.toBe(1);
    await off.scrollIntoViewIfNeeded();
    await s.shot('21-get-models-downloads');
    expect(s.errors).toEqual([]);
  });
});
