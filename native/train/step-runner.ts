/**
 * Keeps the training state (student parameters, AdamW moments, teacher, centre) as tensors between steps and runs
 * the step graph: feeds the state and the batch, takes the next state from the outputs. On a GPU (WebGPU) the state
 * stays in GPU memory between steps (the step's state outputs are kept on the device and fed back as the next
 * step's inputs); only the batch, the scalars and the metrics cross to and from the host. The host copy in
 * `TrainState` is brought up to date by `sync` (checkpoints, previews, export).
 */
import { FlaneurError } from '../api/errors.js';
import { ModelSession, ort, type RuntimeSettings } from '../runtime/session.js';
import { DeviceState, type StepTransfer } from './device-state.js';
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
  /** 1 keeps the head's last layer this step (graphs built with freezeLastLayer). */
  freeze_last?: number;
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

/** Test hook of every step runner: the GPU is lost at step `step` (session and device state released, it throws). */
export async function loseSimulatedGpu(provider: string, step: number, release: () => Promise<void>): Promise<void> {
  if (provider === 'cpu' || simulatedLossAt() !== step) return;
  await release();
  throw new FlaneurError('INTERNAL', `The GPU device was lost at step ${step} (simulated: FLANEUR_SIMULATE_GPU_LOSS).`);
}

export type { StepTransfer } from './device-state.js';

/** Test hook: `FLANEUR_SIMULATE_GPU_LOSS=N` loses the GPU at step N (its session and state are dropped). */
export function simulatedLossAt(): number | null {
  const n = Number(process.env.FLANEUR_SIMULATE_GPU_LOSS);
  return Number.isInteger(n) && n > 0 ? n : null;
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
    /** The state (`p/…`, `t/…`, `m/…`, `v/…`, `center`) while it stays in GPU memory between steps. */
    private readonly state: DeviceState,
  ) {}

  static async create(
    graph: DinoStepGraph,
    shapes: { globals: number[]; locals: number[] | null; dpGlobal?: number[] | null; dpLocal?: number[] | null },
    settings?: RuntimeSettings,
    betas: [number, number] = [0.9, 0.999],
    /** Keep the state on a GPU between steps (default); false copies it through host memory every step. */
    keepStateOnDevice = true,
  ): Promise<StepRunner> {
    const pairs = StepRunner.stateOutputs(graph);
    const keepOnDevice = keepStateOnDevice ? DeviceState.outputs(pairs) : [];
    // A GPU failure is the trainer's to handle (it goes on on the CPU from its checkpoint).
    const session = await ModelSession.create(graph.onnx, settings, {
      keepOnDevice,
      cpuFallback: false,
      memoryArena: false,
    });
    const { provider } = session.info;
    const state = new DeviceState(pairs, keepStateOnDevice && provider === 'webgpu', provider, settings);
    return new StepRunner(graph, session, { dpGlobal: null, dpLocal: null, ...shapes }, betas, state);
  }

  /** [state input, the output that becomes it next step]. */
  private static stateOutputs(graph: DinoStepGraph): [string, string][] {
    const pairs: [string, string][] = [];
    for (const n of graph.trainable)
      pairs.push([`p/${n}`, `p_next/${n}`], [`m/${n}`, `m_next/${n}`], [`v/${n}`, `v_next/${n}`]);
    for (const n of graph.params.keys()) pairs.push([`t/${n}`, `t_next/${n}`]);
    pairs.push(['center', 'center_next']);
    return pairs;
  }

  get provider(): string {
    return this.session.info.provider;
  }

  /** The session's intra-op threads. */
  get threads(): number {
    return this.session.info.threads;
  }

  /** The state feeds from the host copy. */
  private hostStateFeeds(state: TrainState): Map<string, ort.Tensor> {
    const tensor = (data: Float32Array, shape: readonly number[]) => new ort.Tensor('float32', data, shape as number[]);
    const feeds = new Map<string, ort.Tensor>();
    feeds.set('center', tensor(state.center, [1, state.center.length]));
    for (const [name, shape] of this.graph.params) {
      feeds.set(`p/${name}`, tensor(state.params.get(name) as Float32Array, shape));
      feeds.set(`t/${name}`, tensor(state.teacher.get(name) as Float32Array, shape));
    }
    for (const name of this.graph.trainable) {
      const shape = this.graph.params.get(name) as number[];
      feeds.set(`m/${name}`, tensor(state.m.get(name) as Float32Array, shape));
      feeds.set(`v/${name}`, tensor(state.v.get(name) as Float32Array, shape));
    }
    return feeds;
  }

  /** The inputs of step `state.step + 1`: the batch, the scalars and the state (on the device when it lives there). */
  stepFeeds(
    state: TrainState,
    batch: StepBatch,
    s: StepScalars,
    stateFeeds: ReadonlyMap<string, ort.Tensor> = this.state.feeds(() => this.hostStateFeeds(state)),
  ): Record<string, ort.Tensor> {
    const t = state.step + 1;
    const tensor = (data: Float32Array, shape: readonly number[]) => new ort.Tensor('float32', data, shape as number[]);
    const scalar = (x: number) => new ort.Tensor('float32', Float32Array.of(x), []);
    const feeds: Record<string, ort.Tensor> = {
      globals: tensor(batch.globals, this.shapes.globals),
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
    if (this.session.inputNames.includes('freeze_last')) feeds.freeze_last = scalar(s.freeze_last ?? 0);
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
    for (const [name, v] of stateFeeds) feeds[name] = v;
    return feeds;
  }

  /** Runs one step on `state` (updated in place, or on the device: then `sync` before reading it) and its metrics. */
  async step(state: TrainState, batch: StepBatch, s: StepScalars): Promise<StepMetrics> {
    const t = state.step + 1;
    await loseSimulatedGpu(this.provider, t, () => this.release());
    const stateFeeds = this.state.feeds(() => this.hostStateFeeds(state));
    const feeds = this.stepFeeds(state, batch, s, stateFeeds);
    // Every update of this graph waits for the global gradient norm (clipping), after every other read of the
    // state: the state can be updated in place.
    const host = this.state.hostFetches(stateFeeds, this.session.outputNames, true);
    const out = await this.session.run(feeds, host?.fetches);
    const get = (n: string) => {
      const v = out[n];
      if (!v) throw new Error(`the step graph has no output ${n}`);
      if (v.location === 'gpu-buffer') throw new Error(`output ${n} is on the device`);
      return v.data as Float32Array;
    };
    // Kept on the device, or on the host: in the arrays written in place (or else the outputs read back).
    if (!this.state.absorb(feeds, stateFeeds, out)) {
      const next = (input: string, output: string) => host?.next(input) ?? get(output);
      for (const name of this.graph.trainable) {
        state.params.set(name, next(`p/${name}`, `p_next/${name}`));
        state.m.set(name, next(`m/${name}`, `m_next/${name}`));
        state.v.set(name, next(`v/${name}`, `v_next/${name}`));
      }
      for (const name of this.graph.params.keys()) state.teacher.set(name, next(`t/${name}`, `t_next/${name}`));
      state.center = next('center', 'center_next');
    }
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

  /**
   * The teacher's parameters for another session on the same device (the Dora attention pass): GPU tensors while
   * the state lives there, else the host copy.
   */
  teacherWeights(state: TrainState): Map<string, Float32Array | ort.Tensor> {
    if (!this.state.onDevice) return new Map(state.teacher);
    return new Map([...this.graph.params.keys()].map((n) => [n, this.state.get(`t/${n}`) as ort.Tensor]));
  }

  /** Bytes crossing host<->device in the last step (null on the CPU provider, where there is no device). */
  get lastTransfer(): StepTransfer | null {
    return this.state.lastTransfer;
  }

  /** Copies the state kept on the device into `state` (no-op when the host copy is current). */
  async sync(state: TrainState): Promise<void> {
    const host = await this.state.read();
    if (!host) return;
    const get = (n: string) => host.get(n) as Float32Array;
    for (const name of this.graph.trainable) {
      state.params.set(name, get(`p/${name}`));
      state.m.set(name, get(`m/${name}`));
      state.v.set(name, get(`v/${name}`));
    }
    for (const name of this.graph.params.keys()) state.teacher.set(name, get(`t/${name}`));
    state.center = get('center');
  }

  async release(): Promise<void> {
    await this.state.release();
    await this.session.release();
  }
}
