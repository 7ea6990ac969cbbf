/**
 * A training run on the GPU whose checkpoint cannot be written — the disk is full, or the run's checkpoint folder
 * cannot be made — fails with that reason. It is not the GPU's failure: no restart on the CPU, no 'device-fallback'
 * item, no "webgpu failed" in the phase. The disk is "filled" by making the step-2 checkpoint's temporary file a
 * link to /dev/full (every write to it: ENOSPC); the folder is made unwritable by a file in its place (the tests may
 * run as root, for whom a folder's permission bits do not stop a write).
 */
import fs from 'node:fs';
import path from 'node:path';
import { expect, it } from 'vitest';
import { phasesUntilEnded } from '../../helpers/dispatch.js';
import { engineWithFrames, TINY_TRAIN } from '../../helpers/train.js';
import { describeWebGpu } from '../../helpers/webgpu.js';

type Setup = Awaited<ReturnType<typeof engineWithFrames>>;

/** Starts a 4-step WebGPU run (checkpoints at steps 2 and 4) after `prepare` spoiled its checkpoint folder. */
async function runWithSpoiledCheckpoints(name: string, prepare: (runDir: string) => void) {
  const setup: Setup = await engineWithFrames(name);
  const { engine, call, runner } = setup;
  // The job's id is the next in the project (ids are never reused): its folder can be spoiled before it starts.
  const nextId = Math.max(0, ...(await call('jobs.list', {})).map((j) => j.id)) + 1;
  prepare(path.join(engine.requireProject().project.checkpointsDir, `train-${nextId}`));
  const job = await call('train.start', {
    ...TINY_TRAIN,
    steps: 4,
    checkpointEvery: 2,
    previewEvery: 0,
    device: 'webgpu',
  });
  expect(job.id).toBe(nextId);
  const phases = await phasesUntilEnded(call, job.id, 20);
  await runner.idle();
  const ended = await call('jobs.get', { id: job.id });
  const items = (await call('jobs.items', { id: job.id })).items;
  const log = await call('train.log', { jobId: job.id });
  return { ...setup, ended, items, log, phases };
}

function expectNoCpuRestart(r: Awaited<ReturnType<typeof runWithSpoiledCheckpoints>>) {
  expect(r.ended.state).toBe('failed');
  expect(r.items.find((i) => i.key === 'device-fallback')).toBeUndefined();
  expect(r.items.find((i) => i.key === 'export')).toBeUndefined();
  expect(r.ended.progress.phase).toBe('training on webgpu');
  expect([...r.phases].filter((p) => /training on cpu|failed at step/.test(p))).toEqual([]);
  expect(r.ended.error?.message).not.toMatch(/webgpu failed|device was lost/i);
  // Steps 1 and 2 ran on the GPU; the run stopped at the checkpoint of step 2 (nothing ran again on the CPU).
  expect(r.log.map((row) => row.step)).toEqual([1, 2]);
}

describeWebGpu('a GPU training run that cannot write its checkpoint', () => {
  it('fails with "the disk is full" when the disk fills up, without restarting on the CPU', async () => {
    const r = await runWithSpoiledCheckpoints('disk-full', (runDir) => {
      fs.mkdirSync(runDir, { recursive: true });
      fs.symlinkSync('/dev/full', path.join(runDir, 'step-0000002.safetensors.tmp'));
    });
    expectNoCpuRestart(r);
    expect(r.ended.error?.code).toBe('DISK_FULL');
    expect(r.ended.error?.message).toMatch(/^The disk is full/);
    await r.engine.close();
  }, 600_000);

  it('fails with the folder it cannot write when the checkpoint folder is unwritable, without restarting on the CPU', async () => {
    const r = await runWithSpoiledCheckpoints('unwritable', (runDir) => {
      fs.mkdirSync(path.dirname(runDir), { recursive: true });
      fs.writeFileSync(runDir, 'not a folder');
    });
    expectNoCpuRestart(r);
    expect(r.ended.error?.code).toBe('IO_ERROR');
    expect(r.ended.error?.message).toMatch(/cannot write the checkpoint of step 2 .*train-\d+/);
    await r.engine.close();
  }, 600_000);
});
