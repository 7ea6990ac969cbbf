import path from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { fixturePath } from '../helpers/fixtures.js';
import { type Session, useAppSession } from './browser.js';

describe('training, end to end in browser mode', () => {
  const app = useAppSession();
  let s: Session;
  beforeAll(() => {
    s = app.session();
  });

  it('trains a tiny ViT with Dora on the synthetic tour, with live loss, learning-rate and entropy plots', async () => {
    const { page } = s;
    await page.getByLabel('Project folder', { exact: true }).fill(path.join(app.work, 'train'));
    await page.getByRole('button', { name: 'Create project' }).click();
    await page.getByTestId('project-name').filter({ hasText: 'train' }).waitFor();
    await s.engine.call('library.add', {
      paths: [fixturePath('synthetic', 'tour.mp4')],
      sampling: { policy: 'fps', fps: 2 },
      frameSize: { mode: 'short-side', size: 48 },
    });
    await expect.poll(async () => (await s.engine.call('library.list', { status: 'done' })).items.length).toBe(1);

    await page.getByRole('link', { name: 'Train' }).click();
    await page.getByRole('checkbox').first().waitFor();
    await page.getByLabel('Start from').selectOption('scratch:tiny');
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
});
