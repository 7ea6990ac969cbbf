/**
 * Counting among look-alikes in the Count view: one exemplar box on a scene with distractors that share all but one
 * property with the target (makeDistractorCountScene, a tuning seed) counts some of them too; boxing a look-alike of
 * each kind as "Not this" lowers the count, and a region drawn corner by corner keeps the points inside it.
 */
import fs from 'node:fs';
import path from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { DEFAULT_MODEL_DIR } from '../../native/engine/engine.js';
import { encodePng } from '../../native/media/png.js';
import { makeDistractorCountScene } from '../../tools/synth/count.js';
import { type Session, useAppSession } from './browser.js';

describe('counting with negative exemplars and a region, end to end in browser mode', () => {
  const app = useAppSession();
  let s: Session;
  beforeAll(() => {
    s = app.session();
  });

  it('a "Not this" box on each kind of look-alike lowers a distractor-inflated count; a region keeps it inside', async () => {
    const { page } = s;
    const scene = makeDistractorCountScene(6006);
    const file = path.join(app.work, 'lookalikes.png');
    fs.writeFileSync(file, encodePng(scene.rgb, scene.width, scene.height));
    await page.getByLabel('Project folder', { exact: true }).fill(path.join(app.work, 'lookalikes'));
    await page.getByLabel('Add the starter model').uncheck();
    await page.getByRole('button', { name: 'Create project' }).click();
    await page.getByTestId('project-name').filter({ hasText: 'lookalikes' }).waitFor();
    await s.engine.call('library.add', { paths: [file], frameSize: { mode: 'short-side', size: scene.height } });
    await s.engine.call('models.import', {
      path: path.join(DEFAULT_MODEL_DIR, 'flaneur-vit-ti16-dora-vtest.safetensors'),
      name: 'Dora ViT-Ti',
    });

    // Tall enough for the whole 512 px square stage below the tools: the mouse acts only inside the viewport.
    await page.setViewportSize({ width: 1280, height: 1400 });
    await page.getByRole('link', { name: 'Count' }).click();
    const stage = page.getByTestId('count-stage');
    await stage.waitFor({ timeout: 30_000 });
    await expect
      .poll(() =>
        stage.locator('img').evaluate((i: { complete: boolean; naturalWidth: number }) => i.complete && i.naturalWidth),
      )
      .toBe(scene.width);
    const box = await stage.boundingBox();
    if (!box) throw new Error('no stage');
    const px = (x: number, y: number): [number, number] => [
      box.x + (x / scene.width) * box.width,
      box.y + (y / scene.height) * box.height,
    ];
    const drag = async ([x, y, w, h]: [number, number, number, number]) => {
      await page.mouse.move(...px(x, y));
      await page.mouse.down();
      await page.mouse.move(...px(x + w, y + h), { steps: 6 });
      await page.mouse.up();
    };
    const number = page.getByTestId('count-number');
    const counted = async () => {
      await expect.poll(async () => Number(await number.textContent()), { timeout: 90_000 }).toBeGreaterThan(0);
      return Number(await number.textContent());
    };

    await drag(scene.exemplar);
    await page.getByRole('button', { name: 'Count (1 exemplar)' }).click();
    const inflated = await counted();
    await s.shot('18-count-lookalikes-inflated');
    // The look-alikes inflate it: more than the targets there are.
    expect(inflated).toBeGreaterThan(scene.count);

    await page.getByRole('button', { name: 'Not this', exact: true }).click();
    for (const k of scene.kinds) await drag(k.box);
    await expect.poll(() => page.getByTestId('count-negative').count()).toBe(scene.kinds.length);
    await page.getByRole('button', { name: `Count (1 exemplar, ${scene.kinds.length} not)` }).click();
    await expect.poll(async () => Number(await number.textContent()), { timeout: 90_000 }).toBeLessThan(inflated);
    const withNegatives = Number(await number.textContent());
    await s.shot('19-count-lookalikes-negative');
    // Closer to the truth than before.
    expect(Math.abs(withNegatives - scene.count)).toBeLessThan(Math.abs(inflated - scene.count));

    // A region over the left half: only what lies inside is counted.
    await page.getByRole('button', { name: 'Region', exact: true }).click();
    for (const [x, y] of [
      [2, 2],
      [scene.width / 2, 2],
      [scene.width / 2, scene.height - 2],
      [2, scene.height - 2],
    ] as [number, number][]) {
      await page.mouse.click(...px(x, y));
    }
    await expect.poll(() => page.getByTestId('count-roi-note').textContent()).toMatch(/inside the region of 4 corners/);
    await page.getByRole('button', { name: `Count (1 exemplar, ${scene.kinds.length} not)` }).click();
    // The new count: every point found lies in the left half (the count before had points on the right).
    const rightmost = () =>
      stage
        .locator('circle.count-dot')
        .evaluateAll((all) => Math.max(0, ...all.map((c) => Number(c.getAttribute('cx')))));
    await expect.poll(rightmost, { timeout: 90_000 }).toBeLessThanOrEqual(scene.width / 2 + 1);
    await expect.poll(() => number.getAttribute('aria-busy')).toBe('false');
    expect(Number(await number.textContent())).toBeLessThanOrEqual(withNegatives);
    await s.shot('20-count-lookalikes-region');
    expect(s.errors).toEqual([]);
  });
});
