/**
 * The `train.unco` job (UnCo as an objective of the one trainer) on a project of a few synthetic counting scenes
 * with a frozen tiny ViT: per-step loss and held-out collage MAE in train_log, checkpoints, a collage preview, the
 * decoder exported and listed as a counter that `count.unco` counts with (count = the density map's sum); a
 * cancelled run resumed with exactly the losses and held-out MAEs of an uninterrupted one.
 */
import fs from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { CommandArgs } from '../../../native/api/contract.js';
import { encodePng } from '../../../native/media/png.js';
import { parseSafetensors } from '../../../native/models/safetensors.js';
import { makeCountScene } from '../../../tools/synth/count.js';
import { dispatchEngine } from '../../helpers/dispatch.js';
import { writeTinyViT } from '../../helpers/models.js';
import { tmpDir } from '../../helpers/tmp.js';

const work = tmpDir();
const backbone = writeTinyViT(5, 'unco-backbone.safetensors');
const images = [1, 2, 3, 4].map((i) => {
  const scene = makeCountScene(60 + i, { size: 160 });
  const file = path.join(work, `scene-${i}.png`);
  fs.writeFileSync(file, encodePng(scene.rgb, scene.width, scene.height));
  return { file, scene };
});

const ARGS = {
  steps: 6,
  batch: 2,
  checkpointEvery: 2,
  evalEvery: 2,
  evalCollages: 3,
  previewEvery: 3,
  libraryFrames: 4,
  types: 3,
  maxCount: 12,
  total: 14,
  pasteSize: [14, 40],
  seed: 3,
} as const satisfies CommandArgs<'train.unco'>;

async function project(name: string) {
  const { engine, call } = dispatchEngine();
  await call('project.create', { path: path.join(work, name) });
  await call('library.add', { paths: images.map((i) => i.file) });
  const runner = engine.requireProject().runner;
  await runner.idle();
  const model = await call('models.import', { path: backbone, name: 'tiny backbone' });
  return { engine, call, runner, model };
}

/** Cancels job `id` once it has logged 3 steps, checks it stopped early, resumes it and waits for the end. */
async function cancelAndResume(p: Awaited<ReturnType<typeof project>>, id: number): Promise<void> {
  while ((await p.call('train.log', { jobId: id })).length < 3) await new Promise((r) => setTimeout(r, 5));
  await p.call('jobs.cancel', { id });
  await p.runner.idle();
  expect((await p.call('jobs.get', { id })).state).toBe('cancelled');
  expect((await p.call('train.log', { jobId: id })).length).toBeLessThan(ARGS.steps);
  await p.call('jobs.resume', { id });
  await p.runner.idle();
}

describe('the train.unco job', { timeout: 600_000 }, () => {
  let reference: { loss: number; monitor: number }[];
  let env: Awaited<ReturnType<typeof project>>;
  let jobId: number;

  beforeAll(async () => {
    env = await project('unco-reference');
    const job = await env.call('train.unco', { ...ARGS, model: env.model.id });
    await env.runner.idle();
    const done = await env.call('jobs.get', { id: job.id });
    expect(done.error?.message ?? done.state).toBe('done');
    jobId = job.id;
    reference = (await env.call('train.log', { jobId })).map((r) => ({ loss: r.loss, monitor: r.teacherEntropy }));
  }, 600_000);

  afterAll(() => env.engine.close());

  it('logs a finite loss and the held-out collage MAE at every step', () => {
    expect(reference).toHaveLength(ARGS.steps);
    for (const r of reference) {
      expect(Number.isFinite(r.loss)).toBe(true);
      expect(Number.isFinite(r.monitor)).toBe(true);
      expect(r.monitor).toBeGreaterThanOrEqual(0);
    }
  });

  it('writes previews of a collage, its target and the prediction', async () => {
    const previews = await env.call('train.previews', { jobId });
    expect(previews.map((p) => p.step)).toEqual([0, 3, 6]);
    expect(previews[0]?.png.startsWith('data:image/png;base64,')).toBe(true);
  });

  it('exports the decoder with its backbone and lists it as a counter, not as a model', async () => {
    const dir = path.join(env.engine.requireProject().project.checkpointsDir, `train-${jobId}`, 'export');
    const file = parseSafetensors(fs.readFileSync(path.join(dir, 'decoder.safetensors')), 'decoder');
    expect(file.metadata).toMatchObject({ backbone_model: String(env.model.id), steps: '6', provider: 'cpu' });
    expect(JSON.parse(file.metadata.unco_config as string)).toMatchObject({ shots: 1, grid: 14, patch: 2 });
    expect(fs.existsSync(path.join(dir, 'decoder.onnx'))).toBe(true);
    const counters = await env.call('count.counters', {});
    expect(counters).toEqual([
      expect.objectContaining({
        jobId,
        modelId: env.model.id,
        shots: 1,
        steps: 6,
        heldoutMae: reference.at(-1)?.monitor,
      }),
    ]);
    expect((await env.call('models.list', {})).map((m) => m.id)).toEqual([env.model.id]);
  });

  it('counts a frame with the trained counter: the density map sums to the count', async () => {
    const media = (await env.call('library.list', {})).items[0];
    const mediaId = media?.id ?? 0;
    const k = (media?.frameWidth ?? 0) / 160;
    const [x, y, w, h] = images[0]?.scene.exemplar ?? [0, 0, 1, 1];
    const r = await env.call('count.unco', { jobId, mediaId, frameIdx: 0, boxes: [[x * k, y * k, w * k, h * k]] });
    expect(r.side).toBe(28);
    expect(r.density).toHaveLength(28 * 28);
    const sum = r.density.reduce((a, v) => a + v, 0);
    expect(r.count).toBeCloseTo(Math.max(0, sum), 3);
    // A counter trained with exemplars says so when none is given.
    await expect(env.call('count.unco', { jobId, mediaId, frameIdx: 0 })).rejects.toThrow(/exemplar/);
  });

  it('resumes a cancelled run with exactly the losses and held-out MAEs of an uninterrupted one', async () => {
    const other = await project('unco-resumed');
    try {
      const job = await other.call('train.unco', { ...ARGS, model: other.model.id });
      await cancelAndResume(other, job.id);
      const log = await other.call('train.log', { jobId: job.id });
      expect(log.map((r) => r.step)).toEqual([1, 2, 3, 4, 5, 6]);
      expect(log.map((r) => ({ loss: r.loss, monitor: r.teacherEntropy }))).toEqual(reference);
    } finally {
      await other.engine.close();
    }
  });

  it('trains from a collage pool: a resumed run draws the same pool and has the losses of an uninterrupted one', async () => {
    const args = { ...ARGS, pool: 5 };
    const whole = await project('unco-pool');
    const parts = await project('unco-pool-resumed');
    try {
      const a = await whole.call('train.unco', { ...args, model: whole.model.id });
      await whole.runner.idle();
      expect((await whole.call('jobs.get', { id: a.id })).state).toBe('done');
      const expected = (await whole.call('train.log', { jobId: a.id })).map((r) => r.loss);
      expect(expected).toHaveLength(ARGS.steps);
      // Not the fresh-collage run's losses: the batches come from the pool.
      expect(expected).not.toEqual(reference.map((r) => r.loss));
      const b = await parts.call('train.unco', { ...args, model: parts.model.id });
      await cancelAndResume(parts, b.id);
      expect((await parts.call('train.log', { jobId: b.id })).map((r) => r.loss)).toEqual(expected);
    } finally {
      await whole.engine.close();
      await parts.engine.close();
    }
  });

  it('refuses to start without a model to read features from', async () => {
    const { engine, call } = dispatchEngine();
    try {
      await call('project.create', { path: path.join(work, 'no-model') });
      await expect(call('train.unco', { steps: 1 })).rejects.toThrow(/Choose the model/);
    } finally {
      await engine.close();
    }
  });
});
