import fs from 'node:fs';
import path from 'node:path';
import type { Locator } from 'playwright-core';
import { beforeAll, describe, expect, it } from 'vitest';
import { readInstanceMask } from '../../native/track/propagate-job.js';
import { renderScene, writeSceneVideo } from '../../tools/synth/propagate.js';
import { writeInitViT } from '../helpers/models.js';
import { type Session, useAppSession } from './browser.js';

/** Pixels of a canvas with something drawn (alpha above 0). */
function drawnPixels(canvas: Locator): Promise<number> {
  return canvas.evaluate((c) => {
    const cv = c as unknown as {
      width: number;
      height: number;
      getContext(t: '2d'): { getImageData(...a: number[]): { data: Uint8ClampedArray } };
    };
    const d = cv.getContext('2d').getImageData(0, 0, cv.width, cv.height).data;
    let n = 0;
    for (let i = 3; i < d.length; i += 4) if ((d[i] ?? 0) > 0) n++;
    return n;
  });
}

describe('mask propagation in the player, end to end in browser mode', () => {
  const app = useAppSession();
  const { work } = app;
  let s: Session;
  beforeAll(() => {
    s = app.session();
  });

  it('draws a start mask, propagates it, shows coloured overlays on a later frame, exports PNGs, corrects a frame and propagates again', async () => {
    const { page } = s;
    await page.getByLabel('Project folder', { exact: true }).fill(path.join(work, 'prop'));
    await page.getByRole('button', { name: 'Create project' }).click();
    await page.getByTestId('project-name').filter({ hasText: 'prop' }).waitFor();
    // A synthetic scene: 20 frames at 10 fps, 160×96, three textured objects moving over a street.
    const scene = renderScene(41, { width: 160, height: 96, frames: 20 });
    const video = await writeSceneVideo(path.join(work, 'scene.mp4'), scene);
    await s.engine.call('library.add', {
      paths: [video],
      sampling: { policy: 'fps', fps: 10 },
      frameSize: { mode: 'short-side', size: 96 },
    });
    await s.engine.call('models.import', { path: writeInitViT(path.join(work, 'vit.safetensors')) });
    await page.getByRole('link', { name: 'Library' }).click();
    await page.locator('[data-testid^="media-"][data-kind="video"]').first().getByRole('link').click();
    await page.getByTestId('frame-position').filter({ hasText: 'frame 1 of 20' }).waitFor({ timeout: 60_000 });

    // Draw object 1 on the first frame: a polygon around where it is.
    const first = scene.masks[0] as Uint8Array;
    let x0 = 160;
    let y0 = 96;
    let x1 = 0;
    let y1 = 0;
    first.forEach((v, i) => {
      if (v !== 1) return;
      x0 = Math.min(x0, i % 160);
      x1 = Math.max(x1, i % 160);
      y0 = Math.min(y0, Math.floor(i / 160));
      y1 = Math.max(y1, Math.floor(i / 160));
    });
    expect(x1).toBeGreaterThan(x0);
    await page.getByRole('button', { name: 'Draw start masks on this frame' }).click();
    const canvas = page.getByTestId('paint-canvas');
    await canvas.waitFor();
    await page.getByRole('button', { name: 'polygon', exact: true }).click();
    await page.getByLabel('Class to paint').selectOption({ label: 'object 1' });
    await canvas.scrollIntoViewIfNeeded();
    const box = await canvas.boundingBox();
    if (!box) throw new Error('no canvas');
    const at = (x: number, y: number) => page.mouse.click(box.x + (box.width * x) / 160, box.y + (box.height * y) / 96);
    await at(x0 + 1, y0 + 1);
    await at(x1, y0 + 1);
    await at(x1, y1);
    await at(x0 + 1, y1);
    await page.getByRole('button', { name: /Close polygon \(4 points\)/ }).click();
    await page.getByRole('button', { name: 'Use this mask' }).click();
    await page.getByTestId('propagate-start').filter({ hasText: 'Start masks on frame 1.' }).waitFor();

    await page.locator('#propagate-size').selectOption('224');
    await page.getByRole('button', { name: 'Propagate', exact: true }).click();
    await page.getByTestId('propagate-status').filter({ hasText: 'done' }).waitFor({ timeout: 180_000 });

    // A later frame: the object's colour is over the frame.
    await page.getByTestId('scrubber').fill('14');
    await page.getByTestId('frame-position').filter({ hasText: 'frame 15 of 20' }).waitFor();
    await page.getByTestId('propagate-frame').filter({ hasText: "Showing the run's frame 15 of 20." }).waitFor();
    const overlay = page.getByTestId('propagation-overlay');
    await expect.poll(() => drawnPixels(overlay)).toBeGreaterThan(20);
    await page.getByTestId('overlay-layer').scrollIntoViewIfNeeded();
    await s.shot('19-player-propagation');
    await page.getByTestId('propagate-exported').scrollIntoViewIfNeeded();
    await s.shot('20-player-propagation-panel');

    // Exports: one palette PNG per frame of the video, COCO RLE and MOT boxes.
    const exported = (await page.getByTestId('propagate-exported').textContent()) ?? '';
    expect(exported).toMatch(/20 frames, 1 object: palette PNGs \(DAVIS layout\), coco\.json \(RLE\) and mot\.txt/);
    const dir = exported.replace(/^.* in /, '').trim();
    expect(fs.readdirSync(dir).filter((f) => /^\d{5}\.png$/.test(f))).toHaveLength(20);
    expect(fs.existsSync(path.join(dir, 'coco.json'))).toBe(true);
    expect(fs.readFileSync(path.join(dir, 'mot.txt'), 'utf8')).toMatch(/^\d+,1,/);

    // Correct frame 15 (its largest object redrawn where it really is) and propagate again from there into the
    // same folder.
    const truth15 = scene.masks[14] as Uint8Array;
    const area = [0, 0, 0, 0];
    for (const v of truth15) area[v] = (area[v] ?? 0) + 1;
    const obj = [1, 2, 3].reduce((a, b) => ((area[b] ?? 0) > (area[a] ?? 0) ? b : a));
    const xs: number[] = [];
    const ys: number[] = [];
    truth15.forEach((v, i) => {
      if (v === obj) {
        xs.push(i % 160);
        ys.push(Math.floor(i / 160));
      }
    });
    expect(xs.length).toBeGreaterThan(10);
    const before = fs.statSync(path.join(dir, '00019.png')).mtimeMs;
    const earlier = fs.readFileSync(path.join(dir, '00005.png'));
    await page.getByRole('button', { name: 'Correct this frame and propagate again' }).click();
    await canvas.waitFor();
    // The painter shows the frame and, to correct, the frame's propagated mask (not a blank canvas).
    const frameImage = page.getByAltText('Frame to label');
    await expect
      .poll(() => frameImage.evaluate((img) => (img as unknown as { naturalWidth: number }).naturalWidth))
      .toBe(160);
    const painted = () => drawnPixels(canvas);
    // The objects of the propagated frame are painted in their colours; the background is left clear.
    const propagated = await readInstanceMask(path.join(dir, '00014.png'), 160, 96);
    const objectPixels = propagated.filter((v) => v > 0).length;
    expect(objectPixels).toBeGreaterThan(20);
    await expect.poll(painted).toBe(objectPixels);
    await canvas.scrollIntoViewIfNeeded();
    await s.shot('21-player-propagation-correct');
    await page.getByRole('button', { name: 'polygon', exact: true }).click();
    await page.getByLabel('Class to paint').selectOption({ label: `object ${obj}` });
    await canvas.scrollIntoViewIfNeeded();
    const box2 = await canvas.boundingBox();
    if (!box2) throw new Error('no canvas');
    const at2 = (x: number, y: number) =>
      page.mouse.click(box2.x + (box2.width * x) / 160, box2.y + (box2.height * y) / 96);
    const [cx0, cx1, cy0, cy1] = [Math.min(...xs), Math.max(...xs), Math.min(...ys), Math.max(...ys)];
    await at2(cx0 + 1, cy0 + 1);
    await at2(cx1, cy0 + 1);
    await at2(cx1, cy1);
    await at2(cx0 + 1, cy1);
    await page.getByRole('button', { name: /Close polygon \(4 points\)/ }).click();
    await page.getByRole('button', { name: 'Use this mask' }).click();
    await page
      .getByTestId('propagate-status')
      .filter({ hasText: /Run #3: done/ })
      .waitFor({ timeout: 180_000 });
    // Frames after the corrected one were written again; frames before it are kept.
    expect(fs.statSync(path.join(dir, '00019.png')).mtimeMs).toBeGreaterThan(before);
    expect(fs.readFileSync(path.join(dir, '00005.png')).equals(earlier)).toBe(true);
    expect(s.errors).toEqual([]);
  });
});
