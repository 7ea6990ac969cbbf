/**
 * Builds graphs op by op with shape checking at build time. Every error says where it happened, e.g.
 * `block 3 attn.qkv: MatMul [197,384] x [768,384]: inner dimensions differ (384 vs 768)`.
 */

import { ONNX_DTYPE } from './dtypes.js';
import {
  type Attr,
  attr,
  type Dim,
  type DType,
  formatShape,
  type Graph,
  type Initializer,
  type Node,
  type Shape,
  type TensorData,
  type Value,
} from './ir.js';

export class GraphShapeError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'GraphShapeError';
  }
}

const INT64_MAX = 2 ** 62;

function sameDim(a: Dim, b: Dim): boolean {
  return a === b;
}

/** Numpy broadcasting of two shapes; null when incompatible. */
export function broadcastShapes(a: Shape, b: Shape): Dim[] | null {
  const n = Math.max(a.length, b.length);
  const out: Dim[] = [];
  for (let i = 0; i < n; i++) {
    const da = a[a.length - n + i] ?? 1;
    const db = b[b.length - n + i] ?? 1;
    if (sameDim(da, db) || db === 1) out.push(da);
    else if (da === 1) out.push(db);
    else return null;
  }
  return out;
}

function normAxis(axis: number, rank: number): number {
  return axis < 0 ? axis + rank : axis;
}

/** A value several nodes compute that autodiff differentiates as one op (GraphBuilder.compositeOf). */
export interface Composite {
  op: string;
  input: Value;
  /** Intermediates the composite's gradient rule reads. */
  saved: Value[];
}

export class GraphBuilder {
  private readonly nodes: Node[] = [];
  private readonly inputs: Value[] = [];
  private readonly outputs: Value[] = [];
  private readonly initializers = new Map<string, Initializer>();
  private readonly values = new Map<string, Value>();
  private readonly scopes: string[] = [];
  private counter = 0;
  private readonly constCache = new Map<string, Value>();
  private readonly composites = new Map<string, Composite>();

  constructor(readonly name = 'graph') {}

  /** Runs `fn` with `name` added to the location of every value, node and error made inside it. */
  scope<T>(name: string, fn: () => T): T {
    this.scopes.push(name);
    try {
      return fn();
    } finally {
      this.scopes.pop();
    }
  }

  private location(label?: string): string {
    const parts = [...this.scopes];
    if (label) parts.push(label);
    return parts.join(' ');
  }

  private fail(op: string, label: string | undefined, shapes: string, why: string): never {
    const loc = this.location(label);
    throw new GraphShapeError(`${loc ? `${loc}: ` : ''}${op} ${shapes}: ${why}`);
  }

  private fresh(hint: string): string {
    const prefix = this.scopes.map((s) => s.replace(/\s+/g, '')).join('/');
    return `${prefix ? `${prefix}/` : ''}${hint}_${this.counter++}`;
  }

  private define(v: Value): Value {
    if (this.values.has(v.name)) throw new GraphShapeError(`duplicate value name ${v.name}`);
    this.values.set(v.name, v);
    return v;
  }

  value(name: string): Value | undefined {
    return this.values.get(name);
  }

  /** The nodes added so far, in order (for autodiff). */
  get nodeList(): readonly Node[] {
    return this.nodes;
  }

  /** The data of a constant (initializer), for rules that read shapes or indices. */
  constantData(name: string): TensorData | undefined {
    return this.initializers.get(name)?.data;
  }

  /**
   * A value several nodes compute that autodiff differentiates as one op (rule `op` in autodiff/rules) from its
   * input and the intermediates it names as saved, so the other intermediates are not kept for the backward pass.
   * Undefined for an ordinary value.
   */
  compositeOf(name: string): Composite | undefined {
    return this.composites.get(name);
  }

  /** Is this value an initializer (a constant of the graph)? */
  isInitializer(name: string): boolean {
    return this.initializers.has(name);
  }

  /** Reshape `x` to the (possibly symbolic) shape of `like`, taking the sizes from `like` at run time. */
  reshapeLike(x: Value, like: Value): Value {
    return this.one('Reshape', [x, this.shapeOf(like)], x.dtype, like.shape);
  }

  /** Broadcast `x` to the shape of `like` at run time. */
  expandLike(x: Value, like: Value, label?: string): Value {
    return this.expandTo(x, this.shapeOf(like), like.shape, label);
  }

  /** Zero padding: `pads` = [begin per axis..., end per axis...] (ONNX layout). */
  pad(x: Value, pads: readonly number[], label?: string): Value {
    const r = x.shape.length;
    if (pads.length !== 2 * r) this.fail('Pad', label, formatShape(x.shape), 'pads needs a begin and an end per axis');
    const shape = x.shape.map((d, i) => {
      const add = (pads[i] as number) + (pads[i + r] as number);
      if (add === 0) return d;
      if (typeof d !== 'number') this.fail('Pad', label, formatShape(x.shape), `cannot pad symbolic dimension ${d}`);
      return d + add;
    });
    return this.one('Pad', [x, this.constInt64(pads)], x.dtype, shape, { mode: attr.string('constant') });
  }

  greater(a: Value, b: Value, label?: string): Value {
    const shape = broadcastShapes(a.shape, b.shape);
    if (!shape)
      this.fail('Greater', label, `${formatShape(a.shape)} x ${formatShape(b.shape)}`, 'shapes do not broadcast');
    return this.one('Greater', [a, b], 'bool', shape);
  }

  where(cond: Value, a: Value, b: Value, label?: string): Value {
    const ab = broadcastShapes(a.shape, b.shape);
    const shape = ab && broadcastShapes(cond.shape, ab);
    if (!shape)
      this.fail(
        'Where',
        label,
        `${formatShape(cond.shape)} ? ${formatShape(a.shape)} : ${formatShape(b.shape)}`,
        'shapes do not broadcast',
      );
    return this.one('Where', [cond, a, b], a.dtype, shape);
  }

  /**
   * log softmax as (x - max) - log Σ exp(x - max): onnxruntime's WebGPU provider has no LogSoftmax kernel (the node
   * would run on the CPU with copies both ways); these ops all run on the GPU, and autodiff differentiates them.
   */
  logSoftmax(x: Value, axis = -1): Value {
    const shifted = this.sub(x, this.reduceMax(x, [axis], true));
    return this.sub(shifted, this.log(this.reduceSum(this.exp(shifted), [axis], true)));
  }

  input(name: string, dtype: DType, shape: Shape): Value {
    const v = this.define({ name, dtype, shape });
    this.inputs.push(v);
    return v;
  }

  /** Marks `v` as a graph output under `name` (adds an Identity when the name differs). */
  output(v: Value, name = v.name): Value {
    let out = v;
    if (name !== v.name) {
      out = this.define({ name, dtype: v.dtype, shape: v.shape });
      this.nodes.push({ op: 'Identity', name: this.fresh('Identity'), inputs: [v.name], outputs: [name], attrs: {} });
    }
    this.outputs.push(out);
    return out;
  }

  initializer(name: string, data: TensorData, shape: Shape, dtype: DType = 'float32'): Value {
    const n = shape.reduce<number>((a, d) => a * (d as number), 1);
    if (data.length !== n) {
      throw new GraphShapeError(`initializer ${name}: ${data.length} elements for shape ${formatShape(shape)}`);
    }
    const v = this.define({ name, dtype, shape });
    this.initializers.set(name, { value: v, data });
    return v;
  }

  /** A constant (deduplicated by content). */
  constFloat(values: number | readonly number[], shape?: Shape): Value {
    const arr = typeof values === 'number' ? [values] : values;
    const s = shape ?? (typeof values === 'number' ? [] : [arr.length]);
    const key = `f:${formatShape(s)}:${arr.join(',')}`;
    const hit = this.constCache.get(key);
    if (hit) return hit;
    const v = this.initializer(this.fresh('const'), Float32Array.from(arr), s, 'float32');
    this.constCache.set(key, v);
    return v;
  }

  constInt64(values: readonly number[], shape?: Shape): Value {
    const s = shape ?? [values.length];
    const key = `i:${formatShape(s)}:${values.join(',')}`;
    const hit = this.constCache.get(key);
    if (hit) return hit;
    const v = this.initializer(this.fresh('const'), BigInt64Array.from(values.map((x) => BigInt(x))), s, 'int64');
    this.constCache.set(key, v);
    return v;
  }

  /** Adds a node whose output shapes the caller has computed. */
  node(
    op: string,
    inputs: readonly Value[],
    outputs: { dtype: DType; shape: Shape }[],
    attrs: Record<string, Attr> = {},
    domain?: string,
  ): Value[] {
    const name = this.fresh(op);
    const outs = outputs.map((o, i) => this.define({ name: `${name}${outputs.length > 1 ? `:${i}` : ''}`, ...o }));
    const node: Node = {
      op,
      name,
      inputs: inputs.map((v) => v.name),
      outputs: outs.map((v) => v.name),
      attrs,
      ...(domain ? { domain } : {}),
    };
    this.nodes.push(node);
    return outs;
  }

  private one(
    op: string,
    inputs: readonly Value[],
    dtype: DType,
    shape: Shape,
    attrs: Record<string, Attr> = {},
  ): Value {
    return this.node(op, inputs, [{ dtype, shape }], attrs)[0] as Value;
  }

  private sameDtype(op: string, label: string | undefined, a: Value, b: Value): void {
    if (a.dtype !== b.dtype) this.fail(op, label, `${a.dtype} x ${b.dtype}`, 'element types differ');
  }

  // --- elementwise -------------------------------------------------------------------------------------------

  private binary(op: string, a: Value, b: Value, label?: string): Value {
    this.sameDtype(op, label, a, b);
    const shape = broadcastShapes(a.shape, b.shape);
    if (!shape) this.fail(op, label, `${formatShape(a.shape)} x ${formatShape(b.shape)}`, 'shapes do not broadcast');
    return this.one(op, [a, b], a.dtype, shape);
  }

  add(a: Value, b: Value, label?: string): Value {
    return this.binary('Add', a, b, label);
  }
  sub(a: Value, b: Value, label?: string): Value {
    return this.binary('Sub', a, b, label);
  }
  mul(a: Value, b: Value, label?: string): Value {
    return this.binary('Mul', a, b, label);
  }
  div(a: Value, b: Value, label?: string): Value {
    return this.binary('Div', a, b, label);
  }
  pow(a: Value, b: Value, label?: string): Value {
    return this.binary('Pow', a, b, label);
  }
  max(a: Value, b: Value, label?: string): Value {
    return this.binary('Max', a, b, label);
  }
  min(a: Value, b: Value, label?: string): Value {
    return this.binary('Min', a, b, label);
  }

  private unary(op: string, x: Value, attrs: Record<string, Attr> = {}): Value {
    return this.one(op, [x], x.dtype, x.shape, attrs);
  }
  sqrt(x: Value): Value {
    return this.unary('Sqrt', x);
  }
  erf(x: Value): Value {
    return this.unary('Erf', x);
  }
  exp(x: Value): Value {
    return this.unary('Exp', x);
  }
  log(x: Value): Value {
    return this.unary('Log', x);
  }
  neg(x: Value): Value {
    return this.unary('Neg', x);
  }
  tanh(x: Value): Value {
    return this.unary('Tanh', x);
  }
  relu(x: Value): Value {
    return this.unary('Relu', x);
  }
  sigmoid(x: Value): Value {
    return this.unary('Sigmoid', x);
  }
  atan(x: Value): Value {
    return this.unary('Atan', x);
  }
  identity(x: Value): Value {
    return this.unary('Identity', x);
  }

  /**
   * GELU, exact (erf) form: (x (1 + erf(x / sqrt 2))) 0.5, written in the order ONNX Runtime's GeluFusion
   * recognises (Div, Erf, Add, Mul, Mul), so it becomes one fused (Bias)Gelu kernel. A composite for autodiff: its
   * gradient reads x only (no intermediate is kept for the backward pass, so the forward stays one fused kernel
   * in a training graph too).
   */
  gelu(x: Value): Value {
    const t = this.erf(this.div(x, this.constFloat(Math.SQRT2)));
    const a = this.add(t, this.constFloat(1));
    const y = this.mul(this.mul(x, a), this.constFloat(0.5));
    this.composites.set(y.name, { op: 'Gelu', input: x, saved: [] });
    return y;
  }

  cast(x: Value, to: DType): Value {
    return this.one('Cast', [x], to, x.shape, { to: attr.int(ONNX_DTYPE[to]) });
  }

  // --- linear algebra ------------------------------------------------------------------------------------------

  matmul(a: Value, b: Value, label?: string): Value {
    this.sameDtype('MatMul', label, a, b);
    const shapes = `${formatShape(a.shape)} x ${formatShape(b.shape)}`;
    if (a.shape.length < 2 || b.shape.length < 2) this.fail('MatMul', label, shapes, 'both sides need rank >= 2');
    const k1 = a.shape[a.shape.length - 1] as Dim;
    const k2 = b.shape[b.shape.length - 2] as Dim;
    if (!sameDim(k1, k2)) this.fail('MatMul', label, shapes, `inner dimensions differ (${k1} vs ${k2})`);
    const batch = broadcastShapes(a.shape.slice(0, -2), b.shape.slice(0, -2));
    if (!batch) this.fail('MatMul', label, shapes, 'batch dimensions do not broadcast');
    return this.one('MatMul', [a, b], a.dtype, [
      ...batch,
      a.shape[a.shape.length - 2] as Dim,
      b.shape[b.shape.length - 1] as Dim,
    ]);
  }

  /** y = x W^T + b for a weight stored [out, in] (the PyTorch Linear layout). */
  linear(x: Value, weightT: Value, bias: Value | null, label?: string): Value {
    const y = this.matmul(x, weightT, label);
    return bias ? this.add(y, bias, label) : y;
  }

  /** Gemm: alpha A' B' + beta C, A and B 2-D. */
  gemm(
    a: Value,
    b: Value,
    c: Value | null,
    o: { transA?: boolean; transB?: boolean; alpha?: number; beta?: number } = {},
    label?: string,
  ): Value {
    const shapes = `${formatShape(a.shape)} x ${formatShape(b.shape)}`;
    if (a.shape.length !== 2 || b.shape.length !== 2) this.fail('Gemm', label, shapes, 'Gemm takes 2-D inputs');
    const [m, k1] = o.transA ? [a.shape[1], a.shape[0]] : [a.shape[0], a.shape[1]];
    const [k2, n] = o.transB ? [b.shape[1], b.shape[0]] : [b.shape[0], b.shape[1]];
    if (!sameDim(k1 as Dim, k2 as Dim)) this.fail('Gemm', label, shapes, `inner dimensions differ (${k1} vs ${k2})`);
    const attrs: Record<string, Attr> = {};
    if (o.transA) attrs.transA = attr.int(1);
    if (o.transB) attrs.transB = attr.int(1);
    if (o.alpha !== undefined) attrs.alpha = attr.float(o.alpha);
    if (o.beta !== undefined) attrs.beta = attr.float(o.beta);
    return this.one('Gemm', c ? [a, b, c] : [a, b], a.dtype, [m as Dim, n as Dim], attrs);
  }

  // --- normalisation and activations -----------------------------------------------------------------------------

  softmax(x: Value, axis = -1): Value {
    return this.unary('Softmax', x, { axis: attr.int(axis) });
  }

  layerNorm(x: Value, scale: Value, bias: Value, eps: number, label?: string): Value {
    const d = x.shape[x.shape.length - 1] as Dim;
    if (scale.shape.length !== 1 || !sameDim(scale.shape[0] as Dim, d)) {
      this.fail(
        'LayerNormalization',
        label,
        `${formatShape(x.shape)} scale ${formatShape(scale.shape)}`,
        'scale must be [last dim]',
      );
    }
    return this.one('LayerNormalization', [x, scale, bias], x.dtype, x.shape, {
      axis: attr.int(-1),
      epsilon: attr.float(eps),
    });
  }

  /**
   * The mean and 1 / sqrt(variance + eps) over the last axis ([..., 1] each) that the LayerNormalization computing
   * `y` works out anyway, for its gradient: the node gains ONNX's optional Mean and InvStdDev outputs when it has
   * not got them yet, so the backward pass reads two small tensors instead of recomputing the statistics.
   */
  layerNormStatistics(y: Value): { mean: Value; invStd: Value } {
    const k = this.nodes.findIndex((n) => n.op === 'LayerNormalization' && n.outputs[0] === y.name);
    const node = this.nodes[k];
    if (!node) throw new GraphShapeError(`${y.name} is not the output of a LayerNormalization`);
    const known = (name: string | undefined) => (name ? this.values.get(name) : undefined);
    const [mean, invStd] = [known(node.outputs[1]), known(node.outputs[2])];
    if (mean && invStd) return { mean, invStd };
    if (node.outputs.length > 1) throw new GraphShapeError(`${node.name} has some of its statistics outputs only`);
    const shape = [...y.shape.slice(0, -1), 1];
    const m = this.define({ name: `${node.name}:mean`, dtype: y.dtype, shape });
    const inv = this.define({ name: `${node.name}:inv_std`, dtype: y.dtype, shape });
    this.nodes[k] = { ...node, outputs: [...node.outputs, m.name, inv.name] };
    return { mean: m, invStd: inv };
  }

  // --- ONNX Runtime's fused CPU kernels (com.microsoft; inference only: autodiff has no rules for them) ---------

  /**
   * Self-attention with the QKV projection inside (com.microsoft Attention): x [B, S, D], weight [D, 3D] (in, out:
   * q | k | v), bias [3D]; softmax(q k^T / sqrt(D / heads)) v per head, heads concatenated: [B, S, D].
   */
  fusedAttention(x: Value, weight: Value, bias: Value, heads: number, label?: string): Value {
    const D = x.shape[x.shape.length - 1] as Dim;
    const shapes = `${formatShape(x.shape)} weight ${formatShape(weight.shape)} bias ${formatShape(bias.shape)}`;
    if (x.shape.length !== 3) this.fail('Attention', label, shapes, 'input must be [batch, tokens, dim]');
    if (typeof D !== 'number' || D % heads !== 0)
      this.fail('Attention', label, shapes, `dim ${D} does not split into ${heads} heads`);
    if (!sameDim(weight.shape[0] as Dim, D) || !sameDim(weight.shape[1] as Dim, 3 * D) || bias.shape[0] !== 3 * D)
      this.fail('Attention', label, shapes, 'weight must be [dim, 3 dim] and bias [3 dim]');
    return this.contrib('Attention', [x, weight, bias], x, { num_heads: attr.int(heads) });
  }

  /** com.microsoft MultiHeadAttention on projected q, k, v [B, S, D]: softmax(q k^T / sqrt(D / heads)) v per head. */
  fusedMultiHeadAttention(q: Value, k: Value, v: Value, heads: number, label?: string): Value {
    const shapes = `${formatShape(q.shape)} x ${formatShape(k.shape)} x ${formatShape(v.shape)}`;
    if (q.shape.length !== 3 || k.shape.length !== 3 || v.shape.length !== 3)
      this.fail('MultiHeadAttention', label, shapes, 'q, k and v must be [batch, tokens, dim]');
    return this.contrib('MultiHeadAttention', [q, k, v], q, { num_heads: attr.int(heads) });
  }

  /** One com.microsoft node with one output shaped as `like`. */
  private contrib(op: string, inputs: readonly Value[], like: Value, attrs: Record<string, Attr>): Value {
    return this.node(op, inputs, [{ dtype: like.dtype, shape: like.shape }], attrs, 'com.microsoft')[0] as Value;
  }

  /**
   * com.microsoft SkipLayerNormalization: sum = x + skip (+ bias), out = LayerNorm(sum) over the last axis; both
   * returned (the residual stream goes on with `sum`).
   */
  skipLayerNorm(
    x: Value,
    skip: Value,
    scale: Value,
    shift: Value,
    bias: Value | null,
    eps: number,
    label?: string,
  ): { out: Value; sum: Value } {
    const shape = broadcastShapes(x.shape, skip.shape);
    if (!shape || formatShape(shape) !== formatShape(x.shape))
      this.fail(
        'SkipLayerNormalization',
        label,
        `${formatShape(x.shape)} + ${formatShape(skip.shape)}`,
        'shapes differ',
      );
    // outputs: normalised, mean and inverse std per row (unused), the sum
    const stat = { dtype: x.dtype, shape: [...x.shape.slice(0, -1), 1] };
    const [out, , , sum] = this.node(
      'SkipLayerNormalization',
      bias ? [x, skip, scale, shift, bias] : [x, skip, scale, shift],
      [{ dtype: x.dtype, shape: x.shape }, stat, stat, { dtype: x.dtype, shape: x.shape }],
      { epsilon: attr.float(eps) },
      'com.microsoft',
    ) as [Value, Value, Value, Value];
    return { out, sum };
  }

  // --- shape ops ------------------------------------------------------------------------------------------------

  reshape(x: Value, target: readonly number[], label?: string): Value {
    const shapes = `${formatShape(x.shape)} -> ${formatShape(target)}`;
    const out: Dim[] = target.map((t, i) => (t === 0 ? (x.shape[i] as Dim) : t));
    const minus = target.indexOf(-1);
    // Products as a number times a multiset of symbols.
    let inNum = 1;
    const inSyms: string[] = [];
    for (const d of x.shape) {
      if (typeof d === 'number') inNum *= d;
      else inSyms.push(d);
    }
    let outNum = 1;
    const outSyms: string[] = [];
    out.forEach((d, i) => {
      if (i === minus) return;
      if (typeof d === 'number') outNum *= d;
      else outSyms.push(d);
    });
    const left = [...inSyms];
    for (const s of outSyms) {
      const j = left.indexOf(s);
      if (j < 0) this.fail('Reshape', label, shapes, `symbol ${s} is not in the input`);
      left.splice(j, 1);
    }
    if (minus >= 0) {
      if (inNum % outNum !== 0) this.fail('Reshape', label, shapes, 'sizes do not divide');
      const q = inNum / outNum;
      // A product with symbols stays symbolic, written as an expression ('batch*197').
      if (left.length === 0) out[minus] = q;
      else out[minus] = [...left, ...(q === 1 ? [] : [String(q)])].join('*');
    } else if (left.length !== 0 || inNum !== outNum) {
      this.fail('Reshape', label, shapes, 'element counts differ');
    }
    return this.one('Reshape', [x, this.constInt64(target)], x.dtype, out);
  }

  transpose(x: Value, perm: readonly number[], label?: string): Value {
    if (perm.length !== x.shape.length || [...perm].sort().some((p, i) => p !== i)) {
      this.fail(
        'Transpose',
        label,
        `${formatShape(x.shape)} perm ${formatShape(perm)}`,
        'perm must be a permutation of the axes',
      );
    }
    return this.one(
      'Transpose',
      [x],
      x.dtype,
      perm.map((p) => x.shape[p] as Dim),
      { perm: attr.ints(perm) },
    );
  }

  concat(xs: readonly Value[], axis: number, label?: string): Value {
    const first = xs[0];
    if (!first) throw new GraphShapeError(`${this.location(label)}: Concat of nothing`);
    const rank = first.shape.length;
    const ax = normAxis(axis, rank);
    let total: Dim = 0;
    for (const x of xs) {
      const shapes = xs.map((v) => formatShape(v.shape)).join(' ++ ');
      this.sameDtype('Concat', label, first, x);
      if (x.shape.length !== rank) this.fail('Concat', label, shapes, 'ranks differ');
      for (let i = 0; i < rank; i++) {
        if (i !== ax && !sameDim(x.shape[i] as Dim, first.shape[i] as Dim))
          this.fail('Concat', label, shapes, `dimension ${i} differs`);
      }
      const d = x.shape[ax] as Dim;
      if (typeof d !== 'number' || typeof total !== 'number')
        this.fail('Concat', label, shapes, 'concat axis must be static');
      total += d;
    }
    const shape = [...first.shape];
    shape[ax] = total;
    return this.one('Concat', xs, first.dtype, shape, { axis: attr.int(axis) });
  }

  /** ONNX Split into parts of the given sizes along `axis` (one pass; its gradient is one Concat). */
  split(x: Value, sizes: readonly number[], axis: number, label?: string): Value[] {
    const ax = normAxis(axis, x.shape.length);
    const total = sizes.reduce((a, n) => a + n, 0);
    if (x.shape[ax] !== total)
      this.fail('Split', label, formatShape(x.shape), `sizes ${formatShape(sizes)} do not add up to axis ${ax}`);
    return this.node(
      'Split',
      [x, this.constInt64(sizes)],
      sizes.map((n) => ({ dtype: x.dtype, shape: x.shape.map((d, i) => (i === ax ? n : d)) })),
      { axis: attr.int(ax) },
    );
  }

  /** ONNX Slice with constant starts/ends/axes/steps. */
  slice(
    x: Value,
    starts: readonly number[],
    ends: readonly number[],
    axes: readonly number[],
    steps?: readonly number[],
    label?: string,
  ): Value {
    const shape = [...x.shape];
    axes.forEach((a, i) => {
      const ax = normAxis(a, x.shape.length);
      const d = x.shape[ax] as Dim;
      const st = steps?.[i] ?? 1;
      let s = starts[i] as number;
      let e = ends[i] as number;
      if (typeof d !== 'number') {
        if (s === 0 && e >= INT64_MAX && st === 1) return;
        this.fail('Slice', label, formatShape(x.shape), `cannot slice symbolic dimension ${d}`);
      }
      if (st <= 0) this.fail('Slice', label, formatShape(x.shape), 'only positive steps are supported');
      if (s < 0) s += d;
      if (e < 0) e += d;
      s = Math.min(Math.max(s, 0), d);
      e = Math.min(Math.max(e, 0), d);
      shape[ax] = Math.max(0, Math.ceil((e - s) / st));
    });
    const inputs = [x, this.constInt64(starts), this.constInt64(ends), this.constInt64(axes)];
    if (steps) inputs.push(this.constInt64(steps));
    return this.one('Slice', inputs, x.dtype, shape);
  }

  gather(x: Value, indices: Value, axis = 0, label?: string): Value {
    if (indices.dtype !== 'int64' && indices.dtype !== 'int32')
      this.fail('Gather', label, formatShape(indices.shape), 'indices must be integers');
    const ax = normAxis(axis, x.shape.length);
    const shape = [...x.shape.slice(0, ax), ...indices.shape, ...x.shape.slice(ax + 1)];
    return this.one('Gather', [x, indices], x.dtype, shape, { axis: attr.int(axis) });
  }

  unsqueeze(x: Value, axes: readonly number[]): Value {
    const rank = x.shape.length + axes.length;
    const norm = axes.map((a) => normAxis(a, rank));
    const shape: Dim[] = [];
    let j = 0;
    for (let i = 0; i < rank; i++) shape.push(norm.includes(i) ? 1 : (x.shape[j++] as Dim));
    return this.one('Unsqueeze', [x, this.constInt64(axes)], x.dtype, shape);
  }

  squeeze(x: Value, axes: readonly number[], label?: string): Value {
    const norm = axes.map((a) => normAxis(a, x.shape.length));
    for (const a of norm) if (x.shape[a] !== 1) this.fail('Squeeze', label, formatShape(x.shape), `axis ${a} is not 1`);
    return this.one(
      'Squeeze',
      [x, this.constInt64(axes)],
      x.dtype,
      x.shape.filter((_, i) => !norm.includes(i)),
    );
  }

  expand(x: Value, shape: readonly number[], label?: string): Value {
    const out = broadcastShapes(x.shape, shape);
    if (!out) this.fail('Expand', label, `${formatShape(x.shape)} -> ${formatShape(shape)}`, 'shapes do not broadcast');
    return this.one('Expand', [x, this.constInt64(shape)], x.dtype, out);
  }

  /** 2-D convolution, NCHW, no padding, square stride (used for patch embeddings: kernel = stride = patch). */
  conv2d(x: Value, w: Value, bias: Value | null, stride: number, label?: string): Value {
    const shapes = `${formatShape(x.shape)} * ${formatShape(w.shape)}`;
    if (x.shape.length !== 4 || w.shape.length !== 4)
      this.fail('Conv', label, shapes, 'expects NCHW input and OIHW weights');
    const [n, c, h, wd] = x.shape as [Dim, Dim, Dim, Dim];
    const [o, ci, kh, kw] = w.shape as [number, number, number, number];
    if (!sameDim(c, ci)) this.fail('Conv', label, shapes, `channels differ (${c} vs ${ci})`);
    if (typeof h !== 'number' || typeof wd !== 'number')
      this.fail('Conv', label, shapes, 'spatial size must be static');
    const oh = Math.floor((h - kh) / stride) + 1;
    const ow = Math.floor((wd - kw) / stride) + 1;
    const inputs = bias ? [x, w, bias] : [x, w];
    return this.one('Conv', inputs, x.dtype, [n, o, oh, ow], {
      kernel_shape: attr.ints([kh, kw]),
      strides: attr.ints([stride, stride]),
    });
  }

  /** The runtime shape of `x` as an int64 vector. */
  shapeOf(x: Value): Value {
    return this.one('Shape', [x], 'int64', [x.shape.length]);
  }

  /** Expand to a shape known only at run time (`shape` int64 [rank]); `outShape` is what it will be. */
  expandTo(x: Value, shape: Value, outShape: Shape, label?: string): Value {
    const out = broadcastShapes(x.shape, outShape);
    if (!out || out.length !== outShape.length || out.some((d, i) => d !== outShape[i])) {
      this.fail('Expand', label, `${formatShape(x.shape)} -> ${formatShape(outShape)}`, 'shapes do not broadcast');
    }
    return this.one('Expand', [x, shape], x.dtype, outShape);
  }

  /** Resize (opset 13+) with explicit scales, for NCHW tensors; mode 'cubic' uses PyTorch's a = -0.75. */
  resize(x: Value, scales: readonly number[], mode: 'nearest' | 'linear' | 'cubic', label?: string): Value {
    if (scales.length !== x.shape.length) this.fail('Resize', label, formatShape(x.shape), 'one scale per axis');
    const shape = x.shape.map((d, i) => {
      if (typeof d !== 'number') {
        if (scales[i] === 1) return d;
        this.fail('Resize', label, formatShape(x.shape), `cannot scale symbolic dimension ${d}`);
      }
      return Math.floor(d * (scales[i] as number));
    });
    const roi = this.constFloat([], [0]);
    const attrs: Record<string, Attr> = {
      mode: attr.string(mode),
      coordinate_transformation_mode: attr.string('half_pixel'),
    };
    if (mode === 'cubic') attrs.cubic_coeff_a = attr.float(-0.75);
    if (mode === 'nearest') attrs.nearest_mode = attr.string('floor');
    return this.one('Resize', [x, roi, this.constFloat(scales)], x.dtype, shape, attrs);
  }

  // --- reductions ----------------------------------------------------------------------------------------------

  private reduced(x: Value, axes: readonly number[], keepdims: boolean): Dim[] {
    const norm = axes.map((a) => normAxis(a, x.shape.length));
    return x.shape.flatMap((d, i) => (norm.includes(i) ? (keepdims ? [1] : []) : [d]));
  }

  reduceMean(x: Value, axes: readonly number[], keepdims = true): Value {
    return this.one('ReduceMean', [x], x.dtype, this.reduced(x, axes, keepdims), {
      axes: attr.ints(axes),
      keepdims: attr.int(keepdims ? 1 : 0),
    });
  }

  reduceMax(x: Value, axes: readonly number[], keepdims = true): Value {
    return this.one('ReduceMax', [x], x.dtype, this.reduced(x, axes, keepdims), {
      axes: attr.ints(axes),
      keepdims: attr.int(keepdims ? 1 : 0),
    });
  }

  /** ReduceSum takes its axes as an input since opset 13. */
  reduceSum(x: Value, axes: readonly number[], keepdims = true): Value {
    return this.one('ReduceSum', [x, this.constInt64(axes)], x.dtype, this.reduced(x, axes, keepdims), {
      keepdims: attr.int(keepdims ? 1 : 0),
    });
  }

  topk(x: Value, k: number, axis = -1, largest = true, label?: string): [Value, Value] {
    const ax = normAxis(axis, x.shape.length);
    const d = x.shape[ax];
    if (typeof d === 'number' && k > d)
      this.fail('TopK', label, formatShape(x.shape), `k=${k} exceeds the axis size ${d}`);
    const shape = [...x.shape];
    shape[ax] = k;
    const [v, i] = this.node(
      'TopK',
      [x, this.constInt64([k])],
      [
        { dtype: x.dtype, shape },
        { dtype: 'int64', shape },
      ],
      { axis: attr.int(axis), largest: attr.int(largest ? 1 : 0), sorted: attr.int(1) },
    );
    return [v as Value, i as Value];
  }

  build(): Graph {
    if (this.outputs.length === 0) throw new GraphShapeError(`graph ${this.name} has no outputs`);
    return {
      name: this.name,
      inputs: [...this.inputs],
      outputs: [...this.outputs],
      nodes: this.withoutOutputIdentities(),
      initializers: new Map(this.initializers),
      values: new Map(this.values),
    };
  }

  /**
   * The nodes, with each output that `output` named apart from its value written by the value's own node instead
   * of an Identity: ONNX Runtime keeps an Identity to a graph output, a copy (a training step's whole next state,
   * every step). Kept where the value is a graph input, an initializer or already an output.
   */
  private withoutOutputIdentities(): Node[] {
    const outputs = new Set(this.outputs.map((v) => v.name));
    const produced = new Set(this.nodes.flatMap((n) => n.outputs));
    const rename = new Map<string, string>();
    const kept = this.nodes.filter((n) => {
      const [src] = n.inputs;
      const [dst] = n.outputs;
      if (n.op !== 'Identity' || n.domain || !src || !dst || !outputs.has(dst)) return true;
      if (!produced.has(src) || outputs.has(src) || rename.has(src)) return true;
      rename.set(src, dst);
      return false;
    });
    if (rename.size === 0) return kept;
    const to = (name: string) => rename.get(name) ?? name;
    return kept.map((n) => ({ ...n, inputs: n.inputs.map(to), outputs: n.outputs.map(to) }));
  }
}
