/**
 * One NeCo step as one ONNX graph (models/neco.ts for the head and the loss): student forward on every crop and
 * teacher forward on the global crops (any ViT of models/vit.ts, registers dropped), the NeCo head on every patch,
 * RoI-align of both sides of each crop pair to their common box (host-computed matrices, graph/roi-align.ts), the
 * reference patches gathered from the queue rows the host drew and the teacher's own current embeddings (the
 * official update_queue runs before the draw, so a draw can hit this step's teacher patches), the loss, our
 * autodiff, AdamW with a backbone and a head learning rate (no decay on biases and 1-D parameters, as
 * exclude_norm_bias), and the EMA teacher (backbone and head). The teacher's patch embeddings come out so the host
 * can push them into its queue. No gradient clipping (the official grad_norm_clipping is null); the norm is
 * reported.
 */
import { gradients } from '../graph/autodiff/grad.js';
import { GraphBuilder } from '../graph/builder.js';
import type { SwapRelaxation } from '../graph/diffsort.js';
import type { Value } from '../graph/ir.js';
import { toOnnx } from '../graph/onnx.js';
import { adamW, emaUpdate, globalNorm, type ParamGroupEntry } from '../graph/optim.js';
import { roiAlign } from '../graph/roi-align.js';
import {
  buildNecoHead,
  isNecoHeadParam,
  type NecoHeadConfig,
  necoHeadParamShapes,
  necoLoss,
  necoPairs,
} from '../models/neco.js';
import { buildViT, gridOf, type ViTConfig, vitParamShapes } from '../models/vit.js';
import { ModelSession, ort, type RuntimeSettings } from '../runtime/session.js';
import { DeviceState, type StepTransfer } from './device-state.js';
import { decays, trainStateInputs } from './dino-step.js';
import { loseSimulatedGpu, type TrainState } from './step-runner.js';

export interface NecoStepConfig {
  vit: ViTConfig;
  head: NecoHeadConfig;
  /** Images per step. */
  batch: number;
  globalSize: number;
  globalCrops: number;
  localSize: number;
  localCrops: number;
  /** Side of the aligned patch grid (7 in the paper: 49 patches). */
  aligned: number;
  steepness: { student: number; teacher: number };
  relaxation?: SwapRelaxation;
  /** Feed drop-path masks for the student (inputs dp_global, dp_local). */
  dropPath?: boolean;
  emitGradients?: boolean;
  adam?: { beta1?: number; beta2?: number; eps?: number };
}

export interface NecoStepGraph {
  onnx: Uint8Array;
  params: Map<string, number[]>;
  trainable: string[];
  scalars: readonly string[];
  /** Patches per global / local crop, aligned patches per pair, pairs of each kind. */
  dims: {
    globalPatches: number;
    localPatches: number;
    aligned: number;
    pairs: number;
    globalPairs: number;
    localPairs: number;
  };
}

export const NECO_SCALARS = ['lr', 'lr_head', 'wd', 'bc1', 'bc2', 'ema'] as const;

export function necoParamShapes(c: Pick<NecoStepConfig, 'vit' | 'head'>): Map<string, number[]> {
  return new Map([...vitParamShapes(c.vit), ...necoHeadParamShapes(c.head)]);
}

export function buildNecoStep(c: NecoStepConfig): NecoStepGraph {
  const b = new GraphBuilder('neco_step');
  const shapes = necoParamShapes(c);
  const trainable = [...shapes.keys()];
  const B = c.batch;
  const G = c.globalCrops;
  const L = c.localCrops;
  const K = c.head.outDim;
  const A = c.aligned * c.aligned;
  const gGrid = gridOf(c.vit, c.globalSize, c.globalSize);
  const lGrid = gridOf(c.vit, c.localSize, c.localSize);
  const Ng = gGrid.h * gGrid.w;
  const Nl = lGrid.h * lGrid.w;
  const pairs = necoPairs(G, L);
  const P = pairs.length;
  const Pg = pairs.filter((p) => !p.local).length;
  const Pl = P - Pg;

  const globals = b.input('globals', 'float32', [G * B, 3, c.globalSize, c.globalSize]);
  const locals = L > 0 ? b.input('locals', 'float32', [L * B, 3, c.localSize, c.localSize]) : null;
  const roiTeacher = b.input('roi_teacher', 'float32', [P, B, A, Ng]);
  const roiGlobal = Pg > 0 ? b.input('roi_student_global', 'float32', [Pg, B, A, Ng]) : null;
  const roiLocal = Pl > 0 ? b.input('roi_student_local', 'float32', [Pl, B, A, Nl]) : null;
  const refQueue = b.input('ref_queue', 'float32', [P * B * A, K]);
  const refIndex = b.input('ref_index', 'int64', [P * B * A]);
  const { student, teacher, state } = trainStateInputs(b, shapes, trainable);
  const s = Object.fromEntries(NECO_SCALARS.map((n) => [n, b.input(n, 'float32', [])])) as Record<
    (typeof NECO_SCALARS)[number],
    Value
  >;
  const dpGlobal = c.dropPath ? b.input('dp_global', 'float32', [c.vit.depth, G * B]) : undefined;
  const dpLocal = c.dropPath && L > 0 ? b.input('dp_local', 'float32', [c.vit.depth, L * B]) : undefined;

  const from = (m: Map<string, Value>) => (name: string) => {
    const v = m.get(name);
    if (!v) throw new Error(`no parameter ${name}`);
    return v;
  };
  /** Head embeddings of every patch of `x`, as [crops, B, N, K]. */
  const embed = (params: Map<string, Value>, x: Value, crops: number, n: number, dp?: Value) => {
    const patches = buildViT(b, c.vit, from(params), x, { patches: true }, 'matmul', dp).patches as Value;
    return b.reshape(buildNecoHead(b, c.head, from(params), patches), [crops, B, n, K]);
  };
  const sGlobal = b.scope('student', () => embed(student, globals, G, Ng, dpGlobal));
  const sLocal = locals ? b.scope('student_local', () => embed(student, locals, L, Nl, dpLocal)) : null;
  const tGlobal = b.scope('teacher', () => embed(teacher, globals, G, Ng));
  const crop = (v: Value, i: number) => b.slice(v, [i], [i + 1], [0]);

  const [alignedStudent, alignedTeacher] = b.scope('roi_align', () => {
    const sParts: Value[] = [];
    const tParts: Value[] = [];
    for (const [i, p] of pairs.entries()) {
      const tokens = p.local ? crop(sLocal as Value, p.v - G) : crop(sGlobal, p.v);
      const weights = crop((p.local ? roiLocal : roiGlobal) as Value, p.slot);
      sParts.push(roiAlign(b, tokens, weights));
      tParts.push(roiAlign(b, crop(tGlobal, p.g), crop(roiTeacher, i)));
    }
    return [b.concat(sParts, 0), b.concat(tParts, 0)];
  });
  // Reference rows: this step's teacher patches (the rows just pushed) or older queue rows the host copied in.
  const refs = b.reshape(b.gather(b.concat([b.reshape(tGlobal, [G * B * Ng, K]), refQueue], 0), refIndex, 0), [
    P,
    B,
    A,
    K,
  ]);
  const loss = necoLoss(b, {
    student: alignedStudent,
    teacher: alignedTeacher,
    references: refs,
    steepness: c.steepness,
    ...(c.relaxation ? { relaxation: c.relaxation } : {}),
  });

  const wrt = trainable.map((n) => student.get(n) as Value);
  const grads = gradients(b, loss, wrt);
  const rawGrads = trainable.map((n) => grads.get(`p/${n}`) as Value);
  const norm = globalNorm(b, rawGrads);
  const group = (head: boolean): ParamGroupEntry[] =>
    trainable
      .map((name, i) => ({
        name,
        param: student.get(name) as Value,
        grad: rawGrads[i] as Value,
        decay: decays(shapes.get(name) as number[]),
      }))
      .filter((e) => isNecoHeadParam(e.name) === head);
  // The global norm as a barrier: every update waits for all gradients, so the runner updates the state in place.
  const common = { weightDecay: s.wd, biasCorrection1: s.bc1, biasCorrection2: s.bc2, ...c.adam, after: norm };
  const updated = [
    ...adamW(b, group(false), state, { lr: s.lr, ...common }),
    ...adamW(b, group(true), state, { lr: s.lr_head, ...common }),
  ];

  b.output(loss, 'loss');
  b.output(norm, 'grad_norm');
  b.output(b.reshape(tGlobal, [G * B * Ng, K]), 'teacher_patches');
  const newStudent = new Map(updated.map((u) => [u.name, u.param]));
  for (const u of updated) {
    b.output(u.param, `p_next/${u.name}`);
    b.output(u.state[0] as Value, `m_next/${u.name}`);
    b.output(u.state[1] as Value, `v_next/${u.name}`);
  }
  for (const [name, t] of teacher) b.output(emaUpdate(b, t, newStudent.get(name) as Value, s.ema), `t_next/${name}`);
  if (c.emitGradients) for (const [i, n] of trainable.entries()) b.output(rawGrads[i] as Value, `grad/${n}`);
  return {
    onnx: toOnnx(b.build()),
    params: shapes,
    trainable,
    scalars: NECO_SCALARS,
    dims: { globalPatches: Ng, localPatches: Nl, aligned: A, pairs: P, globalPairs: Pg, localPairs: Pl },
  };
}

export interface NecoBatch {
  globals: Float32Array;
  locals?: Float32Array;
  /** [P, B, A, Ng] teacher-side RoI matrices (in the global crop's grid), [Pg|Pl, B, A, N] student-side ones. */
  roiTeacher: Float32Array;
  roiStudentGlobal?: Float32Array;
  roiStudentLocal?: Float32Array;
  /** [P*B*A, K] queue rows copied in, and per reference the row of concat(teacher patches, refQueue). */
  refQueue: Float32Array;
  refIndex: BigInt64Array;
  dpGlobal?: Float32Array;
  dpLocal?: Float32Array;
}

export interface NecoScalars {
  lr: number;
  lrHead: number;
  wd: number;
  ema: number;
}

export interface NecoMetrics {
  loss: number;
  gradNorm: number;
  /** The teacher's head embeddings of every global-crop patch [G*B*Ng, K] (for the queue). */
  teacherPatches: Float32Array;
  gradients?: Map<string, Float32Array>;
}

/** Feeds the training state and a batch to the NeCo step graph and takes the next state from its outputs. */
export class NecoStepRunner {
  private constructor(
    private readonly graph: NecoStepGraph,
    private readonly config: NecoStepConfig,
    private readonly session: ModelSession,
    private readonly betas: [number, number],
    /** The state (`p/…`, `t/…`, `m/…`, `v/…`) while it stays in GPU memory between steps. */
    private readonly state: DeviceState,
  ) {}

  /**
   * `keepStateOnDevice` (default): on WebGPU the state stays in GPU memory between steps; a GPU failure is then
   * thrown to the trainer (which goes on on the CPU from its checkpoint) instead of handled by the session.
   */
  static async create(
    graph: NecoStepGraph,
    config: NecoStepConfig,
    settings?: RuntimeSettings,
    keepStateOnDevice = true,
  ): Promise<NecoStepRunner> {
    const pairs = graph.trainable.flatMap((n) =>
      (['p', 'm', 'v', 't'] as const).map((k) => [`${k}/${n}`, `${k}_next/${n}`] as const),
    );
    const keepOnDevice = keepStateOnDevice ? DeviceState.outputs(pairs) : [];
    const session = await ModelSession.create(graph.onnx, settings, {
      keepOnDevice,
      cpuFallback: !keepStateOnDevice,
      memoryArena: false,
    });
    const { provider } = session.info;
    const state = new DeviceState(pairs, keepStateOnDevice && provider === 'webgpu', provider, settings);
    const betas: [number, number] = [config.adam?.beta1 ?? 0.9, config.adam?.beta2 ?? 0.999];
    return new NecoStepRunner(graph, config, session, betas, state);
  }

  get provider(): string {
    return this.session.info.provider;
  }

  /** The session's intra-op threads. */
  get threads(): number {
    return this.session.info.threads;
  }

  /** Bytes crossing host<->device in the last step (null on the CPU provider). */
  get lastTransfer(): StepTransfer | null {
    return this.state.lastTransfer;
  }

  /** The teacher's parameters: GPU tensors while the state lives there, else the host copy. */
  teacherWeights(state: TrainState): Map<string, Float32Array | ort.Tensor> {
    if (!this.state.onDevice) return new Map(state.teacher);
    return new Map(
      [...this.graph.params.keys()].map((n) => [n, this.state.get(`t/${n}`) ?? (state.teacher.get(n) as Float32Array)]),
    );
  }

  /** Copies the state kept on the device into `state` (no-op when the host copy is current). */
  async sync(state: TrainState): Promise<void> {
    await this.state.readInto({ p: state.params, m: state.m, v: state.v, t: state.teacher });
  }

  /** The state feeds from the host copy. */
  private hostStateFeeds(state: TrainState): Map<string, ort.Tensor> {
    const tensor = (data: Float32Array, shape: readonly number[]) => new ort.Tensor('float32', data, shape as number[]);
    const feeds = new Map<string, ort.Tensor>();
    for (const [name, shape] of this.graph.params) {
      feeds.set(`p/${name}`, tensor(state.params.get(name) as Float32Array, shape));
      feeds.set(`t/${name}`, tensor(state.teacher.get(name) as Float32Array, shape));
      feeds.set(`m/${name}`, tensor(state.m.get(name) as Float32Array, shape));
      feeds.set(`v/${name}`, tensor(state.v.get(name) as Float32Array, shape));
    }
    return feeds;
  }

  async step(state: TrainState, batch: NecoBatch, s: NecoScalars): Promise<NecoMetrics> {
    const c = this.config;
    const d = this.graph.dims;
    const B = c.batch;
    const t = state.step + 1;
    const tensor = (data: Float32Array, shape: readonly number[]) => new ort.Tensor('float32', data, shape as number[]);
    const scalar = (x: number) => new ort.Tensor('float32', Float32Array.of(x), []);
    const feeds: Record<string, ort.Tensor> = {
      globals: tensor(batch.globals, [c.globalCrops * B, 3, c.globalSize, c.globalSize]),
      roi_teacher: tensor(batch.roiTeacher, [d.pairs, B, d.aligned, d.globalPatches]),
      ref_queue: tensor(batch.refQueue, [d.pairs * B * d.aligned, c.head.outDim]),
      ref_index: new ort.Tensor('int64', batch.refIndex, [d.pairs * B * d.aligned]),
      lr: scalar(s.lr),
      lr_head: scalar(s.lrHead),
      wd: scalar(s.wd),
      bc1: scalar(1 - this.betas[0] ** t),
      bc2: scalar(1 - this.betas[1] ** t),
      ema: scalar(s.ema),
    };
    if (c.localCrops > 0 && batch.locals)
      feeds.locals = tensor(batch.locals, [c.localCrops * B, 3, c.localSize, c.localSize]);
    if (d.globalPairs > 0 && batch.roiStudentGlobal)
      feeds.roi_student_global = tensor(batch.roiStudentGlobal, [d.globalPairs, B, d.aligned, d.globalPatches]);
    if (d.localPairs > 0 && batch.roiStudentLocal)
      feeds.roi_student_local = tensor(batch.roiStudentLocal, [d.localPairs, B, d.aligned, d.localPatches]);
    if (c.dropPath) {
      const ones = (n: number) => new Float32Array(n).fill(1);
      feeds.dp_global = tensor(batch.dpGlobal ?? ones(c.vit.depth * c.globalCrops * B), [
        c.vit.depth,
        c.globalCrops * B,
      ]);
      if (c.localCrops > 0)
        feeds.dp_local = tensor(batch.dpLocal ?? ones(c.vit.depth * c.localCrops * B), [c.vit.depth, c.localCrops * B]);
    }
    await loseSimulatedGpu(this.provider, t, () => this.release());
    const stateFeeds = this.state.feeds(() => this.hostStateFeeds(state));
    for (const [name, v] of stateFeeds) feeds[name] = v;
    // Every update waits for the global gradient norm (AdamW's `after`): the state can be updated in place.
    const host = this.state.hostFetches(stateFeeds, this.session.outputNames, true);
    const out = await this.session.run(feeds, host?.fetches);
    const get = (n: string) => {
      const v = out[n];
      if (!v) throw new Error(`the NeCo step graph has no output ${n}`);
      if (v.location === 'gpu-buffer') throw new Error(`output ${n} is on the device`);
      return v.data as Float32Array;
    };
    // Kept on the device, or on the host: in the pre-allocated arrays (or else the outputs read back).
    if (!this.state.absorb(feeds, stateFeeds, out)) {
      const next = (input: string, output: string) => host?.next(input) ?? get(output);
      for (const name of this.graph.trainable) {
        state.params.set(name, next(`p/${name}`, `p_next/${name}`));
        state.m.set(name, next(`m/${name}`, `m_next/${name}`));
        state.v.set(name, next(`v/${name}`, `v_next/${name}`));
        state.teacher.set(name, next(`t/${name}`, `t_next/${name}`));
      }
    }
    state.step = t;
    const metrics: NecoMetrics = {
      loss: get('loss')[0] as number,
      gradNorm: get('grad_norm')[0] as number,
      teacherPatches: get('teacher_patches'),
    };
    if (out[`grad/${this.graph.trainable[0]}`])
      metrics.gradients = new Map(this.graph.trainable.map((n) => [n, get(`grad/${n}`)]));
    return metrics;
  }

  async release(): Promise<void> {
    await this.state.release();
    await this.session.release();
  }
}
