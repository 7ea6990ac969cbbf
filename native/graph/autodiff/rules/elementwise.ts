/** Gradients of elementwise ops (with numpy broadcasting). */
import type { GradRule } from '../types.js';
import { unbroadcast } from '../types.js';

export const elementwiseRules: Record<string, GradRule> = {
  Add: ({ b, inputs: [x, y], grads: [g], needs }) =>
    g && x && y ? [needs[0] ? unbroadcast(b, g, x) : null, needs[1] ? unbroadcast(b, g, y) : null] : [],
  Sub: ({ b, inputs: [x, y], grads: [g], needs }) =>
    g && x && y ? [needs[0] ? unbroadcast(b, g, x) : null, needs[1] ? unbroadcast(b, b.neg(g), y) : null] : [],
  Mul: ({ b, inputs: [x, y], grads: [g], needs }) =>
    g && x && y
      ? [needs[0] ? unbroadcast(b, b.mul(g, y), x) : null, needs[1] ? unbroadcast(b, b.mul(g, x), y) : null]
      : [],
  Div: ({ b, inputs: [x, y], outputs: [out], grads: [g], needs }) => {
    if (!g || !x || !y || !out) return [];
    const gx = b.div(g, y);
    return [needs[0] ? unbroadcast(b, gx, x) : null, needs[1] ? unbroadcast(b, b.neg(b.mul(gx, out)), y) : null];
  },
  /** d/dx x^p = p x^(p-1); the exponent is treated as a constant. */
  Pow: ({ b, inputs: [x, p], grads: [g] }) => {
    if (!g || !x || !p) return [];
    const d = b.mul(p, b.pow(x, b.sub(p, b.constFloat(1))));
    return [unbroadcast(b, b.mul(g, d), x), null];
  },
  Neg: ({ b, grads: [g] }) => (g ? [b.neg(g)] : []),
  Identity: ({ grads: [g] }) => [g ?? null],
  Exp: ({ b, outputs: [y], grads: [g] }) => (g && y ? [b.mul(g, y)] : []),
  Log: ({ b, inputs: [x], grads: [g] }) => (g && x ? [b.div(g, x)] : []),
  Sqrt: ({ b, outputs: [y], grads: [g] }) => (g && y ? [b.div(b.mul(g, b.constFloat(0.5)), y)] : []),
  Tanh: ({ b, outputs: [y], grads: [g] }) => (g && y ? [b.mul(g, b.sub(b.constFloat(1), b.mul(y, y)))] : []),
  Sigmoid: ({ b, outputs: [y], grads: [g] }) => (g && y ? [b.mul(g, b.mul(y, b.sub(b.constFloat(1), y)))] : []),
  /** d/dx atan(x) = 1 / (1 + x^2). */
  Atan: ({ b, inputs: [x], grads: [g] }) => (g && x ? [b.div(g, b.add(b.constFloat(1), b.mul(x, x)))] : []),
  Relu: ({ b, inputs: [x], grads: [g] }) =>
    g && x ? [b.where(b.greater(x, b.constFloat(0)), g, b.constFloat(0))] : [],
  /** d/dx erf(x) = 2/sqrt(pi) exp(-x^2). */
  Erf: ({ b, inputs: [x], grads: [g] }) =>
    g && x ? [b.mul(g, b.mul(b.constFloat(2 / Math.sqrt(Math.PI)), b.exp(b.neg(b.mul(x, x)))))] : [],
  Where: ({ b, inputs: [c, x, y], grads: [g] }) => {
    if (!g || !c || !x || !y) return [];
    const zero = b.constFloat(0);
    return [null, unbroadcast(b, b.where(c, g, zero), x), unbroadcast(b, b.where(c, zero, g), y)];
  },
  Cast: ({ b, inputs: [x], grads: [g] }) => (g && x ? [x.dtype === g.dtype ? g : b.cast(g, x.dtype)] : []),
};
