/** Every gradient rule against finite differences. */
import { describe, expect, it } from 'vitest';
import { GRAD_RULES, gradients } from '../../../native/graph/autodiff/grad.js';
import { GraphBuilder, GraphShapeError } from '../../../native/graph/builder.js';
import type { Value } from '../../../native/graph/ir.js';
import { type GradInput, gradCheck } from '../../helpers/gradcheck.js';

const positive = (r: () => number) => 0.5 + r() * 1.5;
const awayFromZero = (r: () => number) => (r() < 0.5 ? -1 : 1) * (0.2 + r());

type Case = [string, (b: GraphBuilder, x: Value[]) => Value, GradInput[]];

const CASES: Case[] = [
  ['Add (broadcast)', (b, [x, y]) => b.add(x as Value, y as Value), [{ shape: [2, 3, 4] }, { shape: [3, 1] }]],
  ['Sub (broadcast)', (b, [x, y]) => b.sub(x as Value, y as Value), [{ shape: [4] }, { shape: [2, 3, 4] }]],
  ['Mul (broadcast)', (b, [x, y]) => b.mul(x as Value, y as Value), [{ shape: [2, 3, 4] }, { shape: [1, 3, 1] }]],
  ['Div', (b, [x, y]) => b.div(x as Value, y as Value), [{ shape: [3, 4] }, { shape: [3, 4], init: positive }]],
  ['Pow', (b, [x]) => b.pow(x as Value, b.constFloat(2.5)), [{ shape: [5], init: positive }]],
  ['Neg', (b, [x]) => b.neg(x as Value), [{ shape: [5] }]],
  ['Identity', (b, [x]) => b.identity(x as Value), [{ shape: [5] }]],
  ['Cast', (b, [x]) => b.mul(b.cast(x as Value, 'float32'), x as Value), [{ shape: [5] }]],
  ['Exp', (b, [x]) => b.exp(x as Value), [{ shape: [6] }]],
  ['Log', (b, [x]) => b.log(x as Value), [{ shape: [6], init: positive }]],
  ['Sqrt', (b, [x]) => b.sqrt(x as Value), [{ shape: [6], init: positive }]],
  ['Tanh', (b, [x]) => b.tanh(x as Value), [{ shape: [6] }]],
  ['Sigmoid', (b, [x]) => b.sigmoid(x as Value), [{ shape: [6] }]],
  ['Atan', (b, [x]) => b.atan(b.mul(x as Value, b.constFloat(3))), [{ shape: [6] }]],
  ['Relu', (b, [x]) => b.relu(x as Value), [{ shape: [8], init: awayFromZero }]],
  ['Erf', (b, [x]) => b.erf(x as Value), [{ shape: [6] }]],
  ['GELU (composite)', (b, [x]) => b.gelu(x as Value), [{ shape: [2, 6] }]],
  [
    'GELU then a Linear (its output recomputed for the weight gradient)',
    (b, [x, w]) => b.matmul(b.gelu(x as Value), w as Value),
    [{ shape: [3, 4] }, { shape: [4, 2] }],
  ],
  [
    'Where',
    (b, [x, y]) => b.where(b.greater(x as Value, b.constFloat(0)), x as Value, y as Value),
    [{ shape: [8], init: awayFromZero }, { shape: [8] }],
  ],
  ['MatMul 2-D', (b, [x, y]) => b.matmul(x as Value, y as Value), [{ shape: [3, 4] }, { shape: [4, 5] }]],
  [
    'MatMul batched x 2-D (Linear)',
    (b, [x, y]) => b.matmul(x as Value, y as Value),
    [{ shape: [2, 3, 4] }, { shape: [4, 5] }],
  ],
  [
    'MatMul 4-D (attention)',
    (b, [x, y]) => b.matmul(x as Value, y as Value),
    [{ shape: [2, 2, 3, 4] }, { shape: [2, 2, 4, 3] }],
  ],
  [
    'MatMul broadcast batch',
    (b, [x, y]) => b.matmul(x as Value, y as Value),
    [{ shape: [3, 4] }, { shape: [2, 4, 5] }],
  ],
  ...([false, true] as const).flatMap((transA) =>
    ([false, true] as const).map(
      (transB): Case => [
        `Gemm transA ${+transA} transB ${+transB}, alpha, beta and a broadcast bias`,
        (b, [x, y, c]) => b.gemm(x as Value, y as Value, c as Value, { transA, transB, alpha: 0.7, beta: 1.3 }),
        [{ shape: transA ? [4, 3] : [3, 4] }, { shape: transB ? [5, 4] : [4, 5] }, { shape: [5] }],
      ],
    ),
  ),
  ['Reshape', (b, [x]) => b.reshape(x as Value, [3, 8]), [{ shape: [2, 3, 4] }]],
  ['Transpose', (b, [x]) => b.transpose(x as Value, [2, 0, 1]), [{ shape: [2, 3, 4] }]],
  ['Unsqueeze / Squeeze', (b, [x]) => b.squeeze(b.unsqueeze(x as Value, [0, 3]), [0]), [{ shape: [2, 3] }]],
  ['Expand', (b, [x, y]) => b.expandLike(x as Value, y as Value), [{ shape: [1, 3, 1] }, { shape: [2, 3, 4] }]],
  [
    'Concat',
    (b, [x, y]) => b.concat([x as Value, y as Value, x as Value], 1),
    [{ shape: [2, 2, 3] }, { shape: [2, 4, 3] }],
  ],
  ['Slice', (b, [x]) => b.slice(x as Value, [1, 0], [3, 2], [1, 2]), [{ shape: [2, 5, 4] }]],
  [
    'Split (every part used)',
    (b, [x]) => {
      const [a, m, c] = b.split(x as Value, [1, 3, 2], 1) as [Value, Value, Value];
      return b.mul(b.concat([c, a], 1), m);
    },
    [{ shape: [2, 6, 3] }],
  ],
  [
    'Split (a part the loss does not reach)',
    (b, [x]) => {
      const [a, , c] = b.split(x as Value, [2, 1, 3], -1) as [Value, Value, Value];
      return b.mul(b.mul(a, a), b.slice(c, [0], [2], [2]));
    },
    [{ shape: [2, 3, 6] }],
  ],
  ['ReduceSum', (b, [x]) => b.reduceSum(x as Value, [1], false), [{ shape: [2, 3, 4] }]],
  ['ReduceMean', (b, [x]) => b.reduceMean(x as Value, [0, 2], true), [{ shape: [2, 3, 4] }]],
  ['Softmax', (b, [x]) => b.softmax(x as Value, -1), [{ shape: [3, 5] }]],
  ['ReduceMax', (b, [x]) => b.reduceMax(x as Value, [1], false), [{ shape: [2, 3, 4] }]],
  ['log softmax (max-shifted, from primitives)', (b, [x]) => b.logSoftmax(x as Value, -1), [{ shape: [3, 5] }]],
  [
    'LayerNormalization',
    (b, [x, s, t]) => b.layerNorm(x as Value, s as Value, t as Value, 1e-5),
    [{ shape: [2, 3, 6] }, { shape: [6] }, { shape: [6] }],
  ],
];

describe('gradient rules match finite differences', () => {
  it.each(CASES)('%s', async (_name, build, inputs) => {
    const r = await gradCheck(build, inputs);
    expect(r.checked).toBeGreaterThan(0);
  });

  it('has a finite-difference case for every rule', () => {
    const covered = new Set([
      'Add',
      'Sub',
      'Mul',
      'Div',
      'Pow',
      'Neg',
      'Identity',
      'Exp',
      'Log',
      'Sqrt',
      'Tanh',
      'Sigmoid',
      'Atan',
      'Relu',
      'Erf',
      'Where',
      'MatMul',
      'Gemm',
      'Reshape',
      'Transpose',
      'Unsqueeze',
      'Squeeze',
      'Expand',
      'Concat',
      'Slice',
      'Split',
      'ReduceSum',
      'ReduceMean',
      'Softmax',
      'ReduceMax',
      'LayerNormalization',
      'Cast',
    ]);
    expect(Object.keys(GRAD_RULES).filter((op) => !covered.has(op))).toEqual([]);
  });

  it('differentiates GELU from its input alone, so none of its intermediates is kept', () => {
    const b = new GraphBuilder();
    const x = b.input('x', 'float32', [2, 6]);
    const y = b.gelu(x);
    const forward = new Set(b.nodeList.flatMap((n) => n.outputs));
    const intermediates = new Set(b.nodeList.flatMap((n) => n.outputs).filter((o) => o !== y.name));
    gradients(b, b.reduceSum(b.mul(y, y), [0, 1], false), [x]);
    const backward = b.nodeList.filter((n) => !n.outputs.some((o) => forward.has(o)));
    expect(backward.length).toBeGreaterThan(0);
    for (const n of backward)
      for (const i of n.inputs) expect(intermediates.has(i), `${n.name} reads ${i}`).toBe(false);
    expect(backward.some((n) => n.inputs.includes(x.name))).toBe(true);
  });

  it("reads a GELU's output for a weight gradient from a recomputation, not from the forward pass", () => {
    const b = new GraphBuilder();
    const x = b.input('x', 'float32', [3, 4]);
    const w = b.input('w', 'float32', [4, 2]);
    const y = b.gelu(x);
    const forward = new Set(b.nodeList.flatMap((n) => n.outputs));
    const out = b.matmul(y, w);
    gradients(b, b.reduceSum(b.mul(out, out), [0, 1], false), [x, w]);
    const backward = b.nodeList.filter((n) => !n.outputs.some((o) => forward.has(o) || o === out.name));
    expect(backward.filter((n) => n.inputs.includes(y.name))).toEqual([]);
    expect(backward.filter((n) => n.op === 'Erf')).toHaveLength(2); // GELU again, and its derivative
  });

  it('differentiates LayerNormalization with the Mean and InvStdDev its forward node outputs', () => {
    const b = new GraphBuilder();
    const x = b.input('x', 'float32', [2, 3, 6]);
    const y = b.layerNorm(x, b.input('s', 'float32', [6]), b.input('t', 'float32', [6]), 1e-5);
    gradients(b, b.reduceSum(b.mul(y, y), [0, 1, 2], false), [x]);
    const ln = b.nodeList.find((n) => n.op === 'LayerNormalization');
    expect(ln?.outputs).toHaveLength(3);
    const [, mean, invStd] = ln?.outputs ?? [];
    const readers = b.nodeList.filter((n) => n.inputs.some((i) => i === mean || i === invStd));
    expect(readers.length).toBeGreaterThan(0);
    expect(b.nodeList.filter((n) => n.op === 'Sqrt' || n.op === 'ReduceMean').length).toBe(2); // mean(gh), mean(gh xhat)
    // Asked again (a second gradient of the same graph), the node keeps its two statistics outputs.
    expect(b.layerNormStatistics(y)).toEqual({ mean: b.value(mean as string), invStd: b.value(invStd as string) });
  });

  it('names an op without a rule and where it is used', () => {
    const b = new GraphBuilder();
    const x = b.input('x', 'float32', [4]);
    const y = b.scope('block 2', () => b.topk(x, 2)[0]);
    const loss = b.reduceSum(b.mul(y, y), [0], false);
    expect(() => gradients(b, loss, [x])).toThrow(GraphShapeError);
    expect(() => gradients(b, loss, [x])).toThrow(/no gradient rule for TopK \(node block2\/TopK_\d+, in block2\)/);
  });

  it('refuses a non-scalar loss', () => {
    const b = new GraphBuilder();
    const x = b.input('x', 'float32', [4]);
    expect(() => gradients(b, b.mul(x, x), [x])).toThrow(/must be a scalar/);
  });
});
