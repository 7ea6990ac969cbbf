/**
 * Our UnCo decoder step against PyTorch (tools/unco_reference.py, written from lukasknobel/SelfCollages
 * UnCounTRModel.py): density map, count, loss and every gradient at the first step, then losses and parameters after
 * 5 AdamW steps, with exemplars and in the reference-less mode.
 */
import fs from 'node:fs';
import { afterAll, describe, expect, it } from 'vitest';
import {
  buildUncoStep,
  initialUncoState,
  sincosPosEmbed,
  type UncoConfig,
  UncoStepRunner,
  upsampleMatrix,
} from '../../../native/count/unco-step.js';
import { parseSafetensors } from '../../../native/models/safetensors.js';
import { fixturePath, loadTensors, maxAbsDiff } from '../../helpers/fixtures.js';

const file = fixturePath('count', 'unco_tiny.safetensors');
const tensors = loadTensors(file);
const meta = parseSafetensors(fs.readFileSync(file), 'unco_tiny').metadata;
const get = (k: string) => {
  const t = tensors.get(k);
  if (!t) throw new Error(`fixture has no ${k}`);
  return t.data;
};
const cfg = JSON.parse(meta.config as string) as Record<string, number>;
const lr = JSON.parse(meta.lr as string) as number[];
const config = (shots: number): UncoConfig => ({
  encoderDim: cfg.encoder_dim as number,
  grid: cfg.grid as number,
  patch: cfg.patch as number,
  embed: cfg.embed as number,
  depth: cfg.depth as number,
  heads: cfg.heads as number,
  mlpRatio: cfg.mlp_ratio as number,
  upsamplingDim: cfg.upsampling_dim as number,
  groups: cfg.groups as number,
  shots,
  batch: cfg.batch as number,
  scaling: Number(meta.scaling),
});
const B = cfg.batch as number;
const S = (cfg.grid as number) * (cfg.patch as number);

/** max |ours - ref| / max(1, max |ref|): absolute for small tensors, relative for large ones. */
function err(ours: Float32Array, ref: Float32Array): number {
  let scale = 1;
  for (const x of ref) scale = Math.max(scale, Math.abs(x));
  return maxAbsDiff(ours, ref) / scale;
}

const runners: UncoStepRunner[] = [];
afterAll(async () => {
  for (const r of runners) await r.release();
});

describe('UnCo decoder parity with PyTorch', () => {
  it('builds the same fixed position embedding and upsampling', () => {
    expect(maxAbsDiff(sincosPosEmbed(cfg.embed as number, cfg.grid as number), get('pos_embed'))).toBeLessThan(1e-6);
    // F.interpolate(x2, bilinear, align_corners=False) of [0, 1, 2, 3].
    const u = upsampleMatrix(4);
    const up = [...Array(8).keys()].map((i) => [0, 1, 2, 3].reduce((a, v, j) => a + (u[i * 4 + j] as number) * v, 0));
    expect(up).toEqual([0, 0.25, 0.75, 1.25, 1.75, 2.25, 2.75, 3]);
  });

  for (const [mode, shots] of [
    ['shots', cfg.shots as number],
    ['zero', 0],
  ] as const) {
    it(`${mode === 'shots' ? 'with exemplars' : 'reference-less'}: forward, loss and gradients within 1e-4, then 5 AdamW steps`, async () => {
      const c = config(shots);
      const graph = buildUncoStep(c, { emitGradients: true });
      expect(graph.size).toBe(S);
      const init = new Map([...graph.params.keys()].map((n) => [n, get(`init.${n}`)]));
      const state = initialUncoState(graph, init);
      const runner = await UncoStepRunner.create(graph, c, { provider: 'cpu', threads: 1 });
      runners.push(runner);
      const masks = get('masks');
      const losses = get(`${mode}.losses`);
      const wd = Number(meta.wd);
      for (let step = 0; step < Number(meta.steps); step++) {
        const m = await runner.step(
          state,
          {
            latent: get('latent'),
            ...(shots > 0 ? { exemplars: get('exemplars') } : {}),
            density: get('gt'),
            mask: masks.subarray(step * B * S * S, (step + 1) * B * S * S),
          },
          { lr: lr[step] as number, wd },
        );
        expect(Math.abs(m.loss - (losses[step] as number)), `loss at step ${step + 1}`).toBeLessThan(1e-4);
        if (step === 0) {
          expect(err(m.pred, get(`${mode}.pred`)), 'density map').toBeLessThan(1e-4);
          expect(maxAbsDiff(m.count, get(`${mode}.count`)), 'count').toBeLessThan(1e-4);
          const grads = m.gradients ?? new Map();
          // The reference has a gradient exactly for the parameters we update.
          const refGrads = [...tensors.keys()].filter((k) => k.startsWith(`${mode}.grad.`));
          expect(grads.size).toBe(refGrads.length);
          expect(graph.trainable.includes('shot_token')).toBe(shots === 0);
          for (const [name, g] of grads) {
            expect(err(g, get(`${mode}.grad.${name}`)), `gradient of ${name}`).toBeLessThan(1e-4);
            if (name.endsWith('attn.wk.bias')) for (const x of g) expect(Math.abs(x)).toBeLessThan(1e-6);
          }
        }
      }
      // Key biases: softmax is shift-invariant, so their gradient is zero in exact arithmetic and float noise in
      // both implementations (checked below); AdamW turns that noise into steps of up to ~lr of either sign, so
      // they are compared with that bound, every other entry within 1e-4.
      const D = cfg.embed as number;
      const sumLr = lr.reduce((x, y) => x + y, 0);
      for (const name of graph.params.keys()) {
        const ours = state.params.get(name) as Float32Array;
        const ref = get(`${mode}.final.${name}`);
        const noisy = (i: number) =>
          name.endsWith('attn.wk.bias') || (name.endsWith('qkv.bias') && i >= D && i < 2 * D);
        let worst = 0;
        for (let i = 0; i < ours.length; i++) {
          const d = Math.abs((ours[i] as number) - (ref[i] as number));
          if (noisy(i)) expect(d, `${name}[${i}] (key bias)`).toBeLessThan(2 * sumLr);
          else worst = Math.max(worst, d);
        }
        expect(worst, `${name} after 5 steps`).toBeLessThan(1e-4);
      }
    });
  }
});
