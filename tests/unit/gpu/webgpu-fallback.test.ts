/**
 * A training job whose GPU fails mid-run (device loss, simulated with FLANEUR_SIMULATE_GPU_LOSS: the step's WebGPU
 * session and the state on the device are dropped and the step throws) goes on on the CPU from its last checkpoint:
 * every step logged once, the model exported, and the reason in the job's items, its phase and the model's metadata.
 */
import fs from 'node:fs';
import path from 'node:path';
import { afterEach, expect, it } from 'vitest';
import { parseSafetensors } from '../../../native/models/safetensors.js';
import { engineWithFrames, TINY_TRAIN } from '../../helpers/train.js';
import { describeWebGpu } from '../../helpers/webgpu.js';

afterEach(() => {
  delete process.env.FLANEUR_SIMULATE_GPU_LOSS;
});

describeWebGpu('GPU failure mid-job', () => {
  it('continues a WebGPU training job on the CPU from its checkpoint, with the reason recorded', async () => {
    const { engine, call, runner } = await engineWithFrames('gpu-loss');
    process.env.FLANEUR_SIMULATE_GPU_LOSS = '3';
    const steps = 4;
    const job = await call('train.start', {
      ...TINY_TRAIN,
      steps,
      checkpointEvery: 2,
      previewEvery: 0,
      device: 'webgpu',
    });
    const phases = new Set<string>();
    while (!['done', 'failed'].includes((await call('jobs.get', { id: job.id })).state)) {
      phases.add((await call('jobs.get', { id: job.id })).progress.phase);
      await new Promise((r) => setTimeout(r, 20));
    }
    await runner.idle();
    const done = await call('jobs.get', { id: job.id });
    expect(done.error?.message ?? done.state).toBe('done');
    // Steps 1-2 ran on the GPU and were checkpointed; step 3 lost the GPU; 3-4 ran on the CPU: each step once.
    const log = await call('train.log', { jobId: job.id });
    expect(log.map((r) => r.step)).toEqual([1, 2, 3, 4]);
    for (const r of log) expect(Number.isFinite(r.loss)).toBe(true);
    const items = (await call('jobs.items', { id: job.id })).items;
    const fallback = items.find((i) => i.key === 'device-fallback');
    expect(fallback?.result).toMatchObject({ from: 'webgpu', to: 'cpu', step: 3, resumedAt: 2 });
    expect(JSON.stringify(fallback?.result)).toMatch(/device was lost/);
    const training = [...phases].filter((p) => p.startsWith('training'));
    expect(training[0]).toBe('training on webgpu');
    expect(training.at(-1)).toMatch(/^training on cpu \(webgpu failed at step 3: .*device was lost/);
    const file = path.join(
      engine.requireProject().project.checkpointsDir,
      `train-${job.id}`,
      'export',
      'encoder.safetensors',
    );
    const meta = parseSafetensors(fs.readFileSync(file)).metadata;
    expect(meta.provider).toBe('cpu');
    expect(meta.fallback).toMatch(/webgpu/);
    await engine.close();
  }, 600_000);
});
