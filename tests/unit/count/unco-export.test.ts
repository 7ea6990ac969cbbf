/**
 * UnCo trained elsewhere: `train.uncoExport` writes Self-Collages built here (images, density targets, N, exemplar
 * boxes), the frozen backbone, the decoder's start and the PyTorch program; Debian's PyTorch runs train_unco.py for
 * a few steps on the CPU; `train.uncoImport` brings the decoder back as a counter that `count.unco` counts with.
 * The held-out collage MAE the program reports is the MAE Flaneur's counter gives on the same exported collages
 * (backbone, exemplar features and decoder agree across the two). Needs a python3 with torch (FLANEUR_PYTHON, else
 * /usr/bin/python3); skipped with the reason without one.
 */
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { CommandArgs } from '../../../native/api/contract.js';
import { UncoCounter } from '../../../native/count/unco-counter.js';
import { FeatureExtractor, loadRegisteredModel } from '../../../native/features/extract.js';
import { readSafetensors } from '../../../native/models/safetensors.js';
import { dispatchEngine } from '../../helpers/dispatch.js';
import { writeTinyViT } from '../../helpers/models.js';
import { tmpDir } from '../../helpers/tmp.js';
import { torchrunArgs } from '../../helpers/torchrun.js';
import { UNCO_TINY_COLLAGES, writeCountScenes } from '../../helpers/unco.js';

const PYTHON = process.env.FLANEUR_PYTHON ?? '/usr/bin/python3';
const probe = spawnSync(PYTHON, ['-c', 'import torch, numpy; print(torch.__version__)'], { encoding: 'utf8' });
const SKIP =
  probe.status === 0
    ? false
    : `no PyTorch: ${PYTHON} cannot import torch and numpy (install python3-torch, or set FLANEUR_PYTHON)`;
if (SKIP) console.warn(`tests/unit/count/unco-export.test.ts: skipping: ${SKIP}`);

const work = tmpDir();
const backbone = writeTinyViT(5, 'unco-backbone.safetensors');
const images = writeCountScenes(work, [61, 62, 63, 64]);

const ARGS = {
  ...UNCO_TINY_COLLAGES,
  steps: 3,
  batch: 2,
  checkpointEvery: 2,
  evalEvery: 1,
  evalCollages: 3,
  pool: 5,
} satisfies Omit<CommandArgs<'train.uncoExport'>, 'dir'>;

interface UncoJson {
  config: { shots: number; scaling: number; grid: number; patch: number };
  side: number;
  size: number;
  train: { collages: number; counts: number[]; exemplars: [number, number, number, number][][]; density: string };
  heldout: { collages: number; counts: number[]; exemplars: [number, number, number, number][][]; images: string };
}

describe.skipIf(SKIP)(
  'an UnCo run exported for torchrun, trained by PyTorch and brought back',
  { timeout: 600_000 },
  () => {
    const { engine, call } = dispatchEngine();
    const dir = path.join(work, 'export');
    let modelId: number;
    let run: UncoJson;

    beforeAll(async () => {
      await call('project.create', { path: path.join(work, 'project') });
      await call('library.add', { paths: images.map((i) => i.file) });
      await engine.requireProject().runner.idle();
      modelId = (await call('models.import', { path: backbone, name: 'tiny backbone' })).id;
      const job = await call('train.uncoExport', {
        ...ARGS,
        model: modelId,
        dir,
      });
      await engine.requireProject().runner.idle();
      const done = await call('jobs.get', { id: job.id });
      expect(done.error?.message ?? done.state).toBe('done');
      run = JSON.parse(fs.readFileSync(path.join(dir, 'unco.json'), 'utf8')) as UncoJson;
    }, 600_000);
    afterAll(() => engine.close());

    it('writes the collages with density targets that sum to their N, the backbone, the start and the program', () => {
      for (const f of ['backbone.safetensors', 'init.safetensors', 'train_unco.py', 'unco_decoder.py', 'README.md'])
        expect(fs.existsSync(path.join(dir, f))).toBe(true);
      expect(fs.existsSync(path.join(dir, 'flaneur_train', 'model.py'))).toBe(true);
      expect(run.train.collages).toBe(5);
      expect(run.heldout.collages).toBe(3);
      expect(fs.statSync(path.join(dir, run.heldout.images)).size).toBe(3 * 224 * 224 * 3);
      const density = new Float32Array(fs.readFileSync(path.join(dir, run.train.density)).buffer.slice(0));
      const S = run.side;
      expect(S).toBe(run.config.grid * run.config.patch);
      expect(density.length).toBe(5 * S * S);
      run.train.counts.forEach((n, i) => {
        const sum = density.subarray(i * S * S, (i + 1) * S * S).reduce((a, v) => a + v, 0);
        expect(sum / run.config.scaling).toBeCloseTo(n, 3);
        expect(run.train.exemplars[i]?.length).toBe(Math.min(3, n));
      });
    });

    it('trains with PyTorch, resumes from its checkpoint, and the counter comes back with its held-out MAE', async () => {
      const py = (steps: number) =>
        spawnSync(PYTHON, ['train_unco.py', '--config', 'unco.json', '--device', 'cpu', '--steps', String(steps)], {
          cwd: dir,
          encoding: 'utf8',
        });
      const first = py(2);
      expect(first.stderr + first.stdout).toMatch(/step 2\/2/);
      expect(first.status).toBe(0);
      // A second run goes on from the checkpoint of step 2 to the run's 3 steps.
      fs.rmSync(path.join(dir, 'out', 'decoder.safetensors'));
      const second = py(3);
      expect(second.status).toBe(0);
      expect(second.stdout).toMatch(/resuming at step 2/);
      const log = fs
        .readFileSync(path.join(dir, 'out', 'train_log.jsonl'), 'utf8')
        .trim()
        .split('\n')
        .map((l) => JSON.parse(l) as { step: number; loss: number; heldout_mae: number });
      expect(log.map((r) => r.step)).toEqual([1, 2, 3]);
      for (const r of log) expect(Number.isFinite(r.loss) && Number.isFinite(r.heldout_mae)).toBe(true);
      const decoder = readSafetensors(path.join(dir, 'out', 'decoder.safetensors'));
      expect(decoder.metadata).toMatchObject({ backbone_model: String(modelId), steps: '3' });

      const job = await call('train.uncoImport', { path: dir, name: 'torch counter' });
      await engine.requireProject().runner.idle();
      const done = await call('jobs.get', { id: job.id });
      expect(done.error?.message ?? done.state).toBe('done');
      const counters = await call('count.counters', {});
      expect(counters).toContainEqual(
        expect.objectContaining({ jobId: job.id, name: 'torch counter', modelId, shots: 1, steps: 3 }),
      );
      const mediaId = (await call('library.list', {})).items[0]?.id ?? 0;
      const [x, y, w, h] = images[0]?.scene.exemplar ?? [0, 0, 1, 1];
      const k = ((await call('library.list', {})).items[0]?.frameWidth ?? 0) / 160;
      const r = await call('count.unco', {
        jobId: job.id,
        mediaId,
        frameIdx: 0,
        boxes: [[x * k, y * k, w * k, h * k]],
      });
      expect(r.count).toBeCloseTo(
        Math.max(
          0,
          r.density.reduce((a, v) => a + v, 0),
        ),
        3,
      );

      // Flaneur's counter with those weights on the exported held-out collages: the MAE PyTorch reported.
      const project = engine.requireProject().project;
      const counter = await UncoCounter.load({
        jobId: job.id,
        name: 'torch counter',
        modelId,
        shots: 1,
        steps: 3,
        heldoutMae: null,
        heldoutMeanMae: null,
        file: path.join(dir, 'out', 'decoder.safetensors'),
      });
      const extractor = await FeatureExtractor.create(
        loadRegisteredModel(project, modelId).model,
        224,
        undefined,
        'square',
      );
      const rgb = fs.readFileSync(path.join(dir, run.heldout.images));
      let mae = 0;
      for (let i = 0; i < run.heldout.collages; i++) {
        const img = {
          width: 224,
          height: 224,
          data: new Uint8Array(rgb.subarray(i * 224 * 224 * 3, (i + 1) * 224 * 224 * 3)),
        };
        const boxes = (run.heldout.exemplars[i] ?? []).slice(0, 1);
        const got = boxes.length ? (await counter.count(extractor, img, boxes)).count : 0;
        mae += Math.abs(got - (run.heldout.counts[i] as number)) / run.heldout.collages;
      }
      await counter.release();
      await extractor.release();
      expect(mae).toBeCloseTo(log.at(-1)?.heldout_mae ?? Number.NaN, 3);
    });

    it('trains on torchrun with two processes (gloo), each a share of every batch', () => {
      const r = spawnSync(
        PYTHON,
        torchrunArgs(probe.stdout.trim(), [
          '--standalone',
          '--nproc_per_node=2',
          'train_unco.py',
          '--config',
          'unco.json',
          '--device',
          'cpu',
          '--out',
          'out2',
        ]),
        { cwd: dir, encoding: 'utf8', env: { ...process.env, OMP_NUM_THREADS: '1' } },
      );
      expect(r.stderr + r.stdout).toMatch(/step 3\/3/);
      expect(r.status).toBe(0);
      const decoder = readSafetensors(path.join(dir, 'out2', 'decoder.safetensors'));
      expect(decoder.metadata).toMatchObject({ processes: '2', steps: '3' });
    });

    it('refuses a folder that is not empty, and a decoder that is not there', async () => {
      await expect(call('train.uncoExport', { ...ARGS, model: modelId, dir })).rejects.toThrow(/is not empty/);
      const none = await call('train.uncoImport', { path: path.join(work, 'nowhere') });
      await engine.requireProject().runner.idle();
      expect((await call('jobs.get', { id: none.id })).error?.message).toMatch(/No trained decoder/);
    });
  },
);
