/**
 * The language projector of a ShareLock training step with BatchNorm's backward written by hand (the autodiff of
 * the written-out forward made ~15 full-size passes a layer; this makes 7 and a boolean one, plus 3 reductions).
 *
 * Per hidden layer: lin = Gemm(h, W, bias); c = lin − mean; var = mean(c²); y = c · (γ · invstd) + β; ReLU;
 * dropout mask (BatchNorm1d in training mode: the biased variance normalises, the unbiased one goes into the running
 * variance). Backward, with dy the gradient at y, x̂ = c · invstd and s = Σ dy·c:
 *   dβ = Σ dy, dγ = invstd · s, dlin = γ·invstd · (dy − c · invstd² · s / B − mean(dy))
 * (PyTorch's dx = invstd·γ·(dy − mean(dy) − x̂·mean(dy·x̂)) without forming x̂); then each Linear's gradients as
 * Gemms in the layouts autodiff's Gemm rule gives (dW = dlinᵀ h, dh = dlin W, no transposes). ONNX's
 * BatchNormalization (inference form, fed the batch's statistics) was tried for both affine steps: one node, but
 * ORT's CPU kernel on [N, C] took 54 CPU ms at 4096² against 25 for Mul + Add (and ReduceSumSquare was no faster
 * than Mul + ReduceMean), so plain element-wise nodes.
 * What follows the hidden layers (the last Linear, the L2 norm, the loss) stays with the autodiff.
 */
import { gradients } from '../graph/autodiff/grad.js';
import type { GraphBuilder } from '../graph/builder.js';
import type { Value } from '../graph/ir.js';
import { l2Normalize, type ShareLockConfig } from './sharelock.js';

const P = 'language_projector.projection';

interface SavedLayer {
  input: Value;
  weight: Value;
  centred: Value;
  invstd: Value;
  scale: Value;
  out: Value;
  mask: Value | null;
}

/**
 * Training forward of the projector, the loss from `lossOf` (text embeddings → scalar loss, and the shifts to
 * stop), and every parameter's gradient of it times `lossScale`: autodiff after the last hidden layer, the closed form before.
 */
export function projectorStep(
  b: GraphBuilder,
  c: ShareLockConfig,
  x: Value,
  param: (name: string) => Value,
  o: { masks: readonly Value[] | null; batch: number; lossScale: number },
  lossOf: (text: Value) => { loss: Value; stop: Value[] },
): { loss: Value; running: Map<string, Value>; grads: Map<string, Value> } {
  const { masks, batch } = o;
  const running = new Map<string, Value>();
  const saved: SavedLayer[] = [];
  let h = x;
  for (let i = 0; i < c.layers - 1; i++) {
    h = b.scope(`language_projector/layer ${i}`, () => {
      const weight = param(`${P}.${4 * i}.weight`);
      const lin = b.gemm(h, weight, param(`${P}.${4 * i}.bias`), { transB: true }, 'linear');
      const bn = `${P}.${4 * i + 1}`;
      const mean = b.reduceMean(lin, [0], false);
      const centred = b.sub(lin, mean);
      const variance = b.reduceMean(b.mul(centred, centred), [0], false);
      const invstd = b.div(b.constFloat(1), b.sqrt(b.add(variance, b.constFloat(c.bnEps))));
      const gamma = param(`${bn}.weight`);
      const scale = b.mul(gamma, invstd);
      const y = b.add(b.mul(centred, scale), param(`${bn}.bias`));
      const m = b.constFloat(c.bnMomentum);
      const keep = b.constFloat(1 - c.bnMomentum);
      const unbiased = b.mul(variance, b.constFloat(batch / (batch - 1)));
      running.set(`${bn}.running_mean`, b.add(b.mul(param(`${bn}.running_mean`), keep), b.mul(mean, m)));
      running.set(`${bn}.running_var`, b.add(b.mul(param(`${bn}.running_var`), keep), b.mul(unbiased, m)));
      const mask = masks?.[i] ?? null;
      const r = b.relu(y);
      const out = mask ? b.mul(r, mask, 'dropout') : r;
      saved.push({ input: h, weight, centred, invstd, scale, out, mask });
      return out;
    });
  }
  const last = 4 * (c.layers - 1);
  const lastW = param(`${P}.${last}.weight`);
  const lastB = param(`${P}.${last}.bias`);
  const emb = b.scope('language_projector', () => l2Normalize(b, b.gemm(h, lastW, lastB, { transB: true }, 'linear')));
  const { loss, stop } = lossOf(emb);
  const wrt = c.layers > 1 ? [lastW, lastB, h] : [lastW, lastB];
  const scaled = o.lossScale !== 1 ? b.mul(loss, b.constFloat(o.lossScale)) : loss;
  const auto = gradients(b, scaled, wrt, stop);
  const grads = new Map<string, Value>();
  grads.set(lastW.name, auto.get(lastW.name) as Value);
  grads.set(lastB.name, auto.get(lastB.name) as Value);
  let dh = c.layers > 1 ? (auto.get(h.name) as Value) : null;
  b.scope('grad/language_projector', () => {
    const zero = b.constFloat(0);
    const invB = b.constFloat(1 / batch);
    for (let i = c.layers - 2; i >= 0; i--) {
      const s = saved[i] as SavedLayer;
      const g = dh as Value;
      const dr = s.mask ? b.mul(g, s.mask) : g;
      // ReLU's gradient where the layer's output is positive (the mask is 0 or positive: dr is 0 where it is 0)
      const dy = b.where(b.greater(s.out, zero), dr, zero);
      const dbeta = b.reduceSum(dy, [0], false);
      const dyc = b.reduceSum(b.mul(dy, s.centred), [0], false);
      const bn = `${P}.${4 * i + 1}`;
      grads.set(param(`${bn}.weight`).name, b.mul(dyc, s.invstd));
      grads.set(param(`${bn}.bias`).name, dbeta);
      const a = b.mul(b.mul(dyc, b.mul(s.invstd, s.invstd)), invB);
      const u = b.sub(dy, b.mul(s.centred, a));
      const dlin = b.mul(b.sub(u, b.mul(dbeta, invB)), s.scale);
      grads.set(s.weight.name, b.gemm(dlin, s.input, null, { transA: true }));
      grads.set(param(`${P}.${4 * i}.bias`).name, b.reduceSum(dlin, [0], false));
      dh = i > 0 ? b.gemm(dlin, s.weight, null) : null;
    }
  });
  return { loss, running, grads };
}
