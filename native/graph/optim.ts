/**
 * Optimizers as graph nodes: given parameters, their gradients and optimizer state (all graph values), append the
 * update. Schedules (learning rate, weight decay, bias corrections) come in as scalar inputs, so one graph serves
 * every step. Semantics follow PyTorch: AdamW with decoupled weight decay, SGD with momentum, global-norm clipping.
 */
import type { GraphBuilder } from './builder.js';
import type { Value } from './ir.js';

export interface ParamGroupEntry {
  name: string;
  param: Value;
  grad: Value;
  /** Decoupled weight decay applies (DINO: parameters with more than one dimension). */
  decay: boolean;
}

/** Global L2 norm of all gradients. */
export function globalNorm(b: GraphBuilder, grads: readonly Value[]): Value {
  let sum: Value | null = null;
  for (const g of grads) {
    const s = b.reduceSum(b.mul(g, g), [...g.shape.keys()], false);
    sum = sum ? b.add(sum, s) : s;
  }
  if (!sum) throw new Error('no gradients');
  return b.sqrt(sum);
}

/** torch.nn.utils.clip_grad_norm_: scale = min(1, max_norm / (norm + 1e-6)). Returns the scaled gradients. */
export function clipByGlobalNorm(b: GraphBuilder, grads: readonly Value[], maxNorm: Value, norm: Value): Value[] {
  const scale = b.min(b.div(maxNorm, b.add(norm, b.constFloat(1e-6))), b.constFloat(1));
  return grads.map((g) => b.mul(g, scale));
}

export interface AdamWInputs {
  lr: Value;
  weightDecay: Value;
  /** 1 - beta1^step and 1 - beta2^step, computed by the trainer. */
  biasCorrection1: Value;
  biasCorrection2: Value;
  beta1?: number;
  beta2?: number;
  eps?: number;
  /**
   * A value every parameter update waits for, numbers unchanged (the step size is multiplied by an exact 1 chosen
   * by it): a barrier after the last read of the parameters by the rest of the graph (the global gradient norm), so
   * a runner may write the updates into the very arrays it fed (the step runners' in-place state).
   */
  after?: Value;
}

export interface UpdatedParam {
  name: string;
  param: Value;
  state: Value[];
}

/** AdamW (torch.optim.AdamW): p *= 1 - lr*wd; m, v moments; p -= lr/bc1 * m / (sqrt(v)/sqrt(bc2) + eps). */
export function adamW(
  b: GraphBuilder,
  entries: readonly ParamGroupEntry[],
  state: ReadonlyMap<string, [Value, Value]>,
  o: AdamWInputs,
): UpdatedParam[] {
  const beta1 = o.beta1 ?? 0.9;
  const beta2 = o.beta2 ?? 0.999;
  const eps = b.constFloat(o.eps ?? 1e-8);
  let stepSize = b.div(o.lr, o.biasCorrection1);
  if (o.after) {
    const one = b.constFloat(1);
    stepSize = b.mul(stepSize, b.where(b.greater(o.after, b.constFloat(-1)), one, one), 'after barrier');
  }
  const sqrtBc2 = b.sqrt(o.biasCorrection2);
  return b.scope('adamw', () =>
    entries.map((e) => {
      const [m, v] = state.get(e.name) ?? [];
      if (!m || !v) throw new Error(`no optimizer state for ${e.name}`);
      let p = e.param;
      if (e.decay) p = b.mul(p, b.sub(b.constFloat(1), b.mul(o.lr, o.weightDecay)));
      const m2 = b.add(b.mul(m, b.constFloat(beta1)), b.mul(e.grad, b.constFloat(1 - beta1)));
      const v2 = b.add(b.mul(v, b.constFloat(beta2)), b.mul(b.mul(e.grad, e.grad), b.constFloat(1 - beta2)));
      const denom = b.add(b.div(b.sqrt(v2), sqrtBc2), eps);
      const p2 = b.sub(p, b.mul(stepSize, b.div(m2, denom)));
      return { name: e.name, param: p2, state: [m2, v2] };
    }),
  );
}

/** SGD with momentum and (coupled) weight decay, as torch.optim.SGD: buf = mu*buf + g (+wd*p); p -= lr*buf. */
export function sgdMomentum(
  b: GraphBuilder,
  entries: readonly ParamGroupEntry[],
  state: ReadonlyMap<string, Value>,
  o: { lr: Value; weightDecay: Value; momentum: number },
): UpdatedParam[] {
  return b.scope('sgd', () =>
    entries.map((e) => {
      const buf = state.get(e.name);
      if (!buf) throw new Error(`no momentum buffer for ${e.name}`);
      const g = e.decay ? b.add(e.grad, b.mul(e.param, o.weightDecay)) : e.grad;
      const buf2 = b.add(b.mul(buf, b.constFloat(o.momentum)), g);
      return { name: e.name, param: b.sub(e.param, b.mul(o.lr, buf2)), state: [buf2] };
    }),
  );
}

/** EMA teacher: t' = m * t + (1 - m) * s. */
export function emaUpdate(b: GraphBuilder, teacher: Value, student: Value, momentum: Value): Value {
  return b.add(b.mul(teacher, momentum), b.mul(student, b.sub(b.constFloat(1), momentum)));
}

/**
 * Cosine schedule with linear warm-up, per step, as DINO's cosine_scheduler: the warm-up is
 * linspace(start, base, warmup) (both ends included), then final + (base - final)(1 + cos(pi i / n)) / 2.
 */
export function cosineSchedule(
  base: number,
  final: number,
  totalSteps: number,
  warmupSteps = 0,
  warmupStart = 0,
): (step: number) => number {
  return (step) => {
    if (step < warmupSteps)
      return warmupSteps === 1 ? base : warmupStart + ((base - warmupStart) * step) / (warmupSteps - 1);
    const t = (step - warmupSteps) / Math.max(1, totalSteps - warmupSteps);
    return final + 0.5 * (base - final) * (1 + Math.cos(Math.PI * Math.min(1, t)));
  };
}
