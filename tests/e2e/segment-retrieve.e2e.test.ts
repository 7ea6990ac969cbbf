import fs from 'node:fs';
import path from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { encodePng } from '../../native/media/png.js';
import { readMask } from '../../native/segment/masks.js';
import { fixturePath } from '../helpers/fixtures.js';
import { writeInitViT } from '../helpers/models.js';
import { type Session, useAppSession } from './browser.js';

describe('segmentation and retrieval, end to end in browser mode', () => {
  const app = useAppSession();
  const { work } = app;
  let s: Session;
  beforeAll(() => {
    s = app.session();
  });
  const mask = (f: number) => fixturePath('synthetic', 'masks', `${String(f * 10).padStart(4, '0')}.png`);

  it('builds a bank from two labelled frames of the synthetic tour and segments a third', async () => {
    const { page } = s;
    await page.getByLabel('Project folder', { exact: true }).fill(path.join(work, 'tour'));
    // A project without the starter model: this test brings its own (issue 26 adds it by default).
    await page.getByLabel('Add the starter model').uncheck();
    await page.getByRole('button', { name: 'Create project' }).click();
    await page.getByTestId('project-name').filter({ hasText: 'tour' }).waitFor();
    // Frames at 1 fps, and a model.
    await s.engine.call('library.add', {
      paths: [fixturePath('synthetic', 'tour.mp4')],
      sampling: { policy: 'fps', fps: 1 },
      frameSize: { mode: 'short-side', size: 240 },
    });
    await page.getByRole('link', { name: 'Models' }).click();
    await page.getByLabel('Weights file').fill(writeInitViT(path.join(work, 'vit.safetensors')));
    await page.getByRole('button', { name: 'Import' }).click();
    await page.getByTestId('model-1').waitFor();

    await page.getByRole('link', { name: 'Segment' }).click();
    await page.getByRole('button', { name: 'Extract features for the library' }).click();
    await page.getByTestId('run-1').filter({ hasText: '20 frames' }).waitFor({ timeout: 60_000 });

    await page.getByLabel('Classes, in mask order').fill('background, disc, box, kite');
    await page.locator('#ex0-media').selectOption({ label: 'tour.mp4 (20 frames)' });
    await page.locator('#ex0-frame').fill('5');
    await page.locator('#ex0-mask').fill(mask(4));
    await page.getByRole('button', { name: 'Add an example' }).click();
    await page.locator('#ex1-frame').fill('13');
    await page.locator('#ex1-mask').fill(mask(12));
    await page.getByRole('button', { name: 'Build bank' }).click();
    await page.getByTestId('bank-1').waitFor();
    // Patches per class of the bank just built, under the button.
    await expect
      .poll(() => page.getByTestId('bank-counts-1').textContent())
      .toMatch(/background \d+ patches, .*disc \d+ patch(es)?, .*box \d+ patch(es)?, .*kite \d+ patch(es)?/);

    await page.locator('#apply-media').selectOption({ label: 'tour.mp4 (20 frames)' });
    await page.locator('#apply-frame').fill('9');
    await page.getByLabel('Ground-truth mask (optional, for IoU)').fill(mask(8));
    await page.getByRole('button', { name: 'Segment', exact: true }).click();
    await page.getByTestId('segment-result').waitFor({ timeout: 30_000 });
    const overlay = page.getByTestId('segment-overlay');
    await expect
      .poll(() =>
        overlay.evaluate((img: { complete: boolean; naturalWidth: number }) => img.complete && img.naturalWidth),
      )
      .toBe(320);
    await expect(page.getByTestId('segment-miou').textContent()).resolves.toMatch(/mIoU \d+\.\d/);
    await page.getByTestId('segment-result').scrollIntoViewIfNeeded();
    await s.shot('12-segment-overlay');
  });

  it('draws a mask with the brush and a polygon and uses it as an example', async () => {
    const { page } = s;
    await page.getByRole('link', { name: 'Segment' }).click();
    await page.locator('#ex0-media').selectOption({ label: 'tour.mp4 (20 frames)' });
    await page.locator('#ex0-frame').fill('4');
    await page.getByRole('button', { name: 'Draw…' }).first().click();
    const canvas = page.getByTestId('paint-canvas');
    await canvas.waitFor();
    const measure = async () => {
      await canvas.scrollIntoViewIfNeeded();
      const b = await canvas.boundingBox();
      if (!b) throw new Error('no canvas');
      return b;
    };
    // A brush stroke of class "disc", then a polygon of class "box".
    await page.getByLabel('Class to paint').selectOption({ label: 'disc' });
    let box = await measure();
    await page.mouse.move(box.x + box.width * 0.2, box.y + box.height * 0.7);
    await page.mouse.down();
    await page.mouse.move(box.x + box.width * 0.35, box.y + box.height * 0.75, { steps: 8 });
    await page.mouse.up();
    await page.getByRole('button', { name: 'polygon', exact: true }).click();
    await page.getByLabel('Class to paint').selectOption({ label: 'box' });
    // The toolbar grows with the polygon tool: measure the canvas again.
    box = await measure();
    const corners: [number, number][] = [
      [0.6, 0.6],
      [0.8, 0.6],
      [0.8, 0.9],
      [0.6, 0.9],
    ];
    for (const [fx, fy] of corners) await page.mouse.click(box.x + box.width * fx, box.y + box.height * fy);
    await page.getByRole('button', { name: /Close polygon \(4 points\)/ }).click();
    await page.getByRole('button', { name: /Fill the rest with/ }).click();
    await s.shot('14-mask-painter');
    await page.getByRole('button', { name: 'Use this mask' }).click();
    await expect.poll(() => page.locator('#ex0-mask').inputValue()).toMatch(/masks\/1-3\.png$/);
  });

  it('clusters patches into pseudo-classes and names them', async () => {
    const { page } = s;
    await page.locator('#cluster-media').selectOption({ label: 'tour.mp4' });
    await page.getByLabel('Clusters').fill('4');
    await page.getByRole('button', { name: 'Cluster into pseudo-classes' }).click();
    const relabel = page.getByTestId('relabel');
    await relabel.waitFor({ timeout: 30_000 });
    await relabel.getByLabel('New name of cluster 1').fill('street');
    await relabel.getByLabel('New name of cluster 2').fill('street');
    await relabel.getByRole('button', { name: 'Rename and merge' }).click();
    await page.locator('[data-testid^="bank-"]').filter({ hasText: 'classes street, cluster 3, cluster 4' }).waitFor();
  });

  it('clicks a patch in Retrieve and sees similar patches with heat maps, then similar images', async () => {
    const { page } = s;
    await page.getByRole('link', { name: 'Retrieve' }).click();
    await page.locator('#retrieve-frame').fill('5');
    const picker = page.getByTestId('patch-picker');
    await picker.waitFor();
    const box = await picker.boundingBox();
    if (!box) throw new Error('no picker');
    await page.mouse.click(box.x + box.width * 0.5, box.y + box.height * 0.8);
    const results = page.getByTestId('patch-results').locator('li');
    await results.first().waitFor({ timeout: 30_000 });
    expect(await results.count()).toBe(12);
    const imgs = page.getByTestId('patch-results').locator('img');
    await expect
      .poll(() =>
        imgs.evaluateAll((all) =>
          all.every(
            (i) =>
              (i as unknown as { complete: boolean; naturalWidth: number }).complete &&
              (i as unknown as { naturalWidth: number }).naturalWidth > 0,
          ),
        ),
      )
      .toBe(true);
    await page.getByTestId('patch-results').scrollIntoViewIfNeeded();
    await s.shot('13-retrieve-patches');
    await page.getByRole('button', { name: 'Find similar images' }).click();
    await page.getByTestId('image-results').locator('li').first().waitFor();
    await page.getByLabel('Cosine similarity at least').fill('0');
    await page.getByRole('button', { name: 'Find near-duplicates' }).click();
    await expect(page.getByTestId('duplicates').textContent()).resolves.toMatch(/\d+ pairs?, most similar first/);
    expect(s.errors).toEqual([]);
  });

  it('discovers and tracks objects in the player, with coloured masks and ids over the frame', async () => {
    const { page } = s;
    await page.getByRole('link', { name: 'Library' }).click();
    await page.locator('[data-testid^="media-"][data-kind="video"]').first().getByRole('link').click();
    await page.getByRole('button', { name: 'Discover and track objects' }).click();
    await page.getByTestId('track-summary').waitFor({ timeout: 60_000 });
    await expect.poll(() => page.locator('#track-run option').count()).toBe(2);
    await page.getByTestId('scrubber').fill('6');
    await page.getByTestId('frame-position').filter({ hasText: 'frame 7 of 20' }).waitFor();
    await page.getByTestId('track-overlay').waitFor();
    await s.shot('18-player-tracks');
    // At the video's own size (the default choice): tour.mp4 is 320x240.
    expect(await page.getByLabel('Mask size').inputValue()).toBe('source');
    await page.getByRole('button', { name: 'Export instance masks (PNG)' }).click();
    await expect
      .poll(() => page.getByTestId('track-exported').textContent())
      .toMatch(/^20 instance-mask PNGs in .*tracks-1$/);
    const dir = ((await page.getByTestId('track-exported').textContent()) ?? '').replace(
      /^20 instance-mask PNGs in /,
      '',
    );
    const png = fs.readFileSync(path.join(dir, fs.readdirSync(dir).filter((f) => f.endsWith('.png'))[0] ?? ''));
    expect([png.readUInt32BE(16), png.readUInt32BE(20)]).toEqual([320, 240]);
    expect(s.errors).toEqual([]);
  });

  it('warns about a 0/255 binary mask, and marks a square run with a recompute button', async () => {
    const { page } = s;
    await page.getByRole('link', { name: 'Segment' }).click();
    // The frame-4 mask as a binary 0/255 'object' mask, the most common binary format.
    const cat = (await readMask(mask(4), 320, 240, { kind: 'ids' }, 256)).labels;
    const binary = path.join(work, 'binary-0-255.png');
    fs.writeFileSync(
      binary,
      encodePng(
        Uint8Array.from(cat, (v) => (v ? 255 : 0)),
        320,
        240,
        6,
        1,
      ),
    );
    await page.getByLabel('Classes, in mask order').fill('background, object');
    await page.locator('#ex0-media').selectOption({ label: 'tour.mp4 (20 frames)' });
    await page.locator('#ex0-frame').fill('4');
    await page.locator('#ex0-mask').fill(binary);
    await page.getByRole('button', { name: 'Build bank' }).click();
    const warnings = page.getByTestId('bank-warnings');
    await warnings.waitFor({ timeout: 30_000 });
    await expect(warnings.textContent()).resolves.toMatch(
      /has only values 0 and 255: 255 was read as the second class \('object'\)/,
    );
    await warnings.scrollIntoViewIfNeeded();
    await s.shot('12b-segment-mask-warning');

    // A run made with square frames (as every run before the aspect policy) is marked, with a recompute button.
    await s.engine.call('features.extract', { modelId: 1, size: 224, resize: 'square' });
    const notice = page.locator('[data-testid^="square-run-"]');
    await notice.waitFor({ timeout: 60_000 });
    await expect(notice.textContent()).resolves.toMatch(/squashed to a square/);
    const extractions = async () =>
      ((await s.engine.call('jobs.list', {})) as { kind: string }[]).filter((j) => j.kind === 'features.extract')
        .length;
    const before = await extractions();
    await notice.getByRole('button', { name: "Recompute at the frames' aspect ratio" }).click();
    await expect.poll(extractions).toBe(before + 1);
    expect(s.errors).toEqual([]);
  });
});
