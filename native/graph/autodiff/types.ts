/** What a gradient rule sees, and the helpers rules share. */
import type { GraphBuilder } from '../builder.js';
import type { Dim, Node, Value } from '../ir.js';

export interface RuleContext {
  b: GraphBuilder;
  node: Node;
  inputs: Value[];
  outputs: Value[];
  /** Gradient of the loss with respect to each output (null where no gradient flows). */
  grads: (Value | null)[];
  /** Which inputs need a gradient (the others may be skipped). */
  needs: boolean[];
  /** Integer constants of an input (Reshape targets, Slice starts, axes…). */
  ints(inputIndex: number): number[];
  attrInt(name: string, fallback: number): number;
  attrFloat(name: string, fallback: number): number;
  attrInts(name: string): number[] | null;
}

/** Returns the gradient for each input (null: none, or not differentiable). */
export type GradRule = (ctx: RuleContext) => (Value | null)[];

/** Sums `g` down to `target`'s shape after numpy broadcasting (over leading axes and axes of size 1). */
export function unbroadcast(b: GraphBuilder, g: Value, target: Value): Value {
  const gs = g.shape;
  const ts = target.shape;
  if (gs.length === ts.length && gs.every((d, i) => d === ts[i])) return g;
  const lead = gs.length - ts.length;
  const axes: number[] = [];
  for (let i = 0; i < gs.length; i++) {
    if (i < lead) axes.push(i);
    else if (ts[i - lead] === 1 && gs[i] !== 1) axes.push(i);
  }
  let r = axes.length ? b.reduceSum(g, axes, true) : g;
  if (lead > 0 || r.shape.length !== ts.length) r = b.reshapeLike(r, target);
  return r;
}

export function sameShape(a: readonly Dim[], b: readonly Dim[]): boolean {
  return a.length === b.length && a.every((d, i) => d === b[i]);
}
