/**
 * FUNGI (NeurIPS 2024) gradient features as one ONNX graph per objective: the ViT forward on every view of S
 * samples, the objective's loss through a random untrained head, and the gradient of that loss w.r.t. the last
 * block's attention output projection (weight and bias). Each sample gets its own copy of that layer's weights as a
 * graph input, so its gradient is exactly its own (independent of the rest of the batch) and summed over its views.
 * The gradient [S, D, D+1] (torch layout: weight rows with the bias appended) is projected in the graph by a random
 * ±1 matrix scaled by 1/sqrt(D·(D+1)).
 */

import { Rng } from '../base/rng.js';
import { gradients } from '../graph/autodiff/grad.js';
import { GraphBuilder } from '../graph/builder.js';
import type { Value } from '../graph/ir.js';
import { toOnnx } from '../graph/onnx.js';
import { l2normalize } from '../models/dino-head.js';
import type { ImportedViT } from '../models/import-vit.js';
import { buildViT, vitParamShapes } from '../models/vit.js';

export const FUNGI_OBJECTIVES = ['kl', 'dino', 'simclr'] as const;
export type FungiObjective = (typeof FUNGI_OBJECTIVES)[number];

/** The paper's settings (fungivision configs); every one is an argument of the job. */
export interface FungiSettings {
  kl: { temperature: number };
  dino: {
    teacherTemp: number;
    studentTemp: number;
    latentDim: number;
    globalViews: number;
    localViews: number;
    globalScale: [number, number];
    localScale: [number, number];
  };
  simclr: { temperature: number; latentDim: number; numPatches: number; strideScale: number; negatives: number };
}

export const FUNGI_DEFAULTS: FungiSettings = {
  kl: { temperature: 1 },
  dino: {
    teacherTemp: 0.07,
    studentTemp: 0.1,
    latentDim: 2048,
    globalViews: 2,
    localViews: 10,
    globalScale: [0.25, 1],
    localScale: [0.05, 0.25],
  },
  simclr: { temperature: 0.07, latentDim: 96, numPatches: 4, strideScale: 6, negatives: 64 },
};

/** Views per sample of each objective. */
export function viewsPerSample(objective: FungiObjective, s: FungiSettings, size: number): number {
  if (objective === 'kl') return 1;
  if (objective === 'dino') return s.dino.globalViews + s.dino.localViews;
  const { patch, stride } = simclrGeometry(s, size);
  const n = Math.floor((size - patch) / stride) + 1;
  return n * n;
}

/** SimCLR patch views: patches of size/sqrt(numPatches) every patch/strideScale pixels (torch unfold). */
export function simclrGeometry(s: FungiSettings, size: number): { patch: number; stride: number } {
  const patch = Math.floor(size / Math.sqrt(s.simclr.numPatches));
  return { patch, stride: Math.max(1, Math.floor(patch / s.simclr.strideScale)) };
}

export function latentDim(objective: FungiObjective, s: FungiSettings, embedDim: number): number {
  return objective === 'kl' ? embedDim : objective === 'dino' ? s.dino.latentDim : s.simclr.latentDim;
}

export interface LinearHead {
  /** [out, in] row-major (torch nn.Linear layout). */
  weight: Float32Array;
  bias: Float32Array;
  out: number;
  in: number;
}

/** A random untrained nn.Linear (torch's default init: U(-1/sqrt(in), 1/sqrt(in)) for weight and bias), seeded. */
export function randomHead(inDim: number, outDim: number, seed: number): LinearHead {
  const rng = new Rng(seed);
  const bound = 1 / Math.sqrt(inDim);
  const weight = Float32Array.from({ length: outDim * inDim }, () => rng.uniform(-bound, bound));
  const bias = Float32Array.from({ length: outDim }, () => rng.uniform(-bound, bound));
  return { weight, bias, out: outDim, in: inDim };
}

/** The random heads of one objective (DINO has a separate frozen teacher head). Seeds derived from `seed`. */
export function objectiveHeads(
  objective: FungiObjective,
  s: FungiSettings,
  embedDim: number,
  seed: number,
): { student: LinearHead; teacher?: LinearHead } {
  const L = latentDim(objective, s, embedDim);
  const base = seed * 7 + FUNGI_OBJECTIVES.indexOf(objective) * 101;
  const student = randomHead(embedDim, L, base + 1);
  return objective === 'dino' ? { student, teacher: randomHead(embedDim, L, base + 2) } : { student };
}

/** Achlioptas's ±1 projection [gradDim, embedDim] (row-major, so features = grad · P), seeded. */
export function projectionMatrix(gradDim: number, embedDim: number, seed: number): Float32Array {
  const rng = new Rng(seed);
  const out = new Float32Array(gradDim * embedDim);
  for (let i = 0; i < out.length; i++) out[i] = rng.next() < 0.5 ? -1 : 1;
  return out;
}

export interface FungiGraphOptions {
  objective: FungiObjective;
  settings: FungiSettings;
  /** Square view side. */
  size: number;
  /** Samples per run of the graph. */
  samples: number;
  heads: { student: LinearHead; teacher?: LinearHead };
  /** SimCLR: rows of fixed negatives (already through the head and L2-normalised), input `negatives`. */
  negatives?: number;
  /** Also output the raw gradient `grad` [S, D, D+1] (for checks). */
  emitGradient?: boolean;
}

export interface FungiGraph {
  onnx: Uint8Array;
  views: number;
  gradDim: number;
  /** Name of the last block's attention projection parameters (fed per sample). */
  projWeight: string;
  projBias: string;
}

export function buildFungiGraph(model: Pick<ImportedViT, 'config' | 'weights'>, o: FungiGraphOptions): FungiGraph {
  const c = model.config;
  const D = c.dim;
  const S = o.samples;
  const V = viewsPerSample(o.objective, o.settings, o.size);
  const last = `blocks.${c.depth - 1}.attn.proj`;
  const b = new GraphBuilder(`fungi_${o.objective}`);
  const shapes = vitParamShapes(c);
  const params = new Map<string, Value>();
  const param = (name: string) => {
    let v = params.get(name);
    if (!v) {
      const data = model.weights.get(name);
      const shape = shapes.get(name);
      if (!data || !shape) throw new Error(`parameter ${name} is missing`);
      v = b.initializer(name, data, shape);
      params.set(name, v);
    }
    return v;
  };
  const pixels = b.input('pixels', 'float32', [S * V, 3, o.size, o.size]);
  const weight = b.input('proj_weight', 'float32', [S, D, D]);
  const bias = b.input('proj_bias', 'float32', [S, 1, D]);
  const projection = b.input('projection', 'float32', [D * (D + 1), D]);
  const cls = buildViT(b, c, param, pixels, { cls: true }, 'conv', undefined, { weight, bias, samples: S })
    .cls as Value;

  const head = (h: LinearHead, x: Value, name: string) =>
    b.linear(
      x,
      b.transpose(b.initializer(`${name}.weight`, h.weight, [h.out, h.in]), [1, 0]),
      b.initializer(`${name}.bias`, h.bias, [h.out]),
      name,
    );

  const stop: Value[] = [];
  const loss = b.scope(`loss_${o.objective}`, () => {
    if (o.objective === 'kl') {
      // KL(uniform || softmax(z / T)) with torch's kl_div(reduction='mean') for one sample, summed over samples.
      const L = o.heads.student.out;
      const z = head(o.heads.student, l2normalize(b, cls), 'head');
      const logq = b.logSoftmax(b.div(z, b.constFloat(o.settings.kl.temperature)), -1);
      const u = 1 / L;
      const perEntry = b.mul(b.sub(b.constFloat(Math.log(u)), logq), b.constFloat(u));
      return b.div(b.reduceSum(perEntry, [0, 1], false), b.constFloat(L));
    }
    if (o.objective === 'dino') {
      // Σ over the teacher's global views t and every student view v (same views included, as FUNGI) of
      // -softmax(t / Tt) · log_softmax(s_v / Ts); the teacher branch is detached, its head separate and frozen.
      const d = o.settings.dino;
      const G = d.globalViews;
      const teacherHead = o.heads.teacher;
      if (!teacherHead) throw new Error('the DINO objective needs a teacher head');
      const e = l2normalize(b, cls);
      const detached = b.identity(e);
      stop.push(detached);
      const L = o.heads.student.out;
      const st = b.reshape(head(o.heads.student, e, 'student_head'), [S, V, L]);
      const te = b.slice(b.reshape(detached, [S, V, D]), [0], [G], [1]);
      const tp = b.softmax(b.div(head(teacherHead, te, 'teacher_head'), b.constFloat(d.teacherTemp)), -1);
      const sl = b.logSoftmax(b.div(st, b.constFloat(d.studentTemp)), -1);
      const tSum = b.reduceSum(tp, [1], false); // [S, L]
      const sSum = b.reduceSum(sl, [1], false); // [S, L]
      return b.mul(b.reduceSum(b.mul(tSum, sSum), [0, 1], false), b.constFloat(-1));
    }
    // SimCLR (InfoNCE against fixed negatives) as fungivision: positives are the sample's other views; for each
    // view i: -(1/(V-1)) Σ_{j≠i} cos_ij / τ + log Σ_j exp(cos_ij) over negatives and other views (the released
    // code leaves the temperature out of the log-sum-exp); mean over views, summed over samples.
    const M = o.negatives ?? 0;
    if (M <= 0) throw new Error('the SimCLR objective needs negatives');
    const L = o.heads.student.out;
    const negatives = b.input('negatives', 'float32', [M, L]);
    const f = b.reshape(l2normalize(b, head(o.heads.student, cls, 'head')), [S, V, L]);
    const cosPos = b.matmul(f, b.transpose(f, [0, 2, 1]), 'positives'); // [S, V, V]
    const cosNeg = b.matmul(f, b.transpose(negatives, [1, 0]), 'negatives'); // [S, V, M]
    const eye = new Float32Array(V * V);
    for (let i = 0; i < V; i++) eye[i * V + i] = 1;
    const offDiag = b.initializer(
      'off_diagonal',
      eye.map((x) => 1 - x),
      [V, V],
    );
    const selfMask = b.initializer(
      'self_mask',
      eye.map((x) => x * -1e4),
      [V, V],
    );
    const others = b.mul(cosPos, offDiag);
    const positive = b.div(b.reduceSum(others, [2], false), b.constFloat(o.settings.simclr.temperature * (V - 1)));
    const all = b.concat([cosNeg, b.add(others, selfMask)], 2);
    const lse = b.log(b.reduceSum(b.exp(all), [2], false));
    const perView = b.sub(lse, positive); // [S, V]
    return b.div(b.reduceSum(perView, [0, 1], false), b.constFloat(V));
  });

  const g = gradients(b, b.reshape(loss, [1]), [weight, bias], stop);
  const gw = g.get(weight.name) as Value; // [S, D, D]
  const gb = b.reshape(g.get(bias.name) as Value, [S, D, 1]);
  const grad = b.concat([gw, gb], 2); // [S, D, D+1]
  const gradDim = D * (D + 1);
  const projected = b.mul(b.matmul(b.reshape(grad, [S, gradDim]), projection), b.constFloat(1 / Math.sqrt(gradDim)));
  b.output(projected, 'features');
  b.output(cls, 'cls');
  if (o.emitGradient) b.output(grad, 'grad');
  return { onnx: toOnnx(b.build()), views: V, gradDim, projWeight: `${last}.weight`, projBias: `${last}.bias` };
}
