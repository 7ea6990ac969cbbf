/**
 * Sessions over onnxruntime-node: created with the first provider of the preference order that accepts the
 * model (falling back down the list, with the reasons kept), and recording the provider that really runs.
 */
import os from 'node:os';
import * as ort from 'onnxruntime-node';
import { FlaneurError } from '../api/errors.js';
import { readOnnxMetadata } from '../graph/protobuf.js';
import { largestTensor, TENSOR_SIZES_KEY, type TensorSizeTable } from '../graph/tensor-sizes.js';
import {
  ortSessionFactory,
  type ProviderName,
  type ProviderStatus,
  probeProviders,
  providerOrder,
  type SessionFactory,
} from './providers.js';

export interface RuntimeSettings {
  provider: ProviderName | 'auto';
  /** Intra-op threads; null for the number of CPU cores. */
  threads: number | null;
  /**
   * Told when a session made with these settings lost its GPU mid-job and went on on the CPU (the job runner
   * records it in the job; see `ModelSession.run`).
   */
  onGpuFailure?: (failure: GpuFailure) => void;
}

/** A GPU that failed under a running session: which provider, and the runtime's reason. */
export interface GpuFailure {
  provider: ProviderName;
  reason: string;
}

export const DEFAULT_RUNTIME: RuntimeSettings = { provider: 'auto', threads: null };

export interface SessionInfo {
  provider: ProviderName;
  /** Providers tried before it, and why each failed. */
  fallbacks: { provider: ProviderName; reason: string }[];
  threads: number;
  /** Set when the session's GPU failed during a run and it went on on the CPU. */
  lostGpu?: GpuFailure;
}

export type Feeds = Record<string, ort.Tensor>;

/** A GPU's limit on one tensor's buffer, and what to call the GPU in a message. */
interface BufferLimit {
  bytes: number;
  adapter: string;
}

function formatBytes(n: number): string {
  return n >= 2 ** 30 ? `${+(n / 2 ** 30).toFixed(2)} GiB` : `${+(n / 2 ** 20).toFixed(1)} MiB`;
}

/** The tensor-size table that toOnnx writes into a model's metadata, or null (a model made elsewhere). */
function sizeTable(model: Uint8Array | string): TensorSizeTable | null {
  if (typeof model === 'string') return null;
  try {
    const json = readOnnxMetadata(model).get(TENSOR_SIZES_KEY);
    return json ? (JSON.parse(json) as TensorSizeTable) : null;
  } catch {
    return null;
  }
}

/**
 * Test hook: `FLANEUR_SIMULATE_GPU_LOSS_RUN=N` makes the Nth run on a GPU session of this process fail as a lost
 * device does (onnxruntime reports Dawn's device loss as an error from run).
 */
let gpuRuns = 0;
function simulateGpuLoss(): void {
  const n = Number(process.env.FLANEUR_SIMULATE_GPU_LOSS_RUN);
  if (!Number.isInteger(n) || n <= 0) return;
  gpuRuns++;
  if (gpuRuns === n) throw new Error(`GPU device lost (simulated: FLANEUR_SIMULATE_GPU_LOSS_RUN=${n})`);
}

/** onnxruntime's own input checks (any provider). */
const INPUT_ERROR = /invalid dimensions for input|is missing in 'feeds'|invalid input name|unexpected input data type/i;

/** onnxruntime's WebGPU provider's way of saying that a buffer could not be made (over a limit, out of memory). */
const WEBGPU_BUFFER_FAILURE = /Invalid Buffer|WebGPU validation failed|Out of memory|OutOfMemory/i;

type SessionListener = (info: SessionInfo) => void;
const sessionListeners = new Set<SessionListener>();

/**
 * Called with every session created in this process, whoever creates it (feature extraction, FUNGI, training,
 * tracking, counting, embeddings), and again when one loses its GPU mid-run and goes on on the CPU: the Device
 * view's "in use" line follows the sessions that really ran.
 * Returns the unsubscribe function.
 */
export function onSessionCreated(listener: SessionListener): () => void {
  sessionListeners.add(listener);
  return () => sessionListeners.delete(listener);
}

/** Tells the listeners about a session (a copy: a session that later goes on on the CPU changes its own info). */
function notify(info: SessionInfo): void {
  for (const listener of sessionListeners) listener({ ...info, fallbacks: [...info.fallbacks] });
}

/** Tells this process's listeners about a session made in another process (a job's worker). */
export function announceSession(info: SessionInfo): void {
  notify(info);
}

export class ModelSession {
  /** Feed shapes already checked against the GPU's buffer limit. */
  private readonly checked = new Set<string>();

  private constructor(
    private session: ort.InferenceSession | null,
    readonly info: SessionInfo,
    private limit: (BufferLimit & { table: TensorSizeTable | null }) | null = null,
    /** What a CPU session is made from when the GPU fails mid-run (null: no fallback, the error is thrown). */
    private readonly remake: {
      model: Uint8Array | string;
      settings: RuntimeSettings;
      factory: SessionFactory;
    } | null = null,
  ) {}

  /**
   * `keepOnDevice`: outputs that stay in GPU memory when the session runs on WebGPU (ort tensors with location
   * 'gpu-buffer', to be fed back as inputs of this or another WebGPU session, never read on the host: reading one
   * aborts the process in onnxruntime-node 1.30); on other providers they come back to the host as usual.
   */
  static async create(
    model: Uint8Array | string,
    settings: RuntimeSettings = DEFAULT_RUNTIME,
    deps: {
      statuses?: ProviderStatus[];
      factory?: SessionFactory;
      keepOnDevice?: readonly string[];
      /** False: a GPU failure during a run is thrown instead of handled by going on on the CPU. */
      cpuFallback?: boolean;
      /**
       * False: no CPU memory arena. A training step's large, short-lived activations then go back to the system
       * after each run instead of staying in the arena's fragmented chunks (measured: a DINO ViT-Ti/16 batch-32 step
       * peaked at 3.2 GB with the arena, 1.8 GB without, at the same speed).
       */
      memoryArena?: boolean;
      /**
       * False: the intra-op threads sleep between parallel sections instead of spinning. For long steps of a few
       * big kernels on a busy machine (measured: a ShareLock head step at 2 threads, batch/hidden 1024, load ~30,
       * 0.74 -> 0.56 CPU s and 2.7 -> 2.2 s wall; native/text/sharelock-step.ts).
       */
      spinning?: boolean;
    } = {},
  ): Promise<ModelSession> {
    const statuses = deps.statuses ?? (await probeProviders());
    const factory = deps.factory ?? ortSessionFactory;
    const threads = settings.threads ?? os.availableParallelism();
    const fallbacks: SessionInfo['fallbacks'] = [];
    for (const provider of providerOrder(statuses, settings.provider)) {
      try {
        const session = await factory(model, {
          executionProviders: [provider],
          intraOpNumThreads: threads,
          interOpNumThreads: 1,
          graphOptimizationLevel: 'all',
          logSeverityLevel: 3,
          ...(deps.memoryArena === false ? { enableCpuMemArena: false } : {}),
          ...(deps.spinning === false ? { extra: { session: { intra_op: { allow_spinning: '0' } } } } : {}),
          ...(provider === 'webgpu' && deps.keepOnDevice?.length
            ? {
                preferredOutputLocation: Object.fromEntries(deps.keepOnDevice.map((n) => [n, 'gpu-buffer' as const])),
              }
            : {}),
        });
        const adapter = statuses.find((st) => st.name === provider)?.adapter;
        const limit =
          provider === 'webgpu' && adapter
            ? {
                bytes: Math.min(adapter.maxBufferSize, adapter.maxStorageBufferBindingSize),
                adapter: adapter.description || adapter.device || adapter.vendor || 'the WebGPU adapter',
                table: sizeTable(model),
              }
            : null;
        const info: SessionInfo = { provider, fallbacks, threads };
        notify(info);
        const remake = provider !== 'cpu' && deps.cpuFallback !== false ? { model, settings, factory } : null;
        return new ModelSession(session, info, limit, remake);
      } catch (err) {
        fallbacks.push({ provider, reason: (err as Error).message.split('\n')[0] ?? String(err) });
      }
    }
    throw new FlaneurError(
      'INTERNAL',
      `No execution provider could run this model: ${fallbacks.map((f) => `${f.provider}: ${f.reason}`).join('; ')}`,
    );
  }

  get inputNames(): readonly string[] {
    return this.require().inputNames;
  }

  get outputNames(): readonly string[] {
    return this.require().outputNames;
  }

  private require(): ort.InferenceSession {
    if (!this.session) throw new FlaneurError('INTERNAL', 'This model session was released.');
    return this.session;
  }

  /**
   * On a GPU: refuses feeds that would make a tensor larger than the adapter's buffer limit, with a sentence that
   * names it, instead of letting the provider fail on an invalid buffer.
   */
  private checkLimit(feeds: Feeds): void {
    const limit = this.limit;
    if (!limit?.table) return;
    const shapes = Object.fromEntries(Object.entries(feeds).map(([k, t]) => [k, t.dims]));
    const key = JSON.stringify(shapes);
    if (this.checked.has(key)) return;
    const big = largestTensor(limit.table, shapes);
    if (big && big.bytes > limit.bytes)
      throw new FlaneurError(
        'INVALID_ARGUMENT',
        `This computation needs a ${formatBytes(big.bytes)} tensor (${big.name}, [${big.shape.join(', ')}]), more than ${limit.adapter} allows in one GPU buffer (${formatBytes(limit.bytes)}). Use a smaller batch or image size, or run it on the CPU (Device: provider cpu).`,
      );
    this.checked.add(key);
  }

  /**
   * `outputs`: the outputs to compute (default all), or a record of them whose non-null tensors are written in place
   * (pre-allocated host outputs: no allocation or copy by the runtime; a training step's state updates).
   */
  async run(
    feeds: Feeds,
    outputs?: readonly string[] | Record<string, ort.Tensor | null>,
  ): Promise<Record<string, ort.Tensor>> {
    const s = this.require();
    try {
      this.checkLimit(feeds);
      if (this.info.provider !== 'cpu') simulateGpuLoss();
      if (!outputs) return await s.run(feeds);
      return await (Array.isArray(outputs) ? s.run(feeds, outputs as string[]) : s.run(feeds, outputs));
    } catch (err) {
      const failure = this.gpuFailure(err);
      if (!failure) throw err;
      // Inputs already in GPU memory cannot be fed to a CPU session: the caller (the trainer) handles that case.
      if (!this.remake || Object.values(feeds).some((t) => t.location !== 'cpu')) throw failure.error;
      await this.goOnOnCpu(failure.reason);
      return this.run(feeds, outputs);
    }
  }

  /** A GPU provider's failure as a sentence (null when the error is not one: a CPU run, a wrong input). */
  private gpuFailure(err: unknown): { reason: string; error: Error } | null {
    if (this.info.provider === 'cpu') return null;
    const message = (err as Error)?.message ?? String(err);
    if (err instanceof FlaneurError) return { reason: message, error: err };
    const error = WEBGPU_BUFFER_FAILURE.test(message)
      ? new FlaneurError(
          'INTERNAL',
          `The GPU (${this.limit?.adapter ?? this.info.provider}) could not hold a buffer of this computation: it is over the adapter's limits or its memory is full. Use a smaller batch or image size, or run it on the CPU (Device: provider cpu).`,
          { details: message },
        )
      : (err as Error);
    // Input errors (a missing or misshapen input) would fail on the CPU too: they are not the GPU's.
    if (err instanceof TypeError || INPUT_ERROR.test(message)) return null;
    return { reason: error.message.split('\n')[0] ?? message, error };
  }

  /** Replaces the GPU session by a CPU one made from the same model, and says so (info, settings' listener). */
  private async goOnOnCpu(reason: string): Promise<void> {
    const remake = this.remake as NonNullable<typeof this.remake>;
    const from = this.info.provider;
    const old = this.session;
    this.session = null;
    await old?.release().catch(() => undefined);
    this.session = await remake.factory(remake.model, {
      executionProviders: ['cpu'],
      intraOpNumThreads: this.info.threads,
      interOpNumThreads: 1,
      graphOptimizationLevel: 'all',
      logSeverityLevel: 3,
    });
    this.limit = null;
    const failure = { provider: from, reason };
    this.info.fallbacks.push(failure);
    this.info.provider = 'cpu';
    this.info.lostGpu = failure;
    notify(this.info);
    remake.settings.onGpuFailure?.(failure);
  }

  async release(): Promise<void> {
    const s = this.session;
    this.session = null;
    await s?.release();
  }
}

export { ort };
