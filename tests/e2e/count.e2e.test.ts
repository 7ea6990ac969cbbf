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
    // A project without the starter model: this test brings its own (issue 26 adds it by default).
    await page.getByLabel('Add the starter model').uncheck();
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
    await stage.evaluate((el: { scrollIntoView: (o: object) => void }) => el.scrollIntoView({ block: 'center' }));
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
    // A similarity threshold below 0 (unlike the exemplar) is never offered.
    expect(Number(await slider.getAttribute('min'))).toBeGreaterThanOrEqual(0);
    await slider.fill(String((value + max) / 2));
    await expect.poll(async () => Number(await number.textContent())).toBeLessThan(first);
    await s.shot('16-count-threshold-raised');
    expect(s.errors).toEqual([]);
  });

  it('counts boxes in every frame of the synthetic tour, with a plot over time and a histogram', async () => {
    const { page } = s;
    await s.engine.call('library.add', {
      paths: [fixturePath('synthetic', 'tour.mp4')],
      sampling: { policy: 'fps', fps: 1 },
      frameSize: { mode: 'short-side', size: 240 },
    });
    await page.getByRole('link', { name: 'Library' }).click();
    await page.locator('[data-testid^="media-"][data-kind="video"]').first().waitFor({ timeout: 30_000 });
    await page.getByRole('link', { name: 'Count' }).click();
    await page.locator('#count-media').selectOption({ label: 'tour.mp4 (20 frames)' });
    await page.locator('#count-frame').fill('5');
    const stage = page.getByTestId('count-stage');
    await expect
      .poll(() =>
        stage.locator('img').evaluate((i: { complete: boolean; naturalWidth: number }) => i.complete && i.naturalWidth),
      )
      .toBe(320);
    // The stage is drawn as wide as the view allows: bring all of it on screen before dragging on it.
    await stage.evaluate((el: { scrollIntoView: (o: object) => void }) => el.scrollIntoView({ block: 'center' }));
    const box = await stage.boundingBox();
    if (!box) throw new Error('no stage');
    // A blue box object of frame index 4, "frame 5" in the UI (tour.json: x 191, y 200, 34 x 34).
    const px = (x: number, y: number): [number, number] => [
      box.x + (x / 320) * box.width,
      box.y + (y / 240) * box.height,
    ];
    await page.mouse.move(...px(191, 200));
    await page.mouse.down();
    await page.mouse.move(...px(225, 234), { steps: 6 });
    await page.mouse.up();
    await page.getByRole('button', { name: 'Count (1 exemplar)' }).click();
    await expect
      .poll(async () => Number(await page.getByTestId('count-number').textContent()), { timeout: 60_000 })
      .toBeGreaterThan(0);
    await page.getByRole('button', { name: 'Count every frame (20)' }).click();
    await page.getByTestId('count-plot').waitFor({ timeout: 120_000 });
    await page.getByTestId('count-histogram').waitFor();
    await expect(page.getByText(/Counts over 20 frames/).textContent()).resolves.toMatch(/20 frames/);
    await page.getByTestId('count-plot').scrollIntoViewIfNeeded();
    // Axis labels are drawn at a readable size on screen, whatever the chart's width (at least 11 px).
    const sizes = await page
      .locator('[data-testid="count-plot"] text, [data-testid="count-histogram"] text')
      .evaluateAll((all) =>
        all.map(
          (t) =>
            Number.parseFloat(
              (globalThis as unknown as { getComputedStyle(e: unknown): { fontSize: string } }).getComputedStyle(t)
                .fontSize,
            ) * ((t as unknown as { getScreenCTM(): { a: number } | null }).getScreenCTM()?.a ?? 0),
        ),
      );
    expect(sizes.length).toBeGreaterThan(0);
    expect(Math.min(...sizes)).toBeGreaterThanOrEqual(11);
    await s.shot('17-count-over-time');
    expect(s.errors).toEqual([]);
  });
});
