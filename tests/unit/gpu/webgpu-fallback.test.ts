/**
 * Jobs whose GPU fails mid-run go on on the CPU, with the reason recorded:
 * - training (device loss simulated with FLANEUR_SIMULATE_GPU_LOSS: the step's WebGPU session and the state on the
 *   device are dropped and the step throws): from its last checkpoint, every step logged once, the model exported,
 *   the reason in the job's items, its phase and the model's metadata;
 * - feature extraction (FLANEUR_SIMULATE_GPU_LOSS_RUN: the Nth GPU run fails as a lost device does): the session
 *   is remade on the CPU and the batch run again; every frame extracted once, the reason in the job's
 *   'device-fallback' item and its phase.
 */
import path from 'node:path';
import { afterEach, expect, it } from 'vitest';
import { FeatureExtractor } from '../../../native/features/extract.js';
import { FrameStore } from '../../../native/media/frame-store.js';
import { importViTFile } from '../../../native/models/import-vit.js';
import { phasesUntilEnded } from '../../helpers/dispatch.js';
import { maxAbsDiff } from '../../helpers/fixtures.js';
import { writeInitViT, writeTinyViT } from '../../helpers/models.js';
import { tmpDir } from '../../helpers/tmp.js';
import { engineWithFrames, exportedMetadata, NECO_TINY, TINY_TRAIN } from '../../helpers/train.js';
import { describeWebGpu } from '../../helpers/webgpu.js';

afterEach(() => {
  delete process.env.FLANEUR_SIMULATE_GPU_LOSS;
  delete process.env.FLANEUR_SIMULATE_GPU_LOSS_RUN;
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
    const phases = await phasesUntilEnded(call, job.id, 20);
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
    const meta = exportedMetadata(engine, job.id);
    expect(meta.provider).toBe('cpu');
    expect(meta.fallback).toMatch(/webgpu/);
    await engine.close();
  }, 600_000);

  it('continues a WebGPU feature extraction on the CPU when the GPU is lost, with the reason recorded', async () => {
    const { engine, call, runner } = await engineWithFrames('gpu-loss-features');
    const file = writeInitViT(path.join(tmpDir(), 'vit.safetensors'));
    const model = await call('models.import', { path: file });
    await call('runtime.configure', { provider: 'webgpu' });
    // Run 1 (the first batch) on the GPU, run 2 loses the device: batches 2.. on the CPU.
    process.env.FLANEUR_SIMULATE_GPU_LOSS_RUN = '2';
    const job = await call('features.extract', { modelId: model.id, size: 32, batch: 4 });
    const phases = await phasesUntilEnded(call, job.id, 20);
    await runner.idle();
    const done = await call('jobs.get', { id: job.id });
    expect(done.error?.message ?? done.state).toBe('done');
    const items = (await call('jobs.items', { id: job.id })).items;
    const fallback = items.find((i) => i.key === 'device-fallback');
    expect(fallback?.result).toMatchObject({ from: 'webgpu', to: 'cpu', done: 4 });
    expect(JSON.stringify(fallback?.result)).toMatch(/GPU device lost/);
    expect(
      [...phases].some((p) => /^extracting on webgpu \(webgpu failed: GPU device lost.*on the CPU since\)$/.test(p)),
    ).toBe(true);
    // Every frame once; the first batch (GPU) and a later one (CPU) as the CPU provider computes them.
    const { project } = engine.requireProject();
    const [run] = await call('features.runs', {});
    const media = (await call('library.list', {})).items[0];
    if (!run || !media) throw new Error('no run or media');
    expect(run.frames).toBe(media.frameCount);
    const store = new FrameStore(project.cacheDir);
    const cpu = await FeatureExtractor.create(importViTFile(file), 32, { provider: 'cpu', threads: 1 });
    for (const f of [0, 5]) {
      const [ref] = await cpu.run([store.image(media.id, f, media.frameWidth as number, media.frameHeight as number)]);
      const got = project.features.get(run.id, media.id, f);
      expect(maxAbsDiff(got?.cls as Float32Array, ref?.cls as Float32Array), `frame ${f}`).toBeLessThan(1e-3);
    }
    await cpu.release();
    await engine.close();
  }, 300_000);

  it('continues a WebGPU NeCo run on the CPU from its checkpoint (state, generator and queue), with the reason', async () => {
    const { engine, call, runner } = await engineWithFrames('gpu-loss-neco');
    // The trainer's 'tiny' scratch ViT as a registered model (NeCo adapts a model).
    const base = await call('models.import', { path: writeTinyViT(5, 'tiny.safetensors') });
    // Step 1 on the GPU (a NeCo step graph takes a while to compile on a software adapter), lost at step 2.
    process.env.FLANEUR_SIMULATE_GPU_LOSS = '2';
    const job = await call('train.start', {
      ...TINY_TRAIN,
      init: { kind: 'model', id: base.id },
      batch: 1,
      steps: 3,
      checkpointEvery: 1,
      previewEvery: 0,
      neco: NECO_TINY,
      device: 'webgpu',
    });
    await runner.idle();
    const done = await call('jobs.get', { id: job.id });
    expect(done.error?.message ?? done.state).toBe('done');
    const log = await call('train.log', { jobId: job.id });
    expect(log.map((r) => r.step)).toEqual([1, 2, 3]);
    for (const r of log) expect(Number.isFinite(r.loss)).toBe(true);
    const items = (await call('jobs.items', { id: job.id })).items;
    expect(items.find((i) => i.key === 'device-fallback')?.result).toMatchObject({
      from: 'webgpu',
      to: 'cpu',
      step: 2,
      resumedAt: 1,
    });
    const meta = exportedMetadata(engine, job.id);
    expect(meta.provider).toBe('cpu');
    expect(meta.fallback).toMatch(/webgpu.*device was lost/);
    await engine.close();
  }, 600_000);
});
