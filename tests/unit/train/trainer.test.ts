import fs from 'node:fs';
import path from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { parseSafetensors } from '../../../native/models/safetensors.js';
import { phasesUntilEnded } from '../../helpers/dispatch.js';
import { waitFor } from '../../helpers/engine-process.js';
import { maxAbsDiff } from '../../helpers/fixtures.js';
import { engineWithFrames, exportedMetadata, TINY_TRAIN } from '../../helpers/train.js';

describe('DINO trainer', () => {
  let reference: number[];

  beforeAll(async () => {
    const { engine, call, runner } = await engineWithFrames('reference');
    const job = await call('train.start', TINY_TRAIN);
    await runner.idle();
    const done = await call('jobs.get', { id: job.id });
    expect(done.error?.message ?? done.state).toBe('done');
    reference = (await call('train.log', { jobId: job.id })).map((r) => r.loss);
    // The exported teacher is registered as a model, with its ONNX beside it.
    // (registered by the engine just after the job ends: waited for, not assumed)
    await waitFor(async () => (await call('models.list', {})).some((m) => m.name === `DINO tiny (job ${job.id})`));
    expect(
      fs.existsSync(
        path.join(engine.requireProject().project.checkpointsDir, `train-${job.id}`, 'export', 'encoder.onnx'),
      ),
    ).toBe(true);
    await engine.close();
  });

  it('logs one finite loss per step, with schedules and the teacher entropy', () => {
    expect(reference).toHaveLength(TINY_TRAIN.steps);
    for (const l of reference) expect(Number.isFinite(l)).toBe(true);
  });

  it('resumes a cancelled run from its checkpoint with exactly the losses of an uninterrupted run', async () => {
    const { engine, call, runner } = await engineWithFrames('resumed');
    const job = await call('train.start', TINY_TRAIN);
    while ((await call('train.log', { jobId: job.id })).length < 6) await new Promise((r) => setTimeout(r, 5));
    await call('jobs.cancel', { id: job.id });
    await runner.idle();
    const stopped = await call('jobs.get', { id: job.id });
    expect(stopped.state).toBe('cancelled');
    const before = (await call('train.log', { jobId: job.id })).length;
    expect(before).toBeLessThan(TINY_TRAIN.steps);
    await call('jobs.resume', { id: job.id });
    await runner.idle();
    const log = await call('train.log', { jobId: job.id });
    expect(log.map((r) => r.step)).toEqual(Array.from({ length: TINY_TRAIN.steps }, (_, i) => i + 1));
    expect(log.map((r) => r.loss)).toEqual(reference);
    await engine.close();
  });
});

describe('DINO trainer: freezing the last layer', () => {
  it('keeps the head’s last layer (and its moments) fixed for the first steps while the rest trains', async () => {
    const { engine, call, runner } = await engineWithFrames('freeze');
    const job = await call('train.start', { ...TINY_TRAIN, steps: 4, checkpointEvery: 1, freezeLastLayerSteps: 4 });
    await runner.idle();
    expect((await call('jobs.get', { id: job.id })).state).toBe('done');
    const dir = path.join(engine.requireProject().project.checkpointsDir, `train-${job.id}`);
    const read = (step: number) =>
      parseSafetensors(fs.readFileSync(path.join(dir, `step-000000${step}.safetensors`)), `step ${step}`);
    const [s3, s4] = [read(3), read(4)];
    const last = 'head.last_layer.weight_v';
    expect(s4.float32(`p.${last}`)).toEqual(s3.float32(`p.${last}`));
    // The teacher's EMA of an unchanged layer stays on it (to float rounding: the EMA runs in the f32 step graph).
    expect(maxAbsDiff(s4.float32(`t.${last}`), s4.float32(`p.${last}`))).toBeLessThan(1e-6);
    expect(s4.float32(`m.${last}`).every((x) => x === 0)).toBe(true);
    expect(s4.float32('p.blocks.0.attn.qkv.weight')).not.toEqual(s3.float32('p.blocks.0.attn.qkv.weight'));
    expect(s4.float32('p.head.mlp.0.weight')).not.toEqual(s3.float32('p.head.mlp.0.weight'));
    await engine.close();
  });
});

describe('DINO trainer: KoLeo', () => {
  it('trains with the KoLeo regulariser on both global crops', async () => {
    const { engine, call, runner } = await engineWithFrames('koleo');
    const job = await call('train.start', { ...TINY_TRAIN, steps: 3, koleo: 0.1 });
    await runner.idle();
    const done = await call('jobs.get', { id: job.id });
    expect(done.error?.message ?? done.state).toBe('done');
    const log = await call('train.log', { jobId: job.id });
    expect(log.map((r) => Number.isFinite(r.loss))).toEqual([true, true, true]);
    await engine.close();
  });
});

describe('DINO trainer: device', () => {
  it('runs on the provider asked for where it loads, falls back down the list where not, and records it', async () => {
    const { engine, call, runner } = await engineWithFrames('device');
    const runtime = await call('runtime.info', {});
    // CUDA is asked for; where it cannot load (this machine, CI), the run falls back and says which provider ran.
    const cuda = runtime.providers.find((p) => p.name === 'cuda');
    const job = await call('train.start', { ...TINY_TRAIN, steps: 2, checkpointEvery: 2, device: 'cuda' });
    const phases = await phasesUntilEnded(call, job.id, 2);
    await runner.idle();
    expect((await call('jobs.get', { id: job.id })).state).toBe('done');
    const ran = cuda?.available ? 'cuda' : 'cpu';
    expect(exportedMetadata(engine, job.id).provider).toBe(ran);
    expect([...phases].filter((p) => p.startsWith('training'))).toEqual([`training on ${ran}`]);
    await engine.close();
  });
});
