import path from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { TINY_VIT, writeViT } from '../helpers/models.js';
import { fillNecoRun, type Session, trainViewOnTour, useAppSession } from './browser.js';

describe('training, end to end in browser mode', () => {
  const app = useAppSession();
  let s: Session;
  beforeAll(() => {
    s = app.session();
  });

  it('trains a tiny ViT with Dora on the synthetic tour, with live loss, learning-rate and entropy plots', async () => {
    const { page } = s;
    await trainViewOnTour(s, path.join(app.work, 'train'));
    await page.getByLabel('Method').selectOption('dora');
    await page.getByLabel('Batch').fill('4');
    // Length in epochs: every chosen frame once per epoch (the tour: 40 frames at 2 fps), 4 frames a step.
    await page.getByLabel('Length in').selectOption('epochs');
    await page.getByLabel('Epochs').fill('2');
    await expect.poll(() => page.getByTestId('epoch-steps').textContent()).toBe('= 20 steps (40 frames)');
    await page.getByLabel('Length in').selectOption('steps');
    await page.getByLabel('Steps').fill('8');
    await page.getByLabel('Device').selectOption('cpu');
    await page.getByLabel('Crop size').fill('32');
    await page.getByLabel('Frames per clip').fill('2');
    await page.getByLabel('Stride').fill('2');
    await page.getByLabel('Objects').fill('2');
    await page.getByRole('button', { name: 'Start training' }).click();
    await page
      .getByTestId('train-status')
      .filter({ hasText: /^Step 8 \/ 8/ })
      .waitFor({ timeout: 60_000 });
    await expect
      .poll(() => page.getByLabel('Run', { exact: true }).locator('option:checked').textContent())
      .toMatch(/with Dora, 8 steps — done/);
    await page.getByTestId('train-loss').waitFor();
    await expect.poll(() => page.getByTestId('train-loss').locator('path').getAttribute('d')).toMatch(/^M.*(L.*){7}$/);
    await page.getByTestId('train-lr').waitFor();
    // Attention previews of the two fixed frames at the start and at the end (previewEvery 50 > 8 steps).
    await expect.poll(() => page.getByTestId('train-previews').locator('img').count()).toBe(4);
    await page.getByTestId('train-previews').scrollIntoViewIfNeeded();
    await s.shot('19-train-dora');
    // The trained teacher lands in the model registry.
    await expect
      .poll(async () => (await s.engine.call('models.list', {})).map((m) => m.name).join())
      .toMatch(/Dora tiny \(job \d+\)/);
    expect(s.errors).toEqual([]);
  });

  it('adapts a registered model with NeCo, then compares base and adapted on the synthetic tour, then on the labelled frames', async () => {
    const { page } = s;
    // A tiny registered model to adapt.
    const file = writeViT(path.join(app.work, 'tiny-base.safetensors'), TINY_VIT, 11);
    const base = await s.engine.call('models.import', { path: file, name: 'tiny base' });

    await page.getByRole('link', { name: 'Library' }).click();
    await page.getByRole('link', { name: 'Train' }).click();
    await fillNecoRun(page, { baseId: base.id, steps: 3 });
    await page.getByLabel('Device').selectOption('cpu');
    await page.getByRole('button', { name: 'Start training' }).click();
    await page
      .getByTestId('train-status')
      .filter({ hasText: /^Step 3 \/ 3.*queue \d+% filled/ })
      .waitFor({ timeout: 120_000 });
    await expect
      .poll(() => page.getByLabel('Run', { exact: true }).locator('option:checked').textContent(), { timeout: 30_000 })
      .toMatch(/Adapt model #\d+ with NeCo, 3 steps — done/);
    await expect
      .poll(async () => (await s.engine.call('models.list', {})).map((m) => m.origin ?? '').join())
      .toMatch(/NeCo adaptation of model #\d+ "tiny base"/);
    // No labelled frames yet: the comparison runs on the synthetic walking tour and says so.
    const compare = page.getByRole('button', { name: 'Compare base and adapted (in-context segmentation)' });
    await compare.click();
    await expect
      .poll(() => page.getByTestId('neco-comparison').textContent(), { timeout: 60_000 })
      .toMatch(
        /^20 frames of the synthetic tour, 4 classes: mIoU base \d+\.\d → adapted \d+\.\d \(This project has no labelled frames .*synthetic walking tour/,
      );
    // Three frames labelled (left half / right half) as in the Segment view: the comparison uses them.
    const media = (await s.engine.call('library.list', { status: 'done' })).items[0];
    const W = media?.frameWidth as number;
    const H = media?.frameHeight as number;
    const labels = Uint8Array.from({ length: W * H }, (_, i) => (i % W < W / 2 ? 0 : 1));
    for (const frameIdx of [0, 10, 20])
      await s.engine.call('segment.saveMask', {
        mediaId: media?.id as number,
        frameIdx,
        data: Buffer.from(labels).toString('base64'),
      });
    await compare.click();
    await expect
      .poll(() => page.getByTestId('neco-comparison').textContent(), { timeout: 60_000 })
      .toMatch(/^3 labelled frames, 2 classes: mIoU base \d+\.\d → adapted \d+\.\d$/);
    await s.shot('19b-train-neco');
    expect(s.errors).toEqual([]);
  });
});
