import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { encodePng } from '../../native/media/png.js';
import { makeCountScene } from '../../tools/synth/count.js';
import { videoFromImages } from '../helpers/media.js';
import { writeTinyViT } from '../helpers/models.js';
import { type Session, useAppSession } from './browser.js';

const PYTHON = process.env.FLANEUR_PYTHON ?? '/usr/bin/python3';
const TORCH = spawnSync(PYTHON, ['-c', 'import torch, numpy'], { encoding: 'utf8' }).status === 0;
if (!TORCH)
  console.warn(`unco-product e2e: no PyTorch at ${PYTHON}: the exported counter is not trained and brought back`);

describe('UnCo product, end to end in browser mode', () => {
  const app = useAppSession();
  let s: Session;
  beforeAll(() => {
    s = app.session();
  });

  it('previews the Self-Collages before training, then counts every frame of a video with a trained counter as a job', async () => {
    const { page } = s;
    const scenes = Array.from({ length: 8 }, (_, i) => makeCountScene(80 + i, { size: 224 }));
    const files = scenes.slice(0, 4).map((scene, i) => {
      const file = path.join(app.work, `scene-${i + 1}.png`);
      fs.writeFileSync(file, encodePng(scene.rgb, scene.width, scene.height));
      return file;
    });
    const video = videoFromImages(path.join(app.work, 'scenes.mp4'), scenes);
    await page.getByLabel('Project folder', { exact: true }).fill(path.join(app.work, 'unco-product'));
    await page.getByLabel('Add the starter model').uncheck();
    await page.getByRole('button', { name: 'Create project' }).click();
    await page.getByTestId('project-name').filter({ hasText: 'unco-product' }).waitFor();
    await s.engine.call('library.add', { paths: files, frameSize: { mode: 'short-side', size: 224 } });
    await s.engine.call('library.add', {
      paths: [video],
      sampling: { policy: 'every', n: 1 },
      frameSize: { mode: 'short-side', size: 224 },
    });
    const model = await s.engine.call('models.import', { path: writeTinyViT(6), name: 'tiny backbone' });
    await page.getByRole('link', { name: 'Library' }).click();
    await page.locator('[data-testid^="media-"]').nth(4).waitFor({ timeout: 60_000 });

    // Train view: the UnCo card previews what the counter learns from, without starting a job.
    await page.getByRole('link', { name: 'Train' }).click();
    // The video is chosen by default (the view starts with every video); the stills are added: 4 + 8 frames.
    for (const f of files) await page.getByLabel(path.basename(f)).check();
    await page.getByLabel('Method').selectOption('unco');
    await page.getByTestId('unco-settings').waitFor();
    await page.getByLabel('Start from').selectOption(`model:${model.id}`);
    await page.getByLabel('Most objects per collage').fill('12');
    await page.getByLabel('Objects per collage', { exact: true }).fill('16');
    const jobsBefore = (await s.engine.call('jobs.list', {})).length;
    await page.getByRole('button', { name: 'Preview collages' }).click();
    const collages = page.getByTestId('unco-preview-collage');
    await expect.poll(() => collages.count(), { timeout: 120_000 }).toBe(4);
    for (const text of await page.getByTestId('unco-preview-count').allTextContents()) {
      const [, n, sum] = /N = (\d+) · target sums to (\d+\.\d)/.exec(text) ?? [];
      expect(Number(n)).toBeGreaterThanOrEqual(1);
      expect(Number(n)).toBeLessThanOrEqual(12);
      expect(Number(sum)).toBeCloseTo(Number(n), 1);
    }
    expect(await page.getByTestId('unco-preview-summary').textContent()).toContain('found without labels in 12 frames');
    expect((await s.engine.call('jobs.list', {})).length).toBe(jobsBefore);
    await page.getByTestId('unco-preview').scrollIntoViewIfNeeded();
    await s.shot('92-unco-collage-preview');

    // The same settings exported for torchrun: a few collages built into a folder with the PyTorch program.
    await page.getByRole('button', { name: 'Run elsewhere…' }).click();
    const exportDir = path.join(app.work, 'unco-export');
    await page.getByLabel('Export folder').fill(exportDir);
    await page.getByLabel('Collages to export').fill('6');
    await page.getByRole('button', { name: 'Export', exact: true }).click();
    const command = page.getByTestId('export-command');
    await command.waitFor({ timeout: 120_000 });
    expect(await command.textContent()).toContain(
      'torchrun --standalone --nproc_per_node=N train_unco.py --config unco.json',
    );
    const exported = JSON.parse(fs.readFileSync(path.join(exportDir, 'unco.json'), 'utf8')) as {
      train: { collages: number };
    };
    expect(exported.train.collages).toBe(6);
    await command.scrollIntoViewIfNeeded();
    await s.shot('94-unco-export');
    // Trained there for one step (Debian's PyTorch on the CPU, where it is installed) and brought back as a counter.
    if (TORCH) {
      const trained = spawnSync(PYTHON, ['train_unco.py', '--config', 'unco.json', '--device', 'cpu', '--steps', '1'], {
        cwd: exportDir,
        encoding: 'utf8',
      });
      expect(trained.stderr + trained.stdout).toMatch(/decoder written/);
      await page.getByLabel('Exported folder or checkpoint').fill(exportDir);
      await page.getByRole('button', { name: 'Bring back' }).click();
      await expect
        .poll(() => page.getByTestId('import-result').textContent(), { timeout: 60_000 })
        .toMatch(/Brought back as a trained counter/);
      expect((await s.engine.call('count.counters', {})).map((c) => [c.shots, c.steps])).toEqual([[1, 1]]);
    }

    // A counter trained without exemplars (automatic), then every frame of the video counted with it as a job.
    const job = await s.engine.call('train.unco', {
      model: model.id,
      media: (await s.engine.call('library.list', {})).items.filter((m) => m.kind === 'image').map((m) => m.id),
      steps: 2,
      batch: 2,
      shots: 0,
      maxCount: 12,
      total: 16,
      libraryFrames: 4,
    });
    await expect
      .poll(async () => (await s.engine.call('jobs.get', { id: job.id })).state, { timeout: 300_000 })
      .toBe('done');
    await page.getByRole('link', { name: 'Count' }).click();
    await page.getByTestId('count-stage').waitFor({ timeout: 30_000 });
    const clip = (await s.engine.call('library.list', {})).items.find((m) => m.kind === 'video');
    await page.locator('#count-media').selectOption({ value: String(clip?.id) });
    const panel = page.getByTestId('unco-panel');
    await panel.scrollIntoViewIfNeeded();
    // The automatic counter trained here (beside the one brought back from PyTorch).
    await expect.poll(() => panel.locator(`#unco-counter option[value="${job.id}"]`).count()).toBe(1);
    await panel.getByLabel('Counter').selectOption(String(job.id));
    await expect.poll(() => panel.getByLabel('Counter').locator('option:checked').textContent()).toMatch(/automatic/);
    await panel.getByRole('button', { name: 'Count every frame with the counter (8)' }).click();
    const curve = page.getByTestId('unco-frames');
    await curve.waitFor({ timeout: 120_000 });
    expect(await curve.textContent()).toContain('Counts over 8 frames (trained counter)');
    expect(await curve.getByTestId('count-plot').isVisible()).toBe(true);
    const runs = (await s.engine.call('jobs.list', {})).filter((j) => j.kind === 'count.uncoVideo');
    expect(runs.map((j) => j.state)).toEqual(['done']);
    expect(await s.engine.call('count.results', { jobId: runs[0]?.id ?? 0 })).toHaveLength(8);
    await curve.scrollIntoViewIfNeeded();
    await s.shot('93-unco-video-curve');
    expect(s.errors).toEqual([]);
  });
});
