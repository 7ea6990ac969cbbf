/**
 * Reverse-mode automatic differentiation over the graph IR: appends to the builder the nodes that compute the
 * gradient of a scalar loss with respect to chosen values (parameters or inputs). Rules live in rules/, one file
 * per op family; an op without a rule on the path from the values to the loss is an error naming it.
 */
import type { GraphBuilder } from '../builder.js';
import { GraphShapeError } from '../builder.js';
import type { Attr, Node, Value } from '../ir.js';
import { elementwiseRules } from './rules/elementwise.js';
import { matmulRules } from './rules/matmul.js';
import { compositeRecompute, compositeRules, nnRules, nodeRecompute } from './rules/nn.js';
import { reduceRules } from './rules/reduce.js';
import { shapeRules } from './rules/shape.js';
import type { GradRule, RuleContext } from './types.js';

export const GRAD_RULES: Readonly<Record<string, GradRule>> = {
  ...elementwiseRules,
  ...matmulRules,
  ...shapeRules,
  ...reduceRules,
  ...nnRules,
};

/** Ops whose outputs carry no gradient (shapes, indices, comparisons). */
const NON_DIFFERENTIABLE = new Set([
  'Shape',
  'Greater',
  'Equal',
  'Less',
  'Not',
  'And',
  'Or',
  'ArgMax',
  'RandomUniformLike',
]);

function attrNumber(a: Attr | undefined): number | undefined {
  return a && (a.type === 'int' || a.type === 'float') ? a.value : undefined;
}

/** The scope part of a node name ("block3/MatMul_12" -> "block3"), for error messages. */
function where(node: Node): string {
  const i = node.name.lastIndexOf('/');
  return i > 0 ? node.name.slice(0, i) : 'top level';
}

/**
 * Reverse-mode gradients of a scalar `loss` w.r.t. `wrt`. Values in `stop` pass no gradient (as torch's detach):
 * the loss is differentiated as if they were constants.
 */
export function gradients(
  b: GraphBuilder,
  loss: Value,
  wrt: readonly Value[],
  stop: readonly Value[] = [],
): Map<string, Value> {
  if (loss.shape.some((d) => d !== 1)) {
    throw new GraphShapeError(`autodiff: the loss must be a scalar, got shape [${loss.shape.join(',')}]`);
  }
  const nodes = [...b.nodeList];
  // Values that depend on what we differentiate with respect to.
  const live = new Set(wrt.map((v) => v.name));
  const stopped = new Set(stop.map((v) => v.name));
  for (const n of nodes) {
    if (NON_DIFFERENTIABLE.has(n.op)) continue;
    if (n.inputs.some((i) => live.has(i))) for (const o of n.outputs) if (!stopped.has(o)) live.add(o);
  }
  if (!live.has(loss.name))
    throw new GraphShapeError('autodiff: the loss does not depend on any of the values asked for');

  const grads = new Map<string, Value>();
  grads.set(loss.name, b.constFloat(1, loss.shape));
  const accumulate = (name: string, g: Value) => {
    const prev = grads.get(name);
    grads.set(name, prev ? b.add(prev, g) : g);
  };

  /**
   * Values a product reads for a weight gradient that are computed again in the backward pass from what is kept
   * anyway instead of being kept from the forward pass (compositeRecompute, nodeRecompute), by name.
   */
  const producers = new Map<string, Node>();
  for (const n of nodes) if (nodeRecompute[n.op]) producers.set(n.outputs[0] as string, n);
  const recomputed = new Map<string, Value | null>();
  const recompute = (name: string): Value | undefined => {
    if (!recomputed.has(name)) {
      const composite = b.compositeOf(name);
      const again = composite && compositeRecompute[composite.op];
      const producer = producers.get(name);
      const rule = producer && nodeRecompute[producer.op];
      let v: Value | null = null;
      if (composite && again) v = b.scope(`${composite.op} recomputed`, () => again(b, composite.input));
      else if (producer && rule) {
        const inputs = producer.inputs.map((i) => b.value(i));
        if (inputs.every((i): i is Value => i !== undefined))
          v = b.scope(`${producer.op} recomputed`, () => rule(b, producer, inputs));
      }
      recomputed.set(name, v);
    }
    return recomputed.get(name) ?? undefined;
  };

  b.scope('grad', () => {
    for (let k = nodes.length - 1; k >= 0; k--) {
      const node = nodes[k] as Node;
      if (NON_DIFFERENTIABLE.has(node.op)) continue;
      const outGrads = node.outputs.map((o) => grads.get(o) ?? null);
      if (outGrads.every((g) => g === null)) continue;
      const needs = node.inputs.map((i) => live.has(i));
      if (!needs.some(Boolean)) continue;
      // A composite's last node: its input's gradient in one rule; its inner nodes then get no gradient (skipped).
      const composite = node.outputs.length === 1 ? b.compositeOf(node.outputs[0] as string) : undefined;
      const compositeRule = composite && compositeRules[composite.op];
      if (composite && compositeRule && outGrads[0]) {
        const g = outGrads[0];
        if (live.has(composite.input.name))
          accumulate(
            composite.input.name,
            b.scope(composite.op, () => compositeRule(b, composite.input, g, composite.saved)),
          );
        continue;
      }
      const rule = GRAD_RULES[node.op];
      if (!rule) {
        throw new GraphShapeError(`autodiff: no gradient rule for ${node.op} (node ${node.name}, in ${where(node)})`);
      }
      const value = (name: string) => {
        const v = b.value(name);
        if (!v) throw new GraphShapeError(`autodiff: unknown value ${name}`);
        return v;
      };
      // A product's factor is read only for the other factor's gradient; only those reads are recomputed.
      const product = node.op === 'MatMul' || node.op === 'Gemm';
      const reads = (i: number) => product && i < 2 && Boolean(needs[1 - i]);
      const ctx: RuleContext = {
        b,
        node,
        inputs: node.inputs.map((name, i) => (reads(i) && recompute(name)) || value(name)),
        outputs: node.outputs.map(value),
        grads: outGrads,
        needs,
        ints(i) {
          const name = node.inputs[i];
          const data = name ? b.constantData(name) : undefined;
          if (!data) return [];
          return Array.from(data as ArrayLike<number | bigint>, (v) => Number(v));
        },
        attrInt: (n, fallback) => attrNumber(node.attrs[n]) ?? fallback,
        attrFloat: (n, fallback) => attrNumber(node.attrs[n]) ?? fallback,
        attrInts(n) {
          const a = node.attrs[n];
          return a && a.type === 'ints' ? [...a.value] : null;
        },
      };
      let inGrads: (Value | null)[];
      try {
        inGrads = b.scope(node.op, () => rule(ctx));
      } catch (err) {
        if (err instanceof GraphShapeError) throw err;
        throw new GraphShapeError(`autodiff: ${(err as Error).message} (node ${node.name}, in ${where(node)})`);
      }
      node.inputs.forEach((name, i) => {
        const g = inGrads[i];
        if (g && needs[i]) accumulate(name, g);
      });
    }
  });

  const out = new Map<string, Value>();
  for (const v of wrt) {
    const g = grads.get(v.name);
    // A value the loss does not reach has a zero gradient.
    out.set(v.name, g ?? b.mul(v, b.constFloat(0)));
  }
  return out;
}
