/**
 * The Train view's "Run elsewhere…" and "Bring back": a tiny run exported to a folder, its one command shown, the
 * exported PyTorch program run there for 2 steps (Debian's python3-torch, single process; skipped with the reason
 * where torch is missing), and its checkpoint brought back as a model with the run's curves beside local runs.
 */
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { type Session, trainViewOnTour, useAppSession } from './browser.js';

const PYTHON = process.env.FLANEUR_PYTHON ?? '/usr/bin/python3';
const probe = spawnSync(PYTHON, ['-c', 'import torch, numpy'], { encoding: 'utf8' });
const NO_TORCH =
  probe.status === 0 ? false : `no PyTorch: ${PYTHON} cannot import torch and numpy (install python3-torch)`;
if (NO_TORCH) console.warn(`tests/e2e/train-elsewhere.e2e.test.ts: skipping the run and the bring-back: ${NO_TORCH}`);

describe('training elsewhere, end to end in browser mode', () => {
  const app = useAppSession();
  let s: Session;
  let dir: string;
  beforeAll(() => {
    s = app.session();
    dir = path.join(app.work, 'cluster-run');
  });

  it('exports the Train view’s settings to a folder and shows the one command to run there', async () => {
    const { page } = s;
    await trainViewOnTour(s, path.join(app.work, 'elsewhere'));
    await page.getByLabel('Method').selectOption('dino');
    await page.getByLabel('Steps').fill('2');
    await page.getByLabel('Batch').fill('2');
    await page.getByLabel('Crop size').fill('32');
    await page.getByRole('button', { name: 'Run elsewhere…' }).click();
    await page.getByLabel('Export folder').fill(dir);
    await page.getByRole('button', { name: 'Export', exact: true }).click();
    await expect
      .poll(() => page.getByTestId('export-command').locator('pre').textContent(), { timeout: 60_000 })
      .toBe(`cd ${dir} && torchrun --standalone --nproc_per_node=N train.py --config run.json`);
    // The folder holds the form's run: 2 steps of 2 images, tiny ViT, 32 px crops.
    const cfg = JSON.parse(fs.readFileSync(path.join(dir, 'run.json'), 'utf8'));
    expect(cfg).toMatchObject({ objective: 'dino', args: { steps: 2, batch: 2, globalSize: 32 } });
    expect(cfg.args.init).toEqual({ kind: 'scratch', preset: 'tiny' });
    expect(fs.existsSync(path.join(dir, 'train.py'))).toBe(true);
    // Nothing was trained locally.
    expect((await s.engine.call('jobs.list', {})).filter((j) => j.kind === 'train.dino')).toEqual([]);
    await page.getByTestId('run-elsewhere').scrollIntoViewIfNeeded();
    await s.shot('19c-train-run-elsewhere');
    expect(s.errors).toEqual([]);
  });

  it.skipIf(NO_TORCH)('brings back a checkpoint of the exported program: a model and its curves', async () => {
    const { page } = s;
    const r = spawnSync(PYTHON, ['train.py', '--config', 'run.json'], {
      cwd: dir,
      encoding: 'utf8',
      env: { ...process.env, OMP_NUM_THREADS: '1' },
    });
    expect(r.status, `${r.stdout}\n${r.stderr}`).toBe(0);
    const checkpoint = path.join(dir, 'run', 'checkpoints', 'step-0000002.json');
    expect(fs.existsSync(checkpoint)).toBe(true);
    const losses = fs
      .readFileSync(path.join(dir, 'run', 'metrics.jsonl'), 'utf8')
      .trim()
      .split('\n')
      .map((l) => JSON.parse(l).loss as number);
    expect(losses).toHaveLength(2);

    await page.getByLabel('Exported folder or checkpoint').fill(checkpoint);
    await page.getByRole('button', { name: 'Bring back' }).click();
    await expect
      .poll(() => page.getByTestId('import-result').textContent(), { timeout: 60_000 })
      .toMatch(
        /^Registered as model #\d+ “DINO tiny, 2 steps on 1× cpu \(imported, job \d+\)”: DINO run trained with torchrun: 2 of 2 steps on 1× cpu in \d+ s/,
      );
    // The brought-back run is listed with the local runs and its curves come from the run's metrics log.
    await expect
      .poll(() => page.getByLabel('Run', { exact: true }).locator('option:checked').textContent())
      .toMatch(/Bring back the training run in .*step-0000002\.json \(trained elsewhere\) — done/);
    await expect
      .poll(() => page.getByTestId('train-status').textContent())
      .toMatch(/^Trained elsewhere: 2 steps logged · loss/);
    await expect.poll(() => page.getByTestId('train-loss').locator('path').getAttribute('d')).toMatch(/^M[^L]+L[^L]+$/);
    const imported = (await s.engine.call('jobs.list', {})).find((j) => j.kind === 'train.import');
    const curve = await s.engine.call('train.log', { jobId: imported?.id as number });
    expect(curve.map((row) => row.loss)).toEqual(losses);
    const model = (await s.engine.call('models.list', {})).find((m) => m.provenance?.trainedBy);
    expect(model?.provenance).toMatchObject({ steps: 2, processes: 1, device: 'cpu', objective: 'dino' });
    // The same settings trained here: its curve beside the one trained elsewhere, and the same losses.
    await page.getByLabel('Device').selectOption('cpu');
    await page.getByRole('button', { name: 'Start training' }).click();
    await page
      .getByTestId('train-status')
      .filter({ hasText: /^Step 2 \/ 2/ })
      .waitFor({ timeout: 60_000 });
    const localJob = (await s.engine.call('jobs.list', {})).find((j) => j.kind === 'train.dino');
    await expect.poll(async () => (await s.engine.call('jobs.get', { id: localJob?.id as number })).state).toBe('done');
    const local = (await s.engine.call('train.log', { jobId: localJob?.id as number })).map((row) => row.loss);
    for (const [i, loss] of local.entries())
      expect(Math.abs(loss - (losses[i] as number)) / Math.abs(loss), `step ${i + 1}`).toBeLessThan(1e-3);
    await page.getByLabel('Run', { exact: true }).selectOption(String(imported?.id));
    await page.getByLabel('Compare with').selectOption(String(localJob?.id));
    await expect
      .poll(() => page.getByTestId('compare-legend').textContent())
      .toBe(`Solid: #${imported?.id}; dashed: #${localJob?.id} (2 steps)`);
    await expect
      .poll(() => page.getByTestId('train-loss').locator('[data-testid=compared]').getAttribute('d'))
      .toMatch(/^M[^L]+L[^L]+$/);
    await page.getByLabel('Run', { exact: true }).scrollIntoViewIfNeeded();
    await s.shot('19d-train-bring-back');
    expect(s.errors).toEqual([]);
  });
});
