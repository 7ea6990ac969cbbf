/** Gradients of the neural-network ops: Softmax, LayerNormalization (log softmax is built from primitives). */
import type { GraphBuilder } from '../../builder.js';
import { attr, type Node, type Value } from '../../ir.js';
import type { GradRule } from '../types.js';

/**
 * Rules of composites (values several nodes compute, GraphBuilder.compositeOf): the input's gradient from the input,
 * the output's gradient and the intermediates the composite saved, so the others need not be kept.
 */
export const compositeRules: Record<string, (b: GraphBuilder, x: Value, g: Value, saved: Value[]) => Value> = {
  /**
   * GELU y = x Φ(x): dy/dx = Φ(x) + x φ(x) = ½ (1 + erf u + (2/√π) u exp(-u²)) with u = x / √2, recomputed from
   * x alone (nine elementwise passes; nothing of the forward is kept but its input). (2/√π) exp(-u²) is one Exp of
   * ln(2/√π) - u². u is x times 1/√2 (a Mul, not the forward's Div), so ONNX Runtime's common subexpression
   * elimination cannot merge it into the forward, which then stays one fused Gelu kernel.
   */
  Gelu: (b, x, g) => {
    const u = b.mul(x, b.constFloat(Math.SQRT1_2));
    const e = b.exp(b.sub(b.constFloat(Math.log(2 / Math.sqrt(Math.PI))), b.mul(u, u)));
    const twice = b.add(b.add(b.erf(u), b.mul(u, e)), b.constFloat(1));
    return b.mul(b.mul(g, b.constFloat(0.5)), twice);
  },
};

/**
 * Composites whose output a gradient rule reads (the input of a Linear whose weight is trained) is computed again
 * in the backward pass from the composite's input, which is kept anyway, instead of being kept from the forward
 * pass. GELU: the same five nodes with √2 as a [1]-shaped constant, so ONNX Runtime's common subexpression
 * elimination does not merge them with the forward's (the forward's output is then freed as soon as the next
 * layer has read it) while its GeluFusion still makes them one fused Gelu kernel: the same numbers, one cheap pass.
 */
export const compositeRecompute: Record<string, (b: GraphBuilder, x: Value) => Value> = {
  Gelu: (b, x) => {
    const a = b.add(b.erf(b.div(x, b.constFloat([Math.SQRT2], [1]))), b.constFloat(1));
    return b.mul(b.mul(x, a), b.constFloat(0.5));
  },
};

/**
 * Outputs of single nodes recomputed the same way when a product reads them for a weight gradient. A
 * LayerNormalization's output (the next Linear's input) again from its input, which its own gradient keeps anyway:
 * one fused pass instead of a [B, T, D] activation held through the step. The node names the last axis by its
 * positive index (the forward's says -1: the same normalisation) so that ONNX Runtime's common subexpression
 * elimination does not merge the two and keep the forward's output alive again.
 */
export const nodeRecompute: Record<string, (b: GraphBuilder, node: Node, inputs: Value[]) => Value | null> = {
  LayerNormalization: (b, node, [x, scale, bias]) => {
    const axis = node.attrs.axis;
    const eps = node.attrs.epsilon;
    if (!x || !scale || !bias || (axis?.type === 'int' && axis.value !== -1 && axis.value !== x.shape.length - 1))
      return null;
    const attrs = { axis: attr.int(x.shape.length - 1), ...(eps ? { epsilon: eps } : {}) };
    return b.node('LayerNormalization', [x, scale, bias], [{ dtype: x.dtype, shape: x.shape }], attrs)[0] ?? null;
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
   * Over the last axis: xhat = (x - mean) * inv, inv = 1 / sigma. d scale = sum(g * xhat), d bias = sum(g),
   * dx = (gh - mean(gh) - xhat * mean(gh * xhat)) * inv with gh = g * scale. mean and inv are the forward node's own
   * Mean and InvStdDev outputs (GraphBuilder.layerNormStatistics), not recomputed from x.
   */
  LayerNormalization: ({ b, inputs: [x, scale, bias], outputs: [y], grads: [g], attrInt, needs }) => {
    if (!g || !x || !scale || !bias || !y) return [];
    if (attrInt('axis', -1) !== -1 && attrInt('axis', -1) !== x.shape.length - 1) {
      throw new Error('autodiff: LayerNormalization gradient supports the last axis only');
    }
    const { mean, invStd: inv } = b.layerNormStatistics(y);
    const xhat = b.mul(b.sub(x, mean), inv);
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
