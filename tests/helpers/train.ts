import fs from 'node:fs';
import path from 'node:path';
import { expect } from 'vitest';
import type { CommandArgs } from '../../native/api/contract.js';
import type { Engine } from '../../native/engine/engine.js';
import { parseSafetensors } from '../../native/models/safetensors.js';
import { dispatchEngine } from './dispatch.js';
import { fixturePath } from './fixtures.js';
import { tmpDir } from './tmp.js';

/** A tiny but complete DINO run on the synthetic tour's frames. */
export const TINY_TRAIN = {
  init: { kind: 'scratch', preset: 'tiny' },
  steps: 12,
  batch: 2,
  globalSize: 32,
  localSize: 16,
  localCrops: 2,
  warmupSteps: 2,
  outDim: 64,
  headHidden: 32,
  bottleneck: 16,
  checkpointEvery: 4,
  seed: 7,
} as const satisfies CommandArgs<'train.start'>;

/** NeCo settings for the tiny runs (32 px globals: 2x2 patches, 16 px locals: 1 patch; small head and queue). */
export const NECO_TINY = {
  localCrops: 2,
  localSize: 16,
  queue: 64,
  headHidden: 32,
  outDim: 16,
  lrBackbone: 1e-3,
  lrHead: 1e-3,
} as const;

/** An engine with a new project holding the synthetic tour sampled at 2 fps, 48 px short side. */
export async function engineWithFrames(name: string) {
  const { engine, call } = dispatchEngine();
  await call('project.create', { path: path.join(tmpDir(), name) });
  await call('library.add', {
    paths: [fixturePath('synthetic', 'tour.mp4')],
    sampling: { policy: 'fps', fps: 2 },
    frameSize: { mode: 'short-side', size: 48 },
  });
  const runner = engine.requireProject().runner;
  await runner.idle();
  return { engine, call, runner };
}

/** The metadata of the encoder training job `jobId` exported (export/encoder.safetensors in its checkpoints). */
export function exportedMetadata(engine: Engine, jobId: number): Record<string, string> {
  const file = path.join(
    engine.requireProject().project.checkpointsDir,
    `train-${jobId}`,
    'export',
    'encoder.safetensors',
  );
  return parseSafetensors(fs.readFileSync(file)).metadata;
}

/**
 * Cancels training job `jobId` once it has logged `after` steps (checked: cancelled, fewer than `total` steps
 * logged), then resumes it and waits for the runner to be idle.
 */
export async function cancelThenResume(
  { engine, call }: Pick<ReturnType<typeof dispatchEngine>, 'engine' | 'call'>,
  jobId: number,
  after: number,
  total: number,
): Promise<void> {
  const idle = () => engine.requireProject().runner.idle();
  while ((await call('train.log', { jobId })).length < after) await new Promise((r) => setTimeout(r, 5));
  await call('jobs.cancel', { id: jobId });
  await idle();
  expect((await call('jobs.get', { id: jobId })).state).toBe('cancelled');
  expect((await call('train.log', { jobId })).length).toBeLessThan(total);
  await call('jobs.resume', { id: jobId });
  await idle();
}
