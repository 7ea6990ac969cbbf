/** Gradients of shape ops: they move values around, so the gradient moves back. */
import type { GradRule } from '../types.js';
import { unbroadcast } from '../types.js';

export const shapeRules: Record<string, GradRule> = {
  Reshape: ({ b, inputs: [x], grads: [g] }) => (g && x ? [b.reshapeLike(g, x), null] : []),
  Unsqueeze: ({ b, inputs: [x], grads: [g] }) => (g && x ? [b.reshapeLike(g, x), null] : []),
  Squeeze: ({ b, inputs: [x], grads: [g] }) => (g && x ? [b.reshapeLike(g, x), null] : []),
  Transpose: ({ b, grads: [g], attrInts }) => {
    if (!g) return [];
    const perm = attrInts('perm') ?? [...Array(g.shape.length).keys()].reverse();
    const inverse = new Array<number>(perm.length);
    perm.forEach((p, i) => {
      inverse[p] = i;
    });
    return [b.transpose(g, inverse)];
  },
  Expand: ({ b, inputs: [x], grads: [g] }) => (g && x ? [unbroadcast(b, g, x), null] : []),
  Concat: ({ b, inputs, grads: [g], attrInt, needs }) => {
    if (!g) return [];
    const rank = g.shape.length;
    const axis = ((attrInt('axis', 0) % rank) + rank) % rank;
    let at = 0;
    return inputs.map((x, i) => {
      const n = x.shape[axis] as number;
      const part = needs[i] ? b.slice(g, [at], [at + n], [axis]) : null;
      at += n;
      return part;
    });
  },
  /** The output gradients side by side again (zeros for a part the loss does not reach). */
  Split: ({ b, outputs, grads, attrInt }) => {
    const parts = outputs.map((o, i) => grads[i] ?? b.expandLike(b.constFloat(0), o));
    return [b.concat(parts, attrInt('axis', 0)), null];
  },
  /** Slice with unit steps: the gradient is the output gradient padded back with zeros. */
  Slice: ({ b, inputs: [x], grads: [g], ints }) => {
    if (!g || !x) return [];
    const starts = ints(1);
    const axes = ints(3);
    const steps = ints(4);
    if (steps.some((s) => s !== 1)) throw new Error('autodiff: Slice with steps other than 1 has no gradient rule');
    const r = x.shape.length;
    const pads = new Array<number>(2 * r).fill(0);
    axes.forEach((a, i) => {
      const ax = a < 0 ? a + r : a;
      const d = x.shape[ax] as number;
      let s = starts[i] as number;
      if (s < 0) s += d;
      s = Math.min(Math.max(s, 0), d);
      const n = g.shape[ax] as number;
      pads[ax] = s;
      pads[ax + r] = d - s - n;
    });
    return [b.pad(g, pads), null, null, null, null];
  },
};
