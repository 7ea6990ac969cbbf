/**
 * ShareLock's validation and early stopping (issue 29 leftover): images held out with the seed, the held-out loss
 * in eval mode logged every `valEvery` steps, the head of the lowest validation loss exported, early stopping after
 * `patience` validations without a fall of `minDelta`, and a resumed run that validates and stops exactly as an
 * uninterrupted one. Fashion-MNIST features of a ViT at initialisation and the tiny random Llama, as in
 * sharelock-train.test.ts.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { CommandArgs, TextModelInfo } from '../../../native/api/contract.js';
import { Rng } from '../../../native/base/rng.js';
import { ModelSession, ort } from '../../../native/runtime/session.js';
import {
  buildTextProjector,
  initShareLock,
  SHARELOCK_LOGIT_SCALE,
  shareLockBufferShapes,
  shareLockConfig,
  shareLockParamShapes,
} from '../../../native/text/sharelock.js';
import { buildShareLockValidation, holdOutImages } from '../../../native/train/sharelock-validation.js';
import { dispatchEngine } from '../../helpers/dispatch.js';
import { fixturePath } from '../../helpers/fixtures.js';
import { fashionShareLockProject } from '../../helpers/text-head.js';
import { tmpDir } from '../../helpers/tmp.js';
import { cancelThenResume, exportedMetadata } from '../../helpers/train.js';

const ROOT = fixturePath('fashion', 'train');
const runtime = { provider: 'cpu' as const, threads: 1 };

describe('ShareLock validation split', () => {
  it('holds out whole images with the seed, every pair of an image on one side', () => {
    // 10 images, image i with i % 3 + 1 captions
    const image: number[] = [];
    for (let i = 0; i < 10; i++) for (let k = 0; k <= i % 3; k++) image.push(i);
    const pairs = { image: Int32Array.from(image), textOf: Int32Array.from(image, (_, p) => p) };
    const a = holdOutImages(pairs, 10, 0.3, 5);
    const trainImages = new Set(a.train.image);
    const valImages = new Set(a.val.image);
    expect(valImages.size).toBe(3);
    expect([...valImages].filter((i) => trainImages.has(i))).toEqual([]);
    expect(a.train.image.length + a.val.image.length).toBe(pairs.image.length);
    expect(holdOutImages(pairs, 10, 0.3, 5).val.textOf).toEqual(a.val.textOf);
    expect([...new Set(holdOutImages(pairs, 10, 0.3, 6).val.image)].sort()).not.toEqual([...valImages].sort());
    const two = { image: Int32Array.from([0, 1]), textOf: Int32Array.from([0, 1]) };
    expect(() => holdOutImages(two, 2, 0.5, 0)).toThrow(/leaves 1 pairs to train on and 1 to validate with/);
  });

  it('computes the held-out loss of the head in eval mode as CLIP’s symmetric loss of the exported projector', async () => {
    const c = shareLockConfig(12, 8, { hidden: 16, layers: 3, dropout: 0.2 });
    const rng = new Rng(9);
    const { params, buffers } = initShareLock(c, rng);
    const weights = new Map([...params, ...buffers]);
    // running statistics away from (0, 1), so that eval mode matters
    for (const [k, v] of buffers)
      if (k.endsWith('running_mean') || k.endsWith('running_var'))
        for (let i = 0; i < v.length; i++) v[i] = k.endsWith('var') ? 0.5 + rng.next() : rng.next() - 0.5;
    const n = 7;
    const text = Float32Array.from({ length: n * c.textDim }, () => rng.normal());
    const image = Float32Array.from({ length: n * c.visionDim }, () => rng.normal());
    const feeds: Record<string, ort.Tensor> = {
      text: new ort.Tensor('float32', text, [n, c.textDim]),
      image: new ort.Tensor('float32', image, [n, c.visionDim]),
    };
    const shapes = new Map([...shareLockParamShapes(c), ...shareLockBufferShapes(c)]);
    for (const [k, v] of weights) feeds[k] = new ort.Tensor('float32', v, shapes.get(k) as number[]);
    const s = await ModelSession.create(buildShareLockValidation(c), runtime);
    const got = ((await s.run(feeds)).loss as ort.Tensor).data as Float32Array;
    await s.release();
    const p = await ModelSession.create(buildTextProjector(c, weights), runtime);
    const emb = ((await p.run({ text: feeds.text as ort.Tensor })).embedding as ort.Tensor).data as Float32Array;
    await p.release();
    const img = Array.from({ length: n }, (_, i) => {
      const row = image.slice(i * c.visionDim, (i + 1) * c.visionDim);
      const norm = Math.hypot(...row);
      return Array.from(row, (x) => x / norm);
    });
    const sim = img.map((r) =>
      Array.from({ length: n }, (_, j) => {
        let d = 0;
        for (let k = 0; k < c.visionDim; k++) d += (r[k] as number) * (emb[j * c.visionDim + k] as number);
        return d * SHARELOCK_LOGIT_SCALE;
      }),
    );
    const lse = (xs: number[]) => {
      const m = Math.max(...xs);
      return m + Math.log(xs.reduce((a, x) => a + Math.exp(x - m), 0));
    };
    let want = 0;
    for (let i = 0; i < n; i++) {
      const row = sim[i] as number[];
      const col = sim.map((r) => r[i] as number);
      want += 0.5 * (lse(row) - (row[i] as number)) + 0.5 * (lse(col) - (row[i] as number));
    }
    want /= n;
    expect(Math.abs((got[0] as number) - want) / want).toBeLessThan(1e-4);
  });
});

describe('ShareLock training with validation and early stopping', () => {
  const work = tmpDir('flaneur-sharelock-val-');
  const { engine, call } = dispatchEngine();
  const idle = () => engine.requireProject().runner.idle();
  let runId = 0;
  let llm: TextModelInfo;
  afterAll(() => engine.close());

  beforeAll(async () => {
    ({ runId, llm } = await fashionShareLockProject({ engine, call }, work));
  }, 300_000);

  const args = (o: Partial<CommandArgs<'train.sharelock'>> = {}): CommandArgs<'train.sharelock'> => ({
    textModel: llm.id,
    runId,
    classes: { root: ROOT, unseenFraction: 0 },
    steps: 20,
    batch: 64,
    hidden: 32,
    layers: 2,
    lr: 1e-2,
    warmupSteps: 3,
    checkpointEvery: 10,
    seed: 3,
    valFraction: 0.2,
    valEvery: 5,
    ...o,
  });

  const exportItem = async (id: number) =>
    (await call('jobs.items', { id })).items.find((i) => i.key === 'export')?.result as {
      stopped?: { step: number; reason: string };
    };

  it('logs the validation loss every valEvery steps and exports the head of the lowest one', async () => {
    const job = await call('train.sharelock', args());
    await idle();
    const done = await call('jobs.get', { id: job.id });
    expect(done.error?.message ?? done.state).toBe('done');
    const data = (await call('jobs.items', { id: job.id })).items.find((i) => i.key === 'data')?.result as {
      pairs: number;
      validation: number;
    };
    // 300 images of 10 classes, one prompt each: 60 held out
    expect(data).toMatchObject({ pairs: 240, validation: 60 });
    const log = await call('train.log', { jobId: job.id });
    expect(log).toHaveLength(20);
    const validated = log.filter((r) => r.valLoss !== null && r.valLoss !== undefined);
    expect(validated.map((r) => r.step)).toEqual([5, 10, 15, 20]);
    for (const r of validated) expect(r.valLoss).toBeGreaterThan(0);
    // learning on 240 pairs lowers the held-out loss of the same classes' prompts
    expect(validated.at(-1)?.valLoss as number).toBeLessThan(validated[0]?.valLoss as number);
    const best = validated.reduce((a, b) => ((b.valLoss as number) < (a.valLoss as number) ? b : a));
    const meta = exportedMetadata(engine, job.id);
    expect(JSON.parse(meta.validation as string)).toEqual({ bestStep: best.step, bestLoss: best.valLoss });
    expect(meta.stopped_early).toBeUndefined();
    expect((await exportItem(job.id)).stopped).toBeUndefined();
  }, 300_000);

  it('stops early, as finished, when the validation loss stops falling, keeping the best head', async () => {
    // a learning rate too small to move the head: the held-out loss stays within minDelta of its first value
    const job = await call('train.sharelock', args({ lr: 1e-9, steps: 40, valEvery: 2, patience: 3 }));
    await idle();
    const done = await call('jobs.get', { id: job.id });
    expect(done.error?.message ?? done.state).toBe('done');
    const log = await call('train.log', { jobId: job.id });
    const validated = log.filter((r) => r.valLoss !== null && r.valLoss !== undefined);
    const first = validated[0]?.valLoss as number;
    for (const r of validated) expect(Math.abs((r.valLoss as number) - first)).toBeLessThan(0.1);
    // validations at 2 (the best score), 4, 6, 8: three without a fall of 0.1 → stopped at step 8 of 40
    expect(log.map((r) => r.step)).toEqual([1, 2, 3, 4, 5, 6, 7, 8]);
    const stopped = (await exportItem(job.id)).stopped;
    expect(stopped?.step).toBe(8);
    expect(stopped?.reason).toMatch(
      /^early stopping at step 8: the validation loss did not fall 0.1 below .* in 3 validations/,
    );
    const best = validated.reduce((a, b) => ((b.valLoss as number) < (a.valLoss as number) ? b : a));
    const meta = exportedMetadata(engine, job.id);
    expect(JSON.parse(meta.validation as string).bestStep).toBe(best.step);
    expect(JSON.parse(meta.stopped_early as string)).toEqual(stopped);
  }, 300_000);

  it('refuses early stopping without a validation split', async () => {
    await expect(call('train.sharelock', args({ valFraction: 0, patience: 3 }))).rejects.toThrow(
      /early stopping \(patience\) needs a validation split/,
    );
  });

  it('resumes a cancelled run with its validation state: the same losses and the same early stop', async () => {
    const heavy = args({
      hidden: 1024,
      layers: 4,
      batch: 128,
      lr: 1e-9,
      steps: 40,
      checkpointEvery: 4,
      valEvery: 3,
      patience: 4,
    });
    const ref = await call('train.sharelock', heavy);
    await idle();
    const reference = await call('train.log', { jobId: ref.id });
    // validations at 3, 6, 9, 12, 15: the fourth without a fall stops it at 15
    expect(reference).toHaveLength(15);
    const job = await call('train.sharelock', heavy);
    await cancelThenResume({ engine, call }, job.id, 7, 15);
    expect((await call('jobs.get', { id: job.id })).state).toBe('done');
    const log = await call('train.log', { jobId: job.id });
    expect(log.map((r) => [r.step, r.loss, r.valLoss])).toEqual(reference.map((r) => [r.step, r.loss, r.valLoss]));
    expect((await exportItem(job.id)).stopped).toEqual((await exportItem(ref.id)).stopped);
    expect(exportedMetadata(engine, job.id).validation).toBe(exportedMetadata(engine, ref.id).validation);
  }, 300_000);
});
