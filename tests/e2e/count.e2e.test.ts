import path from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { fixturePath } from '../helpers/fixtures.js';
import { writeInitViT } from '../helpers/models.js';
import { type Session, useAppSession } from './browser.js';

describe('counting, end to end in browser mode', () => {
  const app = useAppSession();
  let s: Session;
  beforeAll(() => {
    s = app.session();
  });

  it('counts coins with one exemplar, and the count follows the threshold', async () => {
    const { page } = s;
    await page.getByLabel('Project folder', { exact: true }).fill(path.join(app.work, 'coins'));
    await page.getByRole('button', { name: 'Create project' }).click();
    await page.getByTestId('project-name').filter({ hasText: 'coins' }).waitFor();
    await s.engine.call('library.add', {
      paths: [fixturePath('count', 'coins.png')],
      frameSize: { mode: 'short-side', size: 303 },
    });
    await s.engine.call('models.import', {
      path: writeInitViT(path.join(app.work, 'vit.safetensors')),
      name: 'ViT-Ti at initialisation',
    });

    await page.getByRole('link', { name: 'Count' }).click();
    const stage = page.getByTestId('count-stage');
    await stage.waitFor({ timeout: 30_000 });
    await expect
      .poll(() =>
        stage.locator('img').evaluate((i: { complete: boolean; naturalWidth: number }) => i.complete && i.naturalWidth),
      )
      .toBe(384);
    const box = await stage.boundingBox();
    if (!box) throw new Error('no stage');
    // Drag a box around one coin (image pixels 83..123 x 106..146 of 384 x 303).
    const px = (x: number, y: number): [number, number] => [
      box.x + (x / 384) * box.width,
      box.y + (y / 303) * box.height,
    ];
    await page.mouse.move(...px(83, 106));
    await page.mouse.down();
    await page.mouse.move(...px(123, 146), { steps: 6 });
    await page.mouse.up();
    await page.getByRole('button', { name: 'Count (1 exemplar)' }).click();
    const number = page.getByTestId('count-number');
    await expect.poll(async () => Number(await number.textContent()), { timeout: 60_000 }).toBeGreaterThan(0);
    const first = Number(await number.textContent());
    await s.shot('15-count-coins');

    // Raise the threshold: fewer peaks pass.
    const slider = page.getByTestId('count-threshold');
    const value = Number(await slider.inputValue());
    const max = Number(await slider.getAttribute('max'));
    await slider.fill(String((value + max) / 2));
    await expect.poll(async () => Number(await number.textContent())).toBeLessThan(first);
    await s.shot('16-count-threshold-raised');
    expect(s.errors).toEqual([]);
  });
});
