/**
 * A DINOv3 model (RoPE, registers, layer scale, SwiGLU) trains with the DINO step: the step graph builds with the
 * rotary tables for both crop sizes, every parameter gets a finite gradient, and three steps lower nothing to NaN.
 */
import { describe, expect, it } from 'vitest';
import { Rng } from '../../../native/base/rng.js';
import { importViTFile } from '../../../native/models/import-vit.js';
import { buildDinoStep } from '../../../native/train/dino-step.js';
import { initialState, StepRunner } from '../../../native/train/step-runner.js';
import { initParams } from '../../../native/train/train-dino.js';
import { fixturePath } from '../../helpers/fixtures.js';

describe('training a DINOv3 model', () => {
  it('runs DINO steps with finite gradients for every parameter, the RoPE periods untouched', async () => {
    const m = importViTFile(fixturePath('dinov3', 'dinov3swiglu_tiny.official.safetensors'), { heads: 4 });
    const head = { inDim: 64, hiddenDim: 32, bottleneckDim: 16, outDim: 24, layers: 3 };
    const graph = buildDinoStep({
      vit: m.config,
      head,
      batch: 1,
      globalSize: 64,
      globalCrops: 2,
      localSize: 32,
      localCrops: 2,
      emitGradients: true,
    });
    expect(graph.params.has('rope_embed.periods')).toBe(false);
    const params = initParams(graph.params, new Rng(5));
    for (const [k, v] of m.weights) params.set(k, v.slice());
    const state = initialState(graph, params);
    const runner = await StepRunner.create(
      graph,
      { globals: [2, 3, 64, 64], locals: [2, 3, 32, 32] },
      { provider: 'cpu', threads: 1 },
    );
    const rng = new Rng(9);
    const batch = {
      globals: Float32Array.from({ length: 2 * 3 * 64 * 64 }, () => rng.normal()),
      locals: Float32Array.from({ length: 2 * 3 * 32 * 32 }, () => rng.normal()),
    };
    const s = {
      lr: 1e-3,
      wd: 0.04,
      ema: 0.99,
      center_momentum: 0.9,
      student_temp: 0.1,
      teacher_temp: 0.04,
      max_norm: 3,
    };
    for (let step = 0; step < 3; step++) {
      const metrics = await runner.step(state, batch, s);
      expect(Number.isFinite(metrics.loss)).toBe(true);
      if (step === 0) {
        expect(metrics.gradients?.size).toBe(graph.trainable.length);
        for (const [name, g] of metrics.gradients ?? []) expect(g.every(Number.isFinite), name).toBe(true);
        const w1 = metrics.gradients?.get('blocks.0.mlp.w1.weight') as Float32Array;
        expect(Math.max(...Array.from(w1, Math.abs))).toBeGreaterThan(0);
      }
    }
    await runner.release();
  });
});
