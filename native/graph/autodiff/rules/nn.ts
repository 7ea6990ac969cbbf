/** Gradients of the neural-network ops: Softmax, LayerNormalization (log softmax is built from primitives). */
import type { GraphBuilder } from '../../builder.js';
import type { Value } from '../../ir.js';
import type { GradRule } from '../types.js';

/**
 * Rules of composites (values several nodes compute, GraphBuilder.compositeOf): the input's gradient from the input,
 * the output's gradient and the intermediates the composite saved, so the others need not be kept.
 */
export const compositeRules: Record<string, (b: GraphBuilder, x: Value, g: Value, saved: Value[]) => Value> = {
  /**
   * GELU y = (x a) 0.5, a = 1 + erf(x / sqrt 2): the gradient the Mul, Add, Erf and Div rules give through its
   * nodes, in the same order (the same rounding), with x / sqrt 2 recomputed instead of kept.
   */
  Gelu: (b, x, g, [a]) => {
    if (!a) throw new Error('GELU composite without its saved 1 + erf(x / sqrt 2)');
    const half = b.mul(g, b.constFloat(0.5));
    // The same division by a constant of another shape ([1], not a scalar; the same numbers): with the forward's
    // own constant, ONNX Runtime's common subexpression elimination would merge it with the forward's Div and keep
    // that intermediate alive again.
    const d = b.div(x, b.constFloat([Math.SQRT2], [1]));
    const throughProduct = b.mul(half, a);
    const throughErf = b.mul(b.mul(half, x), b.mul(b.constFloat(2 / Math.sqrt(Math.PI)), b.exp(b.neg(b.mul(d, d)))));
    return b.add(throughProduct, b.div(throughErf, b.constFloat(Math.SQRT2)));
  },
};

export const nnRules: Record<string, GradRule> = {
  /** dx = y * (g - sum(g * y)) along the axis. */
  Softmax: ({ b, outputs: [y], grads: [g], attrInt }) => {
    if (!g || !y) return [];
    const axis = attrInt('axis', -1);
    return [b.mul(y, b.sub(g, b.reduceSum(b.mul(g, y), [axis], true)))];
  },
  /**
   * Over the last axis: xhat = (x - mean) / sigma. d scale = sum(g * xhat), d bias = sum(g),
   * dx = (gh - mean(gh) - xhat * mean(gh * xhat)) / sigma with gh = g * scale. Statistics are recomputed.
   */
  LayerNormalization: ({ b, inputs: [x, scale, bias], grads: [g], attrFloat, attrInt, needs }) => {
    if (!g || !x || !scale || !bias) return [];
    if (attrInt('axis', -1) !== -1 && attrInt('axis', -1) !== x.shape.length - 1) {
      throw new Error('autodiff: LayerNormalization gradient supports the last axis only');
    }
    const eps = attrFloat('epsilon', 1e-5);
    const mean = b.reduceMean(x, [-1], true);
    const xc = b.sub(x, mean);
    const variance = b.reduceMean(b.mul(xc, xc), [-1], true);
    const inv = b.div(b.constFloat(1), b.sqrt(b.add(variance, b.constFloat(eps))));
    const xhat = b.mul(xc, inv);
    const lead = [...Array(x.shape.length - 1).keys()];
    const gScale = needs[1] ? b.reshapeLike(b.reduceSum(b.mul(g, xhat), lead, false), scale) : null;
    const gBias = needs[2] ? b.reshapeLike(b.reduceSum(g, lead, false), bias) : null;
    let gx = null;
    if (needs[0]) {
      const gh = b.mul(g, scale);
      const m1 = b.reduceMean(gh, [-1], true);
      const m2 = b.reduceMean(b.mul(gh, xhat), [-1], true);
      gx = b.mul(b.sub(b.sub(gh, m1), b.mul(xhat, m2)), inv);
    }
    return [gx, gScale, gBias];
  },
};
