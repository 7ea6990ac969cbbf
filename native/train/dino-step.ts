/**
 * One DINO training step as one ONNX graph: student forward on every crop, teacher forward on the global crops,
 * DINO loss, gradients (our autodiff), global-norm clipping, AdamW with parameter groups, EMA teacher, centre
 * update. Parameters, optimizer state, teacher and centre are inputs and come back as outputs, so the trainer
 * keeps them between steps; schedules are scalar inputs. Static shapes (a graph per batch size and crop size).
 */
import { gradients } from '../graph/autodiff/grad.js';
import { GraphBuilder } from '../graph/builder.js';
import type { Value } from '../graph/ir.js';
import { toOnnx } from '../graph/onnx.js';
import { adamW, clipByGlobalNorm, emaUpdate, globalNorm, type ParamGroupEntry } from '../graph/optim.js';
import { buildDinoHead, type DinoHeadConfig, dinoHeadParamShapes } from '../models/dino-head.js';
import { dinoLoss, doraLoss, koleoLoss, meanEntropy, updateCenter } from '../models/dino-loss.js';
import { buildViT, type ViTConfig, vitParamShapes } from '../models/vit.js';

export interface DinoStepConfig {
  vit: ViTConfig;
  head: DinoHeadConfig;
  /** Images per crop. */
  batch: number;
  globalSize: number;
  globalCrops: number;
  localSize: number;
  localCrops: number;
  /** Parameters that are not trained (still EMA'ed into the teacher). */
  frozen?: readonly string[];
  /** Feed drop-path masks (inputs dp_global, dp_local). */
  dropPath?: boolean;
  /**
   * Dora: the teacher's logits on each unmasked frame come in as `teacher_logits` [B, out] (computed in the pass
   * that also gives its attention for the masks, dora-clips.ts), and the `globalCrops` student globals are that many
   * object-masked views of the same frames; loss as `doraLoss`.
   */
  dora?: boolean;
  /** Weight of the KoLeo regulariser on the student's backbone CLS of each global crop (DINOv2: 0.1); 0: none. */
  koleo?: number;
  /**
   * DINO's freeze_last_layer: a scalar input `freeze_last` (1 = keep the head's last layer and its moments as they
   * are this step; the teacher still takes its EMA step towards it). In the graph, so that state kept on a GPU
   * between steps never has to come back to the host for it.
   */
  freezeLastLayer?: boolean;
  /** Also output the raw gradients (grad/<name>), for checks. */
  emitGradients?: boolean;
  adam?: { beta1?: number; beta2?: number; eps?: number };
}

export interface DinoStepGraph {
  onnx: Uint8Array;
  /** All model parameters (backbone then head) with shapes, canonical names. */
  params: Map<string, number[]>;
  trainable: string[];
  /** Scalar inputs the trainer must feed each step. */
  scalars: readonly string[];
}

export const STEP_SCALARS = [
  'lr',
  'wd',
  'bc1',
  'bc2',
  'ema',
  'center_momentum',
  'student_temp',
  'teacher_temp',
  'max_norm',
] as const;

/** The head's last layer, which DINO's freeze_last_layer keeps fixed for the first steps. */
export const LAST_LAYER = 'head.last_layer.weight_v';

/** DINO's rule: no weight decay on biases and other one-dimensional parameters. */
export function decays(shape: readonly number[]): boolean {
  return shape.length > 1;
}

export function dinoParamShapes(c: Pick<DinoStepConfig, 'vit' | 'head'>): Map<string, number[]> {
  return new Map([...vitParamShapes(c.vit), ...dinoHeadParamShapes(c.head)]);
}

/**
 * The graph inputs of a training state, in the names every step graph uses: student parameters `p/…`, teacher
 * `t/…`, and the AdamW moments `m/…`, `v/…` of the trainable ones.
 */
export function trainStateInputs(
  b: GraphBuilder,
  shapes: ReadonlyMap<string, number[]>,
  trainable: readonly string[],
): { student: Map<string, Value>; teacher: Map<string, Value>; state: Map<string, [Value, Value]> } {
  const student = new Map<string, Value>();
  const teacher = new Map<string, Value>();
  for (const [name, shape] of shapes) student.set(name, b.input(`p/${name}`, 'float32', shape));
  for (const [name, shape] of shapes) teacher.set(name, b.input(`t/${name}`, 'float32', shape));
  const state = new Map<string, [Value, Value]>();
  for (const name of trainable) {
    const shape = shapes.get(name) as number[];
    state.set(name, [b.input(`m/${name}`, 'float32', shape), b.input(`v/${name}`, 'float32', shape)]);
  }
  return { student, teacher, state };
}

export function buildDinoStep(c: DinoStepConfig): DinoStepGraph {
  const b = new GraphBuilder('dino_step');
  const shapes = dinoParamShapes(c);
  const frozen = new Set(c.frozen ?? []);
  const trainable = [...shapes.keys()].filter((n) => !frozen.has(n));
  const B = c.batch;
  const G = c.globalCrops;
  const L = c.localCrops;

  const globals = b.input('globals', 'float32', [G * B, 3, c.globalSize, c.globalSize]);
  const teacherLogits = c.dora ? b.input('teacher_logits', 'float32', [B, c.head.outDim]) : null;
  const locals = L > 0 ? b.input('locals', 'float32', [L * B, 3, c.localSize, c.localSize]) : null;
  const { student, teacher, state } = trainStateInputs(b, shapes, trainable);
  const s = Object.fromEntries(STEP_SCALARS.map((n) => [n, b.input(n, 'float32', [])])) as Record<
    (typeof STEP_SCALARS)[number],
    Value
  >;
  const center = b.input('center', 'float32', [1, c.head.outDim]);
  const dpGlobal = c.dropPath ? b.input('dp_global', 'float32', [c.vit.depth, G * B]) : undefined;
  const dpLocal = c.dropPath && L > 0 ? b.input('dp_local', 'float32', [c.vit.depth, L * B]) : undefined;

  const from = (m: Map<string, Value>) => (name: string) => {
    const v = m.get(name);
    if (!v) throw new Error(`no parameter ${name}`);
    return v;
  };
  const backbone = (params: Map<string, Value>, x: Value, dp?: Value) =>
    buildViT(b, c.vit, from(params), x, { cls: true }, 'matmul', dp).cls as Value;
  const forward = (params: Map<string, Value>, x: Value, dp?: Value) =>
    buildDinoHead(b, c.head, from(params), backbone(params, x, dp));

  let studentCls: Value | null = null;
  const sGlobal = b.scope('student', () => {
    studentCls = backbone(student, globals, dpGlobal);
    return buildDinoHead(b, c.head, from(student), studentCls);
  });
  const sLocal = locals ? b.scope('student_local', () => forward(student, locals, dpLocal)) : null;
  const tGlobal = teacherLogits ?? b.scope('teacher', () => forward(teacher, globals));
  const studentLogits = sLocal ? b.concat([sGlobal, sLocal], 0) : sGlobal;
  const common = {
    student: studentLogits,
    teacher: tGlobal,
    center,
    studentTemp: s.student_temp,
    teacherTemp: s.teacher_temp,
    batch: B,
  };
  const { loss, teacherProbs } = c.dora
    ? doraLoss(b, { ...common, masked: G, locals: L })
    : dinoLoss(b, { ...common, crops: G + L, globals: G });

  // KoLeo on each global crop's rows of the student's backbone CLS, summed over crops (as DINOv2).
  const stop: Value[] = [];
  let total = loss;
  if (c.koleo && c.koleo > 0 && studentCls) {
    const cls = studentCls as Value;
    for (let g = 0; g < G; g++) {
      const k = koleoLoss(b, b.slice(cls, [g * B], [(g + 1) * B], [0]), B);
      stop.push(...k.stop);
      total = b.add(total, b.mul(k.loss, b.constFloat(c.koleo)));
    }
  }
  const wrt = trainable.map((n) => student.get(n) as Value);
  const grads = gradients(b, total, wrt, stop);
  const rawGrads = trainable.map((n) => grads.get(`p/${n}`) as Value);
  const norm = globalNorm(b, rawGrads);
  const clipped = clipByGlobalNorm(b, rawGrads, s.max_norm, norm);
  const entries: ParamGroupEntry[] = trainable.map((name, i) => ({
    name,
    param: student.get(name) as Value,
    grad: clipped[i] as Value,
    decay: decays(shapes.get(name) as number[]),
  }));
  const updated = adamW(b, entries, state, {
    lr: s.lr,
    weightDecay: s.wd,
    biasCorrection1: s.bc1,
    biasCorrection2: s.bc2,
    ...c.adam,
  });

  b.output(loss, 'loss');
  b.output(norm, 'grad_norm');
  b.output(meanEntropy(b, teacherProbs), 'teacher_entropy');
  b.output(updateCenter(b, center, tGlobal, s.center_momentum), 'center_next');
  if (c.freezeLastLayer) {
    const freeze = b.greater(b.input('freeze_last', 'float32', []), b.constFloat(0.5));
    for (const u of updated) {
      if (u.name !== LAST_LAYER) continue;
      const [m, v] = state.get(u.name) as [Value, Value];
      u.param = b.where(freeze, student.get(u.name) as Value, u.param);
      u.state = [b.where(freeze, m, u.state[0] as Value), b.where(freeze, v, u.state[1] as Value)];
    }
  }
  const newStudent = new Map(updated.map((u) => [u.name, u.param]));
  for (const u of updated) {
    b.output(u.param, `p_next/${u.name}`);
    b.output(u.state[0] as Value, `m_next/${u.name}`);
    b.output(u.state[1] as Value, `v_next/${u.name}`);
  }
  for (const [name, t] of teacher) {
    b.output(emaUpdate(b, t, newStudent.get(name) ?? (student.get(name) as Value), s.ema), `t_next/${name}`);
  }
  if (c.emitGradients) for (const [i, n] of trainable.entries()) b.output(rawGrads[i] as Value, `grad/${n}`);
  return { onnx: toOnnx(b.build()), params: shapes, trainable, scalars: STEP_SCALARS };
}
