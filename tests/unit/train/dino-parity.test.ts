/**
 * Our DINO training step against PyTorch (tools/train_reference.py): gradients of every student parameter at the
 * first step, then parameters, teacher and centre after 5 AdamW steps with clipping and schedules.
 */
import fs from 'node:fs';
import { beforeAll, describe, expect, it } from 'vitest';
import { parseSafetensors } from '../../../native/models/safetensors.js';
import { presetConfig, type ViTConfig } from '../../../native/models/vit.js';
import { buildDinoStep, type DinoStepGraph } from '../../../native/train/dino-step.js';
import { initialState, StepRunner } from '../../../native/train/step-runner.js';
import { fixturePath, loadTensors, maxAbsDiff } from '../../helpers/fixtures.js';

const file = fixturePath('train', 'dino_tiny.safetensors');
const tensors = loadTensors(file);
const meta = parseSafetensors(fs.readFileSync(file), 'dino_tiny').metadata;
const vitMeta = JSON.parse(meta.vit as string) as {
  patch: number;
  dim: number;
  depth: number;
  heads: number;
  mlp_hidden: number;
  pos_grid: number;
  eps: number;
};
const headMeta = JSON.parse(meta.head as string) as { in_dim: number; hidden: number; bottleneck: number; out: number };
const vit: ViTConfig = {
  ...presetConfig('vit_ti16'),
  patchSize: vitMeta.patch,
  dim: vitMeta.dim,
  depth: vitMeta.depth,
  heads: vitMeta.heads,
  mlpHidden: vitMeta.mlp_hidden,
  posGrid: vitMeta.pos_grid,
  lnEps: vitMeta.eps,
};
const B = Number(meta.batch);
const G = Number(meta.global);
const L = Number(meta.local);
const lr = JSON.parse(meta.lr as string) as number[];
const wd = JSON.parse(meta.wd as string) as number[];
const ema = JSON.parse(meta.ema as string) as number[];

const get = (name: string) => {
  const t = tensors.get(name);
  if (!t) throw new Error(`fixture has no ${name}`);
  return t.data;
};

/** max |ours - torch| / max |torch| over a tensor. */
function relErr(ours: Float32Array, ref: Float32Array): number {
  let scale = 0;
  for (const x of ref) scale = Math.max(scale, Math.abs(x));
  return maxAbsDiff(ours, ref) / Math.max(scale, 1e-12);
}

describe('DINO step parity with PyTorch', () => {
  let graph: DinoStepGraph;
  let runner: StepRunner;
  const init = new Map<string, Float32Array>();

  beforeAll(async () => {
    graph = buildDinoStep({
      vit,
      head: {
        inDim: headMeta.in_dim,
        hiddenDim: headMeta.hidden,
        bottleneckDim: headMeta.bottleneck,
        outDim: headMeta.out,
        layers: 3,
      },
      batch: B,
      globalSize: G,
      globalCrops: 2,
      localSize: L,
      localCrops: 2,
      emitGradients: true,
    });
    for (const name of graph.params.keys()) init.set(name, get(`init.${name}`));
    runner = await StepRunner.create(
      graph,
      { globals: [2 * B, 3, G, G], locals: [2 * B, 3, L, L] },
      { provider: 'cpu', threads: 1 },
    );
  });

  const scalars = (step: number) => ({
    lr: lr[step] as number,
    wd: wd[step] as number,
    ema: ema[step] as number,
    center_momentum: Number(meta.center_momentum),
    student_temp: Number(meta.student_temp),
    teacher_temp: Number(meta.teacher_temp),
    max_norm: Number(meta.max_norm),
  });

  it('gives every parameter gradient within 1e-3 relative error, and 5 AdamW steps within 1e-4', async () => {
    const state = initialState(graph, init);
    state.center = get('center0').slice();
    const batch = { globals: get('globals'), locals: get('locals') };
    const losses: number[] = [];
    const norms: number[] = [];
    let worstGrad = 0;
    for (let step = 0; step < 5; step++) {
      const m = await runner.step(state, batch, scalars(step));
      losses.push(m.loss);
      norms.push(m.gradNorm);
      if (step === 0) {
        expect(m.gradients?.size).toBe(graph.trainable.length);
        for (const [name, g] of m.gradients ?? []) {
          const e = relErr(g, get(`grad.${name}`));
          worstGrad = Math.max(worstGrad, e);
          expect(e, `gradient of ${name}`).toBeLessThanOrEqual(1e-3);
        }
      }
    }
    expect(maxAbsDiff(losses, get('losses'))).toBeLessThan(1e-4);
    expect(maxAbsDiff(norms, get('grad_norms')) / 12).toBeLessThan(1e-4);
    let worstParam = 0;
    for (const name of graph.params.keys()) {
      const d = maxAbsDiff(state.params.get(name) as Float32Array, get(`final.${name}`));
      worstParam = Math.max(worstParam, d);
      expect(d, `parameter ${name} after 5 steps`).toBeLessThanOrEqual(1e-4);
      expect(
        maxAbsDiff(state.teacher.get(name) as Float32Array, get(`teacher.${name}`)),
        `teacher ${name}`,
      ).toBeLessThanOrEqual(1e-4);
    }
    expect(maxAbsDiff(state.center, get('center_final'))).toBeLessThanOrEqual(1e-4);
    console.log(
      `worst gradient relative error ${worstGrad.toExponential(2)}, worst parameter abs error ${worstParam.toExponential(2)}`,
    );
  });
});
