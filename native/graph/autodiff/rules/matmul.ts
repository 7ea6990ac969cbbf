/** Gradients of matrix products. */
import type { GraphBuilder } from '../../builder.js';
import type { Value } from '../../ir.js';
import type { GradRule } from '../types.js';
import { unbroadcast } from '../types.js';

function swapLast(b: GraphBuilder, v: Value): Value {
  const r = v.shape.length;
  const perm = [...Array(r).keys()];
  perm[r - 1] = r - 2;
  perm[r - 2] = r - 1;
  return b.transpose(v, perm);
}

/** Sum over leading dims folded into rows: [..., m, k] -> [M, k]. */
function rows(b: GraphBuilder, v: Value): Value {
  return b.reshape(v, [-1, v.shape[v.shape.length - 1] as number]);
}

export const matmulRules: Record<string, GradRule> = {
  MatMul: ({ b, inputs: [x, w], grads: [g], needs }) => {
    if (!g || !x || !w) return [];
    // A batched input times a 2-D weight (every Linear layer): fold the batch into rows for the weight gradient.
    if (w.shape.length === 2 && x.shape.length > 2) {
      const gx = needs[0] ? b.matmul(g, b.transpose(w, [1, 0])) : null;
      const gw = needs[1] ? b.matmul(b.transpose(rows(b, x), [1, 0]), rows(b, g)) : null;
      return [gx, gw];
    }
    const gx = needs[0] ? unbroadcast(b, b.matmul(g, swapLast(b, w)), x) : null;
    const gw = needs[1] ? unbroadcast(b, b.matmul(swapLast(b, x), g), w) : null;
    return [gx, gw];
  },
  /**
   * Gemm, Y = alpha · A' · B' + beta · C (A' = Aᵀ when transA, B' likewise): each gradient is one Gemm in the layout
   * its input has, so a Linear written as Gemm(x, W, bias, transB) gets dx = G·W and dW = Gᵀ·x with no Transpose of
   * W or of its gradient (MLAS reads either side transposed while packing).
   */
  Gemm: ({ b, inputs: [x, w, c], grads: [g], needs, attrInt, attrFloat }) => {
    if (!g || !x || !w) return [];
    const ta = attrInt('transA', 0) === 1;
    const tb = attrInt('transB', 0) === 1;
    const alpha = attrFloat('alpha', 1);
    const beta = attrFloat('beta', 1);
    const scaled = alpha === 1 ? {} : { alpha };
    // dA' = G·B'ᵀ, stored transposed when A is: (G·B'ᵀ)ᵀ = B'·Gᵀ.
    const gx = needs[0]
      ? ta
        ? b.gemm(w, g, null, { transA: tb, transB: true, ...scaled })
        : b.gemm(g, w, null, { transB: !tb, ...scaled })
      : null;
    // dB' = A'ᵀ·G, stored transposed when B is: Gᵀ·A'.
    const gw = needs[1]
      ? tb
        ? b.gemm(g, x, null, { transA: true, transB: ta, ...scaled })
        : b.gemm(x, g, null, { transA: !ta, ...scaled })
      : null;
    const gc = needs[2] && c ? unbroadcast(b, beta === 1 ? g : b.mul(g, b.constFloat(beta)), c) : null;
    return [gx, gw, gc];
  },
};
