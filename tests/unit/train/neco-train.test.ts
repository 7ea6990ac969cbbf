/**
 * The NeCo objective of the trainer on the synthetic tour: a registered model adapted, its export registered with
 * its provenance, and a cancelled run resumed with exactly the losses of an uninterrupted one (queue included).
 */
import fs from 'node:fs';
import path from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { parseSafetensors } from '../../../native/models/safetensors.js';
import { writeTinyViT } from '../../helpers/models.js';
import { engineWithFrames, NECO_TINY, TINY_TRAIN } from '../../helpers/train.js';

/** A tiny ViT's weights as a file the registry imports. */
const baseWeights = writeTinyViT(5, 'tiny.safetensors');

async function necoRun(name: string) {
  const env = await engineWithFrames(name);
  const base = await env.call('models.import', { path: baseWeights, name: 'tiny base' });
  const args = {
    ...TINY_TRAIN,
    init: { kind: 'model', id: base.id },
    batch: 1,
    steps: 8,
    checkpointEvery: 3,
    neco: NECO_TINY,
  } as const;
  return { ...env, base, args };
}

describe('NeCo trainer', () => {
  let reference: number[];
  let baseId: number;

  beforeAll(async () => {
    const { engine, call, runner, base, args } = await necoRun('neco-reference');
    baseId = base.id;
    const job = await call('train.start', args);
    await runner.idle();
    const done = await call('jobs.get', { id: job.id });
    expect(done.error?.message ?? done.state).toBe('done');
    expect(done.title).toContain('NeCo');
    // The export (the student backbone) differs from the base model it started from.
    reference = (await call('train.log', { jobId: job.id })).map((r) => r.loss);
    await new Promise((r) => setTimeout(r, 300));
    const models = await call('models.list', {});
    const adapted = models.find((m) => m.name === `NeCo from tiny base (job ${job.id})`);
    expect(adapted?.origin).toMatch(
      new RegExp(
        `NeCo adaptation of model #${baseId} "tiny base" .* on \\d+ frames of 1 media item, 8 steps of 1 image \\(job ${job.id}\\)`,
      ),
    );
    const dir = path.join(engine.requireProject().project.checkpointsDir, `train-${job.id}`);
    expect(fs.existsSync(path.join(dir, 'export', 'encoder.onnx'))).toBe(true);
    const exported = parseSafetensors(fs.readFileSync(path.join(dir, 'export', 'encoder.safetensors')), 'export');
    expect(exported.metadata.base_model).toContain('tiny base');
    expect([...exported.tensors.keys()].some((k) => k.startsWith('projection_head'))).toBe(false);
    const baseFile = parseSafetensors(fs.readFileSync(baseWeights), 'base');
    expect(exported.float32('blocks.0.attn.qkv.weight')).not.toEqual(baseFile.float32('blocks.0.attn.qkv.weight'));
    // The checkpoint keeps the queue of teacher patch embeddings and how full it is.
    const ck = fs
      .readdirSync(dir)
      .filter((f) => /^step-\d+\.json$/.test(f))
      .sort()
      .at(-1) as string;
    expect(JSON.parse(fs.readFileSync(path.join(dir, ck), 'utf8')).counters.queueEntries).toBe(8 * 4);
    await engine.close();
  });

  it('logs one finite loss per step', () => {
    expect(reference).toHaveLength(8);
    for (const l of reference) expect(Number.isFinite(l)).toBe(true);
  });

  it('resumes a cancelled run from its checkpoint with exactly the losses of an uninterrupted run', async () => {
    const { engine, call, runner, args } = await necoRun('neco-resumed');
    const job = await call('train.start', args);
    while ((await call('train.log', { jobId: job.id })).length < 4) await new Promise((r) => setTimeout(r, 5));
    await call('jobs.cancel', { id: job.id });
    await runner.idle();
    expect((await call('jobs.get', { id: job.id })).state).toBe('cancelled');
    expect((await call('train.log', { jobId: job.id })).length).toBeLessThan(8);
    await call('jobs.resume', { id: job.id });
    await runner.idle();
    const log = await call('train.log', { jobId: job.id });
    expect(log.map((r) => r.step)).toEqual([1, 2, 3, 4, 5, 6, 7, 8]);
    expect(log.map((r) => r.loss)).toEqual(reference);
    await engine.close();
  });

  it('refuses a queue smaller than one batch of references, with the field named', async () => {
    const { engine, call, runner, args } = await necoRun('neco-bad');
    const job = await call('train.start', { ...args, batch: 2, neco: { ...NECO_TINY, queue: 64 } });
    await runner.idle();
    const failed = await call('jobs.get', { id: job.id });
    expect(failed.state).toBe('failed');
    expect(failed.error?.message).toMatch(/queue \(64\) must hold at least batch × 49 patches \(98\)/);
    await engine.close();
  });
});
