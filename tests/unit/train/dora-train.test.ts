import { describe, expect, it } from 'vitest';
import type { CommandArgs } from '../../../native/api/contract.js';
import { Rng } from '../../../native/base/rng.js';
import { GraphBuilder } from '../../../native/graph/builder.js';
import { toOnnx } from '../../../native/graph/onnx.js';
import { buildDinoHead } from '../../../native/models/dino-head.js';
import { buildViT } from '../../../native/models/vit.js';
import { ModelSession, ort } from '../../../native/runtime/session.js';
import { gaussianBlur } from '../../../native/train/augment.js';
import { dinoParamShapes } from '../../../native/train/dino-step.js';
import { clipFrames, doraBatch, sampleClipStart, TeacherAttention } from '../../../native/train/dora-clips.js';
import { initParams, vitForInit } from '../../../native/train/train-dino.js';
import { engineWithFrames, TINY_TRAIN } from '../../helpers/train.js';

const TINY_DORA = {
  ...TINY_TRAIN,
  batch: 4,
  dora: { framesPerClip: 2, stride: 3, objects: 2 },
} as const satisfies CommandArgs<'train.start'>;

describe('Dora clips', () => {
  it('samples clips of F frames with stride s that fit the video, clamped when it is too short', () => {
    expect(clipFrames(5, 100, 4, 10)).toEqual([5, 15, 25, 35]);
    expect(clipFrames(0, 3, 4, 2)).toEqual([0, 2, 2, 2]);
    const rng = new Rng(3);
    for (let i = 0; i < 200; i++) {
      const s = sampleClipStart(100, 8, 10, rng);
      expect(s).toBeGreaterThanOrEqual(0);
      expect(s + 7 * 10).toBeLessThan(100);
    }
    expect(sampleClipStart(5, 8, 10, rng)).toBe(0);
  });

  it('blurs without moving mass (a constant image stays constant, an impulse spreads and sums to 1)', () => {
    const flat = new Float32Array(5 * 5 * 3).fill(0.5);
    gaussianBlur(flat, 5, 5, 1);
    for (const v of flat) expect(v).toBeCloseTo(0.5, 6);
    const dot = new Float32Array(9 * 9 * 3);
    dot[(4 * 9 + 4) * 3] = 1;
    gaussianBlur(dot, 9, 9, 1);
    let sum = 0;
    for (let i = 0; i < dot.length; i += 3) sum += dot[i] as number;
    expect(sum).toBeCloseTo(1, 5);
    expect(dot[(4 * 9 + 4) * 3]).toBeLessThan(0.2);
  });

  it('takes the teacher logits of the Dora loss from the attention pass, equal to a separate teacher forward', async () => {
    const vit = vitForInit({ kind: 'scratch', preset: 'tiny' }, null);
    const head = { inDim: vit.dim, hiddenDim: 32, bottleneckDim: 16, outDim: 64, layers: 3 };
    const shapes = dinoParamShapes({ vit, head });
    const rng = new Rng(5);
    const weights = initParams(shapes, rng);
    // Larger than DINO's init so the outputs are far from uniform.
    for (const w of weights.values())
      for (let i = 0; i < w.length; i++) w[i] = (w[i] as number) * 10 + 0.01 * rng.normal();
    const S = 32;
    const B = 3;
    const views = Float32Array.from({ length: B * 3 * S * S }, () => rng.normal());
    const pass = await TeacherAttention.create(vit, S, undefined, head);
    const got = await pass.run(views, B, weights, shapes);
    await pass.release();
    // The teacher forward the step graph used to run: ViT (MatMul patchify) and head, weights as initializers.
    const g = new GraphBuilder('teacher');
    const param = (name: string) =>
      g.initializer(name, weights.get(name) as Float32Array, shapes.get(name) as number[]);
    const cache = new Map<string, ReturnType<typeof param>>();
    const once = (name: string) => {
      if (!cache.has(name)) cache.set(name, param(name));
      return cache.get(name) as ReturnType<typeof param>;
    };
    const x = g.input('x', 'float32', [B, 3, S, S]);
    const cls = buildViT(g, vit, once, x, { cls: true }, 'matmul').cls;
    if (!cls) throw new Error('no cls');
    g.output(buildDinoHead(g, head, once, cls), 'logits');
    const session = await ModelSession.create(toOnnx(g.build()));
    const out = await session.run({ x: new ort.Tensor('float32', views, [B, 3, S, S]) }, ['logits']);
    await session.release();
    const want = out.logits?.data as Float32Array;
    expect(got.logits).toHaveLength(B * head.outDim);
    let worst = 0;
    let spread = 0;
    want.forEach((v, i) => {
      worst = Math.max(worst, Math.abs(v - (got.logits?.[i] as number)));
      spread = Math.max(spread, Math.abs(v - (want[0] as number)));
    });
    expect(spread).toBeGreaterThan(1e-3);
    expect(worst).toBeLessThan(1e-5);
  });

  it('masks each frame view by each tracked object and fills the rest with black', async () => {
    // Two "videos": frame i of source s is a uniform colour that encodes (s, i).
    const src = (s: number) => ({
      frames: 10,
      read: (i: number) => ({ width: 8, height: 8, data: new Uint8Array(8 * 8 * 3).fill(20 * s + i) }),
    });
    const mean = [0.5, 0.5, 0.5];
    const std = [0.25, 0.25, 0.25];
    const attend = async (_views: Float32Array, count: number) => {
      // q = k = one-hot per patch quadrant, CLS attention of head h on quadrant h: masks are the quadrants.
      const n = 4;
      const d = 4;
      const q = new Float32Array(count * n * d);
      for (let b = 0; b < count; b++) for (let i = 0; i < n; i++) q[(b * n + i) * d + i] = 1;
      const attention = new Float32Array(count * 4 * n);
      for (let b = 0; b < count; b++) for (let h = 0; h < 4; h++) attention[(b * 4 + h) * n + h] = 1;
      return { q, k: q.map((v) => v * 8), attention, n, d };
    };
    const batch = await doraBatch(
      [src(0), src(1)],
      2,
      8,
      { size: 4, scale: [0.05, 0.4], count: 1 },
      { framesPerClip: 3, stride: 2, objects: 2, epsilon: 0.05, iterations: 30, grayscaleP: 0, blurP: 0 },
      { mean, std, patch: 4, heads: 4 },
      new Rng(1),
      attend,
    );
    const B = 6;
    const plane = 3 * 8 * 8;
    expect(batch.teacherViews).toHaveLength(B * plane);
    expect(batch.masked).toHaveLength(2 * B * plane);
    expect(batch.locals).toHaveLength(B * 3 * 4 * 4);
    expect(batch.masks).toHaveLength(B * 2 * 4);
    // Every object keeps exactly one quadrant of the 2×2 grid: a quarter of the patches.
    expect(batch.maskCover).toBeCloseTo(0.25, 6);
    const black = -0.5 / 0.25;
    for (let j = 0; j < 2; j++)
      for (let b = 0; b < B; b++) {
        const m = batch.masks.subarray((b * 2 + j) * 4, (b * 2 + j + 1) * 4);
        for (let ch = 0; ch < 3; ch++)
          for (let y = 0; y < 8; y++)
            for (let x = 0; x < 8; x++) {
              const keep = m[Math.floor(y / 4) * 2 + Math.floor(x / 4)];
              const at = ch * 64 + y * 8 + x;
              const v = batch.masked[(j * B + b) * plane + at] as number;
              expect(v).toBeCloseTo(keep ? (batch.teacherViews[b * plane + at] as number) : black, 6);
            }
      }
  });
});

describe('Dora trainer', () => {
  it('trains with clips and masked views, registers a Dora model, and resumes a cancelled run exactly', async () => {
    const a = await engineWithFrames('dora-ref');
    const ref = await a.call('train.start', TINY_DORA);
    await a.runner.idle();
    const done = await a.call('jobs.get', { id: ref.id });
    expect(done.error?.message ?? done.state).toBe('done');
    const reference = (await a.call('train.log', { jobId: ref.id })).map((r) => r.loss);
    expect(reference).toHaveLength(TINY_DORA.steps);
    for (const l of reference) expect(Number.isFinite(l)).toBe(true);
    await expect
      .poll(async () => (await a.call('models.list', {})).map((m) => m.name), { timeout: 20_000 })
      .toContain(`Dora tiny (job ${ref.id})`);
    // Attention previews of 2 fixed frames at the start and the end (previewEvery 50 > 12 steps): 112 px PNGs.
    const previews = await a.call('train.previews', { jobId: ref.id });
    expect(previews.map((p) => [p.step, p.frame])).toEqual([
      [0, 0],
      [0, 1],
      [12, 0],
      [12, 1],
    ]);
    expect((await a.call('train.previews', { jobId: ref.id, lastSteps: 1 })).map((p) => [p.step, p.frame])).toEqual([
      [12, 0],
      [12, 1],
    ]);
    const png = Buffer.from((previews[0]?.png ?? '').replace(/^data:image\/png;base64,/, ''), 'base64');
    expect([png.readUInt32BE(16), png.readUInt32BE(20)]).toEqual([112, 112]);
    await a.engine.close();

    const b = await engineWithFrames('dora-resumed');
    const job = await b.call('train.start', TINY_DORA);
    while ((await b.call('train.log', { jobId: job.id })).length < 5) await new Promise((r) => setTimeout(r, 5));
    await b.call('jobs.cancel', { id: job.id });
    await b.runner.idle();
    expect((await b.call('jobs.get', { id: job.id })).state).toBe('cancelled');
    await b.call('jobs.resume', { id: job.id });
    await b.runner.idle();
    const log = await b.call('train.log', { jobId: job.id });
    expect(log.map((r) => r.loss)).toEqual(reference);
    await new Promise((r) => setTimeout(r, 200));
    await b.engine.close();
  });

  it('refuses a batch that is not a whole number of clips', async () => {
    const a = await engineWithFrames('dora-bad');
    const job = await a.call('train.start', { ...TINY_DORA, batch: 3 });
    await a.runner.idle();
    const failed = await a.call('jobs.get', { id: job.id });
    expect(failed.state).toBe('failed');
    expect(failed.error?.message).toMatch(/multiple of the 2 frames per clip/);
    await a.engine.close();
  });
});
