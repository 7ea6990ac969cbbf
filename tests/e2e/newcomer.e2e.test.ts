/**
 * A newcomer's first hour (issue 14), end to end in browser mode against the real engine: failures are shown where
 * the user acted and look like failures everywhere, raw developer strings become sentences, cluster pseudo-classes
 * show their patches, the Library's filter from the Map is visible and clearable, the Device view says what ran,
 * and frames are numbered from 1 in every view.
 */
import fs from 'node:fs';
import path from 'node:path';
import type { Page } from 'playwright-core';
import { beforeAll, describe, expect, it } from 'vitest';
import { explainError } from '../../renderer/src/shell/errors.js';
import { fitPoints, place } from '../../renderer/src/views/map/fit.js';
import { fixturePath } from '../helpers/fixtures.js';
import { writeInitViT } from '../helpers/models.js';
import { lassoRing, type Session, useAppSession } from './browser.js';

/** Text a person sees in an element: without the contents of closed <details> (raw text kept one click away). */
function visibleText(page: Page, selector: string): Promise<string> {
  return page.locator(selector).evaluate((el) => {
    type Node = {
      cloneNode(deep: boolean): Node;
      querySelectorAll(s: string): ArrayLike<{ remove(): void }>;
      textContent: string | null;
    };
    const copy = (el as unknown as Node).cloneNode(true);
    for (const d of Array.from(copy.querySelectorAll('details'))) d.remove();
    return copy.textContent ?? '';
  });
}

async function loaded(page: Page, selector: string): Promise<boolean> {
  return page
    .locator(selector)
    .evaluateAll((all) =>
      all.every(
        (i) =>
          (i as unknown as { complete: boolean; naturalWidth: number }).complete &&
          (i as unknown as { naturalWidth: number }).naturalWidth > 0,
      ),
    );
}

describe("a newcomer's first hour, end to end in browser mode", () => {
  const app = useAppSession();
  const { work } = app;
  let s: Session;
  beforeAll(() => {
    s = app.session();
  });
  const media = path.join(work, 'media');
  const tour = path.join(media, 'tour.mp4');

  it('says next to the folder field that a path does not exist, and keeps the path to correct', async () => {
    const { page } = s;
    await page.getByLabel('Project folder', { exact: true }).fill(path.join(work, 'first'));
    // A project without the starter model: this test brings its own (issue 26 adds it by default).
    await page.getByLabel('Add the starter model').uncheck();
    await page.getByRole('button', { name: 'Create project' }).click();
    await page.getByTestId('project-name').filter({ hasText: 'first' }).waitFor();

    await page.getByRole('link', { name: 'Library' }).click();
    const missing = path.join(work, 'no-such-folder');
    const field = page.getByLabel('Folder or file');
    await field.fill(missing);
    await page.getByRole('button', { name: 'Add to library' }).click();
    // The message is inside the field's own block, right under the input (its description), and names the path.
    const error = page.getByTestId('field-error');
    await expect.poll(() => error.textContent()).toContain(`No such file or folder: ${missing}`);
    const describedBy = await field.getAttribute('aria-describedby');
    await expect(error.getAttribute('id')).resolves.toBe(describedBy);
    await expect(
      field.evaluate((input) => {
        type Box = { getBoundingClientRect(): { top: number; bottom: number } };
        type El = Box & { closest(s: string): { querySelector(s: string): Box | null } | null };
        const el = input as unknown as El;
        const e = el.closest('.field')?.querySelector('[data-testid="field-error"]');
        return e ? e.getBoundingClientRect().top >= el.getBoundingClientRect().bottom : false;
      }),
    ).resolves.toBe(true);
    await expect(field.inputValue()).resolves.toBe(missing);
    await expect(field.getAttribute('aria-invalid')).resolves.toBe('true');
    // No job was started for it.
    expect((await s.engine.call('jobs.list', { limit: 10 })).length).toBe(0);
    await s.shot('40-missing-folder');
    // Typing a new path clears the message.
    await field.fill(media);
    await expect.poll(() => error.count()).toBe(0);
  });

  it('gives imports with failed items a failed or partial badge in the Library, Jobs and the status bar, with the reason at the item', async () => {
    const { page } = s;
    fs.mkdirSync(media, { recursive: true });
    fs.copyFileSync(fixturePath('synthetic', 'tour.mp4'), tour);
    fs.copyFileSync(fixturePath('count', 'coins.png'), path.join(media, 'coins.png'));
    fs.writeFileSync(path.join(media, 'notes.mp4'), 'a text file with a video name\n');
    await page.getByLabel('Frames per second').fill('1');
    await page.getByLabel('Frame size (shorter side, px)').fill('240');
    await page.getByRole('button', { name: 'Add to library' }).click();
    const outcome = page.getByTestId('import-outcome');
    await outcome.waitFor({ timeout: 90_000 });
    await expect(outcome.getByTestId('job-state').getAttribute('data-tone')).resolves.toBe('partial');
    await expect(outcome.getByTestId('job-state').textContent()).resolves.toBe('partly failed');
    // The reason is beside the form the user used, named by file, in a sentence (not a bare code).
    await expect.poll(() => outcome.textContent()).toMatch(/notes\.mp4 — \S.*\w{4,}/);
    // The unreadable file is listed above the thumbnails, not under them.
    const problems = page.getByRole('region', { name: /could not be read/ });
    await problems.getByRole('cell', { name: /notes\.mp4$/ }).waitFor();
    const grid = page.getByRole('list', { name: 'Media' });
    const pBox = await problems.boundingBox();
    const gBox = await grid.boundingBox();
    expect(pBox && gBox && pBox.y < gBox.y).toBe(true);
    await s.shot('41-import-partly-failed');

    // A file that fails alone: nothing succeeded, so the badge says failed.
    const broken = path.join(work, 'broken.mp4');
    fs.writeFileSync(broken, 'not a video either\n');
    await page.getByLabel('Folder or file').fill(broken);
    await page.getByRole('button', { name: 'Add to library' }).click();
    await expect
      .poll(async () => (await outcome.textContent()) ?? '', { timeout: 60_000 })
      .toMatch(/^failed.*broken\.mp4/);
    await expect(outcome.getByTestId('job-state').getAttribute('data-tone')).resolves.toBe('failed');
    const status = page.getByTestId('status-last-failure');
    await expect.poll(() => status.textContent()).toBe('Job #2 failed');

    await page.getByRole('link', { name: 'Jobs' }).click();
    await expect(page.getByTestId('job-2').getByTestId('job-state').getAttribute('data-tone')).resolves.toBe('failed');
    await expect(page.getByTestId('job-1').getByTestId('job-state').textContent()).resolves.toBe('partly failed');
    await expect(page.getByTestId('job-1').textContent()).resolves.toContain('1 item of 3 failed');
    // Its reasons open in place, under the job.
    await page.getByTestId('job-1').getByRole('button', { name: 'Show reasons' }).click();
    await page
      .getByTestId('job-1')
      .getByRole('region', { name: 'Items of job 1' })
      .getByRole('cell', { name: /^notes\.mp4: not a media file/ })
      .waitFor();
    await s.shot('42-jobs-failed-badges');
  });

  it('explains a damaged model file next to the field, without the raw byte count', async () => {
    const { page } = s;
    await page.getByRole('link', { name: 'Models' }).click();
    const bad = path.join(work, 'damaged.safetensors');
    const bytes = Buffer.alloc(64, 0x41);
    bytes.writeBigUInt64LE(2338328219631577000n, 0);
    fs.writeFileSync(bad, bytes);
    await page.getByLabel('Weights file').fill(bad);
    await page.getByRole('button', { name: 'Import' }).click();
    const error = page.getByTestId('field-error');
    await error.waitFor();
    const text = await visibleText(page, '[data-testid="field-error"]');
    expect(text).toMatch(/damaged\.safetensors is not a valid model: .*Download the model again/);
    expect(text).not.toMatch(/\d{10,}/);
    await s.shot('43-model-damaged');
    await page.getByLabel('Weights file').fill(writeInitViT(path.join(work, 'vit.safetensors')));
    await page.getByRole('button', { name: 'Import' }).click();
    await page.getByTestId('model-1').waitFor();
  });

  it("says in the Device view what ran after a run, and shows ONNX Runtime's own text only as details", async () => {
    const { page } = s;
    await page.getByRole('link', { name: 'Device' }).click();
    await page.getByRole('heading', { name: 'In use' }).waitFor();
    await expect(page.getByTestId('active-provider').count()).resolves.toBe(0);
    for (const p of ['cuda', 'dml', 'coreml', 'webgpu']) {
      const shown = await visibleText(page, `[data-testid="provider-${p}"]`);
      expect(shown).not.toMatch(/OrtSessionOptions|backend not found|\.cc:\d|\.cpp:\d|ERR:/);
    }
    await expect(visibleText(page, '[data-testid="provider-cuda"]')).resolves.toMatch(/Not installed/);

    await page.getByRole('link', { name: 'Segment' }).click();
    await page.getByRole('button', { name: 'Extract features for the library' }).click();
    // The video's 20 sampled frames and the image.
    await page.getByTestId('run-1').filter({ hasText: '21 frames' }).waitFor({ timeout: 120_000 });
    await page.getByRole('link', { name: 'Device' }).click();
    await expect
      .poll(() => page.getByTestId('active-provider').textContent())
      .toMatch(/^Models run on CPU with \d+ threads?\./);
    await expect(page.getByText('No model has run in this session yet').count()).resolves.toBe(0);
    await s.shot('44-device-in-use');
  });

  it('disables Build bank until there is an example and explains the engine refusal in a sentence', async () => {
    const { page } = s;
    await page.getByRole('link', { name: 'Segment' }).click();
    await page.getByLabel('Classes, in mask order').fill('background, thing');
    await expect(page.getByRole('button', { name: 'Build bank' }).isDisabled()).resolves.toBe(true);
    await expect(page.getByTestId('bank-needs-example').textContent()).resolves.toMatch(/Give at least one example/);
    // What the engine answers to the same request without examples, as the UI shows it.
    const res = await s.engine.raw('segment.createBank', { runId: 1, name: 'b', classes: ['a', 'b'], examples: [] });
    if (res.ok) throw new Error('the engine accepted a bank without examples');
    expect(res.error.message).toMatch(/^segment\.createBank: invalid "examples": Too small/);
    const shown = explainError(res.error);
    expect(shown.message).toBe(
      'No example was given. Add at least one example: choose a frame and give or draw its mask, then build the bank.',
    );
  });

  it('shows example patches for every cluster pseudo-class', async () => {
    const { page } = s;
    await page.locator('#cluster-media').selectOption({ label: 'tour.mp4' });
    await page.getByLabel('Clusters').fill('4');
    await page.getByRole('button', { name: 'Cluster into pseudo-classes' }).click();
    const relabel = page.getByTestId('relabel');
    await relabel.waitFor({ timeout: 60_000 });
    for (let c = 1; c <= 4; c++) {
      const row = relabel.getByTestId(`cluster-${c}`);
      await expect.poll(() => row.locator('.patch-thumb img').count()).toBeGreaterThan(0);
      await expect(row.textContent()).resolves.toMatch(/\d+ patch(es)?/);
    }
    await expect.poll(() => loaded(page, '[data-testid="relabel"] .patch-thumb img')).toBe(true);
    await relabel.scrollIntoViewIfNeeded();
    await s.shot('45-cluster-previews');
  });

  it('numbers frames from 1 in the player, the frame inputs, retrieval results and near-duplicates', async () => {
    const { page } = s;
    // Player.
    await page.getByRole('link', { name: 'Library' }).click();
    await page.locator('[data-testid^="media-"][data-kind="video"]').first().getByRole('link').click();
    await page.getByTestId('frame-position').filter({ hasText: 'frame 1 of 20' }).waitFor();
    await page.getByTestId('scrubber').fill('4');
    await page.getByTestId('frame-position').filter({ hasText: 'frame 5 of 20' }).waitFor();
    await expect(page.getByTestId('player-frame').getAttribute('src')).resolves.toMatch(/\/4\.png(\?|$)/);
    // Play and Next frame look different.
    const play = await page.getByRole('button', { name: 'Play' }).innerHTML();
    const next = await page.getByRole('button', { name: 'Next frame' }).innerHTML();
    expect(play).not.toBe(next);

    // Frame inputs: 1 to 20, and frame 5 is the engine's index 4.
    await page.getByRole('link', { name: 'Retrieve' }).click();
    await page.locator('#retrieve-media').selectOption({ label: 'tour.mp4 (20 frames)' });
    await page.locator('label[for="retrieve-frame"]').filter({ hasText: 'Frame (1–20)' }).waitFor();
    await page.locator('#retrieve-frame').fill('5');
    const picker = page.getByTestId('patch-picker');
    const query = picker.locator('img').first();
    await expect.poll(() => query.getAttribute('src')).toMatch(/\/4\.png(\?|$)/);
    await expect(query.getAttribute('alt')).resolves.toBe('Query: frame 5');
    // The query frame keeps its aspect ratio (the clip is wider than tall).
    await expect.poll(() => loaded(page, '[data-testid="patch-picker"] img')).toBe(true);
    const qb = await query.boundingBox();
    expect(qb && qb.width / qb.height).toBeGreaterThan(1.2);
    const box = await picker.boundingBox();
    if (!box) throw new Error('no picker');
    await page.mouse.click(box.x + box.width * 0.5, box.y + box.height * 0.6);
    const results = page.getByTestId('patch-results').locator('li');
    await results.first().waitFor({ timeout: 30_000 });
    for (const li of await results.all()) {
      const n = Number((await li.locator('.card-caption').textContent())?.match(/frame (\d+)/)?.[1]);
      expect(await li.locator('img').getAttribute('src')).toMatch(new RegExp(`/${n - 1}\\.png(\\?|$)`));
    }
    // Results come before the near-duplicates card.
    await page.getByLabel('Cosine similarity at least').fill('0.5');
    await page.getByRole('button', { name: 'Find near-duplicates' }).click();
    const dups = page.getByTestId('duplicates');
    await dups.waitFor();
    const rb = await page.getByTestId('patch-results').boundingBox();
    const db = await page.getByRole('heading', { name: 'Near-duplicates' }).boundingBox();
    expect(rb && db && rb.y < db.y).toBe(true);
    const pairs = dups.locator('li');
    expect(await pairs.count()).toBeGreaterThan(0);
    for (const li of (await pairs.all()).slice(0, 5)) {
      const text = (await li.locator('span').textContent()) ?? '';
      expect(text).not.toMatch(/#\d/);
      const numbers = [...text.matchAll(/frame (\d+)/g)].map((m) => Number(m[1]));
      const srcs = await li.locator('img').evaluateAll((all) => all.map((i) => i.getAttribute('src') ?? ''));
      expect(srcs.map((src) => Number(src.match(/\/(\d+)\.png(\?|$)/)?.[1]) + 1)).toEqual(numbers);
    }
    await s.shot('46-retrieve-numbering');
  });

  it("shows the Map's lasso filter in the Library, on every visit, until it is cleared", async () => {
    const { page } = s;
    await page.getByRole('link', { name: 'Map' }).click();
    await page.getByLabel('Layout').selectOption('pca');
    await page.getByRole('button', { name: 'Build map' }).click();
    const canvas = page.getByTestId('map-canvas');
    await canvas.waitFor({ timeout: 60_000 });
    const map = await s.engine.call('map.get', { id: 1 });
    // Lasso a ring around a few points of the map (a part of the frames, so the filter hides the rest).
    const W = 900;
    const H = 600;
    const fit = fitPoints(map.points, W, H);
    const at = map.points.map((p) => place(fit, p));
    // Around the video frame farthest from the image: the ring holds frames of the video only.
    const perItem = new Map<number, number>();
    for (const p of map.points) perItem.set(p.mediaId, (perItem.get(p.mediaId) ?? 0) + 1);
    const image = map.points.findIndex((p) => perItem.get(p.mediaId) === 1);
    const imageAt = at[image] as [number, number];
    const dist = (i: number) => {
      const [x, y] = at[i] as [number, number];
      return Math.hypot(x - imageAt[0], y - imageAt[1]);
    };
    let far = image === 0 ? 1 : 0;
    for (let i = 0; i < at.length; i++) if (i !== image && dist(i) > dist(far)) far = i;
    const [cx, cy] = at[far] as [number, number];
    const r = Math.min(40, dist(far) / 2);
    await lassoRing(page, canvas, { width: W, height: H }, { cx, cy, r });
    await expect.poll(() => page.getByTestId('map-selection').textContent()).toMatch(/selected in 1 item$/);
    await page.getByRole('button', { name: 'Open selection in Library' }).click();

    // Visible in the Library's header, in the navigation, and as a banner with the count.
    const chip = page.getByTestId('library-filter-chip');
    await chip.waitFor();
    await expect.poll(() => page.getByTestId('library-selection').textContent()).toMatch(/^Showing 1 item of 2: /);
    await expect(page.getByTestId('nav-library-filtered').isVisible()).resolves.toBe(true);
    await s.shot('47-library-filtered');
    // Still there after visiting another view.
    await page.getByRole('link', { name: 'Jobs' }).click();
    await page.getByRole('link', { name: 'Library' }).click();
    await chip.waitFor();
    await chip.getByRole('button', { name: 'Clear filter' }).click();
    await expect.poll(() => chip.count()).toBe(0);
    await expect(page.getByTestId('nav-library-filtered').count()).resolves.toBe(0);
    await expect(page.getByTestId('library-selection').count()).resolves.toBe(0);
  });

  it('says where features and the map are shown that media was added since, and updates each with one click', async () => {
    const { page } = s;
    const shirt = path.join(work, 'shirt.png');
    fs.copyFileSync(fixturePath('fashion', 'train', 'ankle_boot', 'train_00000.png'), shirt);
    await s.engine.call('library.add', { paths: [shirt] });
    await expect
      .poll(async () => (await s.engine.call('library.list', { status: 'done' })).total, { timeout: 60_000 })
      .toBe(3);

    // Features: the run misses the new frame, said under it, with the button that extracts it.
    await page.getByRole('link', { name: 'Segment' }).click();
    const staleRun = page.getByTestId('stale-run-1');
    await expect.poll(() => staleRun.textContent()).toContain("covers 21 of the library's 22 frames");
    await s.shot('48-stale-features');
    await staleRun.getByRole('button', { name: 'Extract the 1 missing frame' }).click();
    await page.getByTestId('run-1').filter({ hasText: '22 frames' }).waitFor({ timeout: 120_000 });
    await expect.poll(() => staleRun.count()).toBe(0);

    // The map was made from 21 frames; its features now have 22.
    await page.getByRole('link', { name: 'Map' }).click();
    const staleMap = page.getByTestId('stale-map');
    await expect.poll(() => staleMap.textContent()).toMatch(/Map #1 shows 21 frames; its features now cover 22 frames/);
    await s.shot('49-stale-map');
    await staleMap.getByRole('button', { name: 'Rebuild the map' }).click();
    await expect
      .poll(() => page.locator('#map-pick option:checked').textContent(), { timeout: 60_000 })
      .toMatch(/^#2 .*22 points/);
    await expect.poll(() => staleMap.count()).toBe(0);
    expect(s.errors).toEqual([]);
  });
});
