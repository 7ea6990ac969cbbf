import path from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { ROOT } from '../helpers/engine-process.js';
import { type Session, useAppSession } from './browser.js';

describe('library and player, end to end in browser mode', () => {
  const app = useAppSession();
  const { work } = app;
  let s: Session;
  beforeAll(() => {
    s = app.session();
  });

  it('shows the demo project with its sample clip ingested', async () => {
    const { page } = s;
    await page.getByRole('link', { name: 'Library' }).click();
    await page.locator('[data-testid^="media-"][data-kind="video"]').first().waitFor({ timeout: 30_000 });
    // The card shows while the import still runs; the counts settle when it ends.
    await expect
      .poll(() => page.getByTestId('library-counts').textContent(), { timeout: 60_000 })
      .toMatch(/1 video · 80 sampled frames/);
    await s.shot('08-demo-library');
  });

  it('adds the sample clip to a new project, watches the import, and scrubs its frames', async () => {
    const { page } = s;
    await page.getByRole('link', { name: 'Project' }).click();
    await page.getByLabel('Project folder', { exact: true }).fill(path.join(work, 'street'));
    // A project without the starter model: this test brings its own (issue 26 adds it by default).
    await page.getByLabel('Add the starter model').uncheck();
    await page.getByRole('button', { name: 'Create project' }).click();
    await page.getByTestId('project-name').filter({ hasText: 'street' }).waitFor();

    await page.getByRole('link', { name: 'Library' }).click();
    await page.getByText('Nothing here yet.').waitFor();
    await page.getByLabel('Folder or file').fill(path.join(ROOT, 'samples', 'vtest-street.mp4'));
    await page.getByLabel('Frames per second').fill('10');
    await page.getByRole('button', { name: 'Add to library' }).click();
    // The import shows its progress while it runs…
    await page.locator('[data-testid^="ingest-"]').first().waitFor({ timeout: 10_000 });
    await s.shot('09-ingest-progress');
    // …then the video card, with its sampled frames.
    const card = page.locator('[data-testid^="media-"][data-kind="video"]').first();
    await card.filter({ hasText: '795 frames' }).waitFor({ timeout: 60_000 });
    await expect(card.textContent()).resolves.toMatch(/1m 20s · 795 frames · 10 fps/);
    await s.shot('10-library');

    await card.getByRole('link').click();
    const position = page.getByTestId('frame-position');
    await position.filter({ hasText: 'frame 1 of 795 · 0:00.000' }).waitFor();
    const frame = page.getByTestId('player-frame');
    await expect
      .poll(() =>
        frame.evaluate((img: { complete: boolean; naturalWidth: number }) => img.complete && img.naturalWidth),
      )
      .toBe(298);

    // Frame-accurate scrubbing: keys step one sampled frame at a time, the slider jumps.
    await page.getByTestId('scrubber').focus();
    await page.keyboard.press('ArrowRight');
    await position.filter({ hasText: 'frame 2 of 795 · 0:00.100' }).waitFor();
    await page.getByTestId('scrubber').fill('400');
    await position.filter({ hasText: 'frame 401 of 795 · 0:40.000' }).waitFor();
    await expect(frame.getAttribute('src')).resolves.toMatch(/media\/frame\/\d+\/400\.png(\?|$)/);
    await expect
      .poll(() =>
        frame.evaluate((img: { complete: boolean; naturalWidth: number }) => img.complete && img.naturalWidth),
      )
      .toBe(298);
    await s.shot('11-player-scrubbed');
    expect(s.errors).toEqual([]);
  });
});
