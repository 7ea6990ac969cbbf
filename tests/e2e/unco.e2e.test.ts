import fs from 'node:fs';
import path from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { encodePng } from '../../native/media/png.js';
import { makeCountScene } from '../../tools/synth/count.js';
import { writeTinyViT } from '../helpers/models.js';
import { type Session, useAppSession } from './browser.js';

describe('UnCo, end to end in browser mode', () => {
  const app = useAppSession();
  let s: Session;
  beforeAll(() => {
    s = app.session();
  });

  it('trains a tiny counter from a handful of images, then counts an image with it and shows the density map', async () => {
    const { page } = s;
    const scenes = [1, 2, 3, 4].map((i) => {
      const scene = makeCountScene(80 + i, { size: 224 });
      const file = path.join(app.work, `scene-${i}.png`);
      fs.writeFileSync(file, encodePng(scene.rgb, scene.width, scene.height));
      return { file, scene };
    });
    await page.getByLabel('Project folder', { exact: true }).fill(path.join(app.work, 'unco'));
    await page.getByLabel('Add the starter model').uncheck();
    await page.getByRole('button', { name: 'Create project' }).click();
    await page.getByTestId('project-name').filter({ hasText: 'unco' }).waitFor();
    await s.engine.call('library.add', {
      paths: scenes.map((x) => x.file),
      frameSize: { mode: 'short-side', size: 224 },
    });
    const model = await s.engine.call('models.import', { path: writeTinyViT(6), name: 'tiny backbone' });
    await page.getByRole('link', { name: 'Library' }).click();
    await page.locator('[data-testid^="media-"]').nth(3).waitFor({ timeout: 30_000 });

    // Train view: the counter as a method, on the tiny backbone, 6 steps of 2 collages.
    await page.getByRole('link', { name: 'Train' }).click();
    for (const x of scenes) await page.getByLabel(path.basename(x.file)).check();
    await page.getByLabel('Method').selectOption('unco');
    await page.getByTestId('unco-settings').waitFor();
    await page.getByLabel('Start from').selectOption(`model:${model.id}`);
    await page.getByLabel('Steps').fill('6');
    await page.getByLabel('Batch').fill('2');
    await page.getByLabel('Device').selectOption('cpu');
    await page.getByRole('button', { name: 'Start training' }).click();
    await page
      .getByTestId('train-status')
      .filter({ hasText: /^Step 6 \/ 6.*held-out collage MAE \d+\.\d\d/ })
      .waitFor({ timeout: 300_000 });
    await expect
      .poll(() => page.getByLabel('Run', { exact: true }).locator('option:checked').textContent(), { timeout: 30_000 })
      .toMatch(/Train an UnCo counter on model #\d+, 6 steps — done/);
    // What the counter learns from: a held-out collage, its target and the prediction, at the start and the end.
    await expect.poll(() => page.getByTestId('train-previews').locator('img').count()).toBe(2);
    await page.getByTestId('train-previews').scrollIntoViewIfNeeded();
    await s.shot('90-unco-train');
    // A counter is not an encoder: the registry still holds the backbone alone.
    expect((await s.engine.call('models.list', {})).map((m) => m.id)).toEqual([model.id]);

    // Count view: an exemplar on the first scene, counted with the trained counter.
    await page.getByRole('link', { name: 'Count' }).click();
    const stage = page.getByTestId('count-stage');
    await stage.waitFor({ timeout: 30_000 });
    const media = (await s.engine.call('library.list', {})).items.find((m) => m.path.endsWith('scene-1.png'));
    await page.locator('#count-media').selectOption({ value: String(media?.id) });
    // The scene's picture loaded and the whole stage on screen before the drag (its size follows the picture).
    await expect
      .poll(() =>
        stage.locator('img').evaluate((i: { complete: boolean; naturalWidth: number }) => i.complete && i.naturalWidth),
      )
      .toBe(224);
    await stage.evaluate((el: { scrollIntoView: (o: object) => void }) => el.scrollIntoView({ block: 'center' }));
    const box = await stage.boundingBox();
    if (!box) throw new Error('no stage');
    const [x, y, w, h] = scenes[0]?.scene.exemplar ?? [0, 0, 1, 1];
    const px = (a: number, b: number): [number, number] => [
      box.x + (a / 224) * box.width,
      box.y + (b / 224) * box.height,
    ];
    await page.mouse.move(...px(x, y));
    await page.mouse.down();
    await page.mouse.move(...px(x + w, y + h), { steps: 6 });
    await page.mouse.up();
    const panel = page.getByTestId('unco-panel');
    await panel.scrollIntoViewIfNeeded();
    await expect
      .poll(() => panel.getByLabel('Counter').locator('option:checked').textContent())
      .toMatch(/with exemplars/);
    await panel.getByRole('button', { name: 'Count with the counter (1 exemplar)' }).click();
    const number = page.getByTestId('unco-count');
    await number.waitFor({ timeout: 60_000 });
    const shown = Number(await number.textContent());
    expect(Number.isFinite(shown)).toBe(true);
    expect(shown).toBeGreaterThanOrEqual(0);
    // The density map over the frame; its label gives the sum the count is.
    const density = page.getByTestId('unco-density');
    await expect.poll(() => density.getAttribute('aria-label')).toMatch(/^Density map, 28 × 28, summing to /);
    expect(Number((await density.getAttribute('aria-label'))?.split('summing to ')[1])).toBeCloseTo(shown, 1);
    await panel.scrollIntoViewIfNeeded();
    await s.shot('91-unco-count-density');
    expect(s.errors).toEqual([]);
  });
});
