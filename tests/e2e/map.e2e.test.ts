import path from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import type { CommandResult } from '../../native/api/contract.js';
import { fitPoints, place } from '../../renderer/src/views/map/fit.js';
import { fixturePath } from '../helpers/fixtures.js';
import { writeInitViT } from '../helpers/models.js';
import { lassoRing, type Session, useAppSession } from './browser.js';

const ROOT = fixturePath('fashion', 'train');
const W = 900;
const H = 600;

describe('embedding map and kNN classification, end to end in browser mode', () => {
  const app = useAppSession();
  const { work } = app;
  let s: Session;
  beforeAll(() => {
    s = app.session();
  });

  it('maps 300 Fashion-MNIST images, lassoes the trouser cluster and opens it in the Library', async () => {
    const { page } = s;
    await page.getByLabel('Project folder', { exact: true }).fill(path.join(work, 'fashion'));
    // A project without the starter model: this test brings its own (issue 26 adds it by default).
    await page.getByLabel('Add the starter model').uncheck();
    await page.getByRole('button', { name: 'Create project' }).click();
    await page.getByTestId('project-name').filter({ hasText: 'fashion' }).waitFor();
    await s.engine.call('library.add', { paths: [ROOT] });
    const model = (await s.engine.call('models.import', {
      path: writeInitViT(path.join(work, 'vit.safetensors')),
    })) as { id: number };
    await expect
      .poll(async () => ((await s.engine.call('library.list', { status: 'done' })) as { total: number }).total, {
        timeout: 120_000,
      })
      .toBe(300);
    await s.engine.call('features.extract', { modelId: model.id, size: 32 });
    await expect
      .poll(async () => ((await s.engine.call('features.runs', {})) as { frames: number }[])[0]?.frames ?? 0, {
        timeout: 60_000,
      })
      .toBe(300);

    await page.getByRole('link', { name: 'Map' }).click();
    await page.getByLabel('Layout').selectOption('umap');
    await page.getByRole('button', { name: 'Build map' }).click();
    const canvas = page.getByTestId('map-canvas');
    await canvas.waitFor({ timeout: 60_000 });
    await page.getByLabel('Colour by').selectOption('class');
    await page.getByLabel('Labelled folder').fill(ROOT);
    await page.getByRole('list', { name: 'Legend' }).getByText('trouser').waitFor();
    await s.shot('20-map-by-class');

    // Where the trousers are on the canvas (the same fit as the view's).
    const map = (await s.engine.call('map.get', { id: 1, root: ROOT })) as CommandResult<'map.get'>;
    const fit = fitPoints(map.points, W, H);
    const trouser = map.classes.indexOf('trouser');
    const at = map.points.filter((_, i) => map.labels[i] === trouser).map((p) => place(fit, p));
    const cx = at.reduce((a, p) => a + p[0], 0) / at.length;
    const cy = at.reduce((a, p) => a + p[1], 0) / at.length;
    const radii = at.map(([x, y]) => Math.hypot(x - cx, y - cy)).sort((a, b) => a - b);
    const r = Math.max(8, (radii[Math.floor(radii.length * 0.6)] as number) * 1.1);

    await lassoRing(page, canvas, { width: W, height: H }, { cx, cy, r });
    const selection = page.getByTestId('map-selection');
    await expect.poll(() => selection.textContent()).toMatch(/\d+ points? selected in \d+ items?$/);
    const items = Number((await selection.textContent())?.match(/in (\d+) item/)?.[1]);
    expect(items).toBeGreaterThanOrEqual(Math.floor(at.length * 0.5));
    await s.shot('21-map-lasso');

    await page.getByRole('button', { name: 'Open selection in Library' }).click();
    const banner = page.getByTestId('library-selection');
    await banner.waitFor();
    await expect.poll(() => banner.textContent()).toContain(`Showing ${items} items of 300`);
    await expect.poll(() => page.getByRole('list', { name: 'Media' }).locator('li').count()).toBe(items);
    await s.shot('22-library-selection');
    await page.getByRole('button', { name: 'Show everything' }).click();
    await expect.poll(() => page.getByRole('list', { name: 'Media' }).locator('li').count()).toBe(300);
  });

  it('classifies the labelled folder with kNN and shows accuracy and the confusion matrix', async () => {
    const { page } = s;
    await page.getByRole('link', { name: 'Classify' }).click();
    await page.getByLabel('Labelled folder (sub-folder = class)').fill(ROOT);
    await page.getByRole('button', { name: 'Classify' }).click();
    await expect.poll(() => page.getByTestId('classify-accuracy').textContent()).toMatch(/\d+\.\d %/);
    const acc = Number((await page.getByTestId('classify-accuracy').textContent())?.replace(' %', ''));
    expect(acc).toBeGreaterThan(40);
    await page.getByRole('table', { name: /Confusion matrix/ }).waitFor();
    await s.shot('23-classify');
  });

  it('computes FUNGI features from the button, then classifies and retrieves with them', async () => {
    const { page } = s;
    await page.getByRole('button', { name: 'Compute FUNGI features' }).click();
    // FUNGI on 300 images: ~3 min on two idle cores, far longer when the machine is shared.
    await page.getByTestId('classify-fungi-status').waitFor({ timeout: 480_000 });
    await page.getByLabel('FUNGI gradients').check();
    await page.getByRole('button', { name: 'Classify' }).click();
    await expect.poll(() => page.getByText('FUNGI gradients, leave-one-out').count()).toBe(1);
    const acc = Number((await page.getByTestId('classify-accuracy').textContent())?.replace(' %', ''));
    expect(acc).toBeGreaterThan(40);
    await s.shot('24-classify-fungi');

    await page.getByRole('link', { name: 'Retrieve' }).click();
    // The Classify view (which also has a 'FUNGI gradients' choice) is gone once Retrieve's button is there.
    await page.getByRole('button', { name: 'Find similar images' }).waitFor();
    await page.getByLabel('FUNGI gradients').check();
    await page.getByRole('button', { name: 'Find similar images' }).click();
    await page.getByRole('heading', { name: /Similar images \(FUNGI gradients\)/ }).waitFor();
    await expect.poll(() => page.getByTestId('image-results').locator('li').count()).toBe(12);
    await page.getByRole('heading', { name: /Similar images/ }).scrollIntoViewIfNeeded();
    await s.shot('25-retrieve-fungi');
    expect(s.errors).toEqual([]);
  }, 600_000);
});
