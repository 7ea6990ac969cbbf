/**
 * Keeps the training state (student parameters, AdamW moments, teacher, centre) as tensors between steps and runs
 * the step graph: feeds the state and the batch, takes the next state from the outputs.
 */
import { ModelSession, ort, type RuntimeSettings } from '../runtime/session.js';
import type { DinoStepGraph } from './dino-step.js';

export interface TrainState {
  step: number;
  params: Map<string, Float32Array>;
  teacher: Map<string, Float32Array>;
  m: Map<string, Float32Array>;
  v: Map<string, Float32Array>;
  center: Float32Array;
}

export interface StepScalars {
  lr: number;
  wd: number;
  ema: number;
  center_momentum: number;
  student_temp: number;
  teacher_temp: number;
  max_norm: number;
}

export interface StepBatch {
  globals: Float32Array;
  /** Dora steps: the teacher's logits [B, out] on the unmasked view of each frame. */
  teacherLogits?: Float32Array;
  locals?: Float32Array;
  dpGlobal?: Float32Array;
  dpLocal?: Float32Array;
}

export interface StepMetrics {
  loss: number;
  gradNorm: number;
  teacherEntropy: number;
  /** Raw gradients, when the graph emits them. */
  gradients?: Map<string, Float32Array>;
}

export function initialState(
  graph: DinoStepGraph,
  params: Map<string, Float32Array>,
  teacher?: Map<string, Float32Array>,
): TrainState {
  const zeros = (n: string) => new Float32Array((graph.params.get(n) as number[]).reduce((a, d) => a * d, 1));
  for (const [name, shape] of graph.params) {
    const p = params.get(name);
    const n = shape.reduce((a, d) => a * d, 1);
    if (!p || p.length !== n)
      throw new Error(`initial parameter ${name} is missing or has ${p?.length} values, not ${n}`);
  }
  const outDim = graph.params.get('head.last_layer.weight_v')?.[0] ?? 0;
  return {
    step: 0,
    params: new Map([...params].map(([k, v]) => [k, v.slice()])),
    teacher: new Map([...(teacher ?? params)].map(([k, v]) => [k, v.slice()])),
    m: new Map(graph.trainable.map((n) => [n, zeros(n)])),
    v: new Map(graph.trainable.map((n) => [n, zeros(n)])),
    center: new Float32Array(outDim),
  };
}

export class StepRunner {
  private constructor(
    private readonly graph: DinoStepGraph,
    private readonly session: ModelSession,
    private readonly shapes: {
      globals: number[];
      locals: number[] | null;
      dpGlobal: number[] | null;
      dpLocal: number[] | null;
    },
    private readonly betas: [number, number],
  ) {}

  static async create(
    graph: DinoStepGraph,
    shapes: { globals: number[]; locals: number[] | null; dpGlobal?: number[] | null; dpLocal?: number[] | null },
    settings?: RuntimeSettings,
    betas: [number, number] = [0.9, 0.999],
  ): Promise<StepRunner> {
    const session = await ModelSession.create(graph.onnx, settings);
    return new StepRunner(graph, session, { dpGlobal: null, dpLocal: null, ...shapes }, betas);
  }

  get provider(): string {
    return this.session.info.provider;
  }

  /** Runs one step on `state` (updated in place) and returns its metrics. */
  async step(state: TrainState, batch: StepBatch, s: StepScalars): Promise<StepMetrics> {
    const t = state.step + 1;
    const tensor = (data: Float32Array, shape: readonly number[]) => new ort.Tensor('float32', data, shape as number[]);
    const scalar = (x: number) => new ort.Tensor('float32', Float32Array.of(x), []);
    const feeds: Record<string, ort.Tensor> = {
      globals: tensor(batch.globals, this.shapes.globals),
      center: tensor(state.center, [1, state.center.length]),
      lr: scalar(s.lr),
      wd: scalar(s.wd),
      bc1: scalar(1 - this.betas[0] ** t),
      bc2: scalar(1 - this.betas[1] ** t),
      ema: scalar(s.ema),
      center_momentum: scalar(s.center_momentum),
      student_temp: scalar(s.student_temp),
      teacher_temp: scalar(s.teacher_temp),
      max_norm: scalar(s.max_norm),
    };
    if (this.shapes.locals && batch.locals) feeds.locals = tensor(batch.locals, this.shapes.locals);
    if (batch.teacherLogits) {
      const out = state.center.length;
      feeds.teacher_logits = tensor(batch.teacherLogits, [batch.teacherLogits.length / out, out]);
    }
    if (this.shapes.dpGlobal)
      feeds.dp_global = tensor(
        batch.dpGlobal ?? new Float32Array(this.shapes.dpGlobal.reduce((a, d) => a * d, 1)).fill(1),
        this.shapes.dpGlobal,
      );
    if (this.shapes.dpLocal)
      feeds.dp_local = tensor(
        batch.dpLocal ?? new Float32Array(this.shapes.dpLocal.reduce((a, d) => a * d, 1)).fill(1),
        this.shapes.dpLocal,
      );
    for (const [name, shape] of this.graph.params) {
      feeds[`p/${name}`] = tensor(state.params.get(name) as Float32Array, shape);
      feeds[`t/${name}`] = tensor(state.teacher.get(name) as Float32Array, shape);
    }
    for (const name of this.graph.trainable) {
      const shape = this.graph.params.get(name) as number[];
      feeds[`m/${name}`] = tensor(state.m.get(name) as Float32Array, shape);
      feeds[`v/${name}`] = tensor(state.v.get(name) as Float32Array, shape);
    }
    const out = await this.session.run(feeds);
    const get = (n: string) => {
      const v = out[n];
      if (!v) throw new Error(`the step graph has no output ${n}`);
      return v.data as Float32Array;
    };
    for (const name of this.graph.trainable) {
      state.params.set(name, get(`p_next/${name}`));
      state.m.set(name, get(`m_next/${name}`));
      state.v.set(name, get(`v_next/${name}`));
    }
    for (const name of this.graph.params.keys()) state.teacher.set(name, get(`t_next/${name}`));
    state.center = get('center_next');
    state.step = t;
    const metrics: StepMetrics = {
      loss: get('loss')[0] as number,
      gradNorm: get('grad_norm')[0] as number,
      teacherEntropy: get('teacher_entropy')[0] as number,
    };
    if (out[`grad/${this.graph.trainable[0]}`]) {
      metrics.gradients = new Map(this.graph.trainable.map((n) => [n, get(`grad/${n}`)]));
    }
    return metrics;
  }

  async release(): Promise<void> {
    await this.session.release();
  }
}
