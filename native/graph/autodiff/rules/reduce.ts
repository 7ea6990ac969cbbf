/** Gradients of reductions: the gradient is broadcast back over the reduced axes. */
import type { GraphBuilder } from '../../builder.js';
import type { Value } from '../../ir.js';
import type { GradRule } from '../types.js';

function spread(b: GraphBuilder, g: Value, x: Value, axes: number[], keepdims: boolean): Value {
  const r = x.shape.length;
  const norm = axes.length ? axes.map((a) => (a < 0 ? a + r : a)) : [...Array(r).keys()];
  const kept = keepdims
    ? g
    : b.unsqueeze(
        g,
        [...norm].sort((a, c) => a - c),
      );
  return b.expandLike(kept, x);
}

function count(x: Value, axes: number[]): number {
  const r = x.shape.length;
  const norm = axes.length ? axes.map((a) => (a < 0 ? a + r : a)) : [...Array(r).keys()];
  return norm.reduce((n, a) => {
    const d = x.shape[a];
    if (typeof d !== 'number') throw new Error(`autodiff: ReduceMean over symbolic dimension ${d}`);
    return n * d;
  }, 1);
}

export const reduceRules: Record<string, GradRule> = {
  /** The gradient goes to the maximal entries, shared evenly between ties (as torch's amax). */
  ReduceMax: ({ b, inputs: [x], outputs: [y], grads: [g], attrInts, attrInt }) => {
    if (!g || !x || !y) return [];
    const axes = attrInts('axes') ?? [];
    const keep = attrInt('keepdims', 1) === 1;
    const m = spread(b, y, x, axes, keep);
    const mask = b.where(b.greater(m, x), b.constFloat(0), b.constFloat(1));
    const ties = spread(b, b.reduceSum(mask, axes, true), x, axes, true);
    return [b.div(b.mul(mask, spread(b, g, x, axes, keep)), ties)];
  },
  ReduceSum: ({ b, inputs: [x], grads: [g], ints, attrInt }) => {
    if (!g || !x) return [];
    return [spread(b, g, x, ints(1), attrInt('keepdims', 1) === 1), null];
  },
  ReduceMean: ({ b, inputs: [x], grads: [g], attrInts, attrInt }) => {
    if (!g || !x) return [];
    const axes = attrInts('axes') ?? [];
    return [b.div(spread(b, g, x, axes, attrInt('keepdims', 1) === 1), b.constFloat(count(x, axes)))];
  },
};
