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
}

export const DEFAULT_RUNTIME: RuntimeSettings = { provider: 'auto', threads: null };

export interface SessionInfo {
  provider: ProviderName;
  /** Providers tried before it, and why each failed. */
  fallbacks: { provider: ProviderName; reason: string }[];
  threads: number;
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

/** onnxruntime's WebGPU provider's way of saying that a buffer could not be made (over a limit, out of memory). */
const WEBGPU_BUFFER_FAILURE = /Invalid Buffer|WebGPU validation failed|Out of memory|OutOfMemory/i;

type SessionListener = (info: SessionInfo) => void;
const sessionListeners = new Set<SessionListener>();

/**
 * Called with every session created in this process, whoever creates it (feature extraction, FUNGI, training,
 * tracking, counting, embeddings): the Device view's "in use" line follows the sessions that really ran.
 * Returns the unsubscribe function.
 */
export function onSessionCreated(listener: SessionListener): () => void {
  sessionListeners.add(listener);
  return () => sessionListeners.delete(listener);
}

export class ModelSession {
  /** Feed shapes already checked against the GPU's buffer limit. */
  private readonly checked = new Set<string>();

  private constructor(
    private session: ort.InferenceSession | null,
    readonly info: SessionInfo,
    private readonly limit: (BufferLimit & { table: TensorSizeTable | null }) | null = null,
  ) {}

  /**
   * `keepOnDevice`: outputs that stay in GPU memory when the session runs on WebGPU (ort tensors with location
   * 'gpu-buffer', to be fed back as inputs of this or another WebGPU session, never read on the host: reading one
   * aborts the process in onnxruntime-node 1.30); on other providers they come back to the host as usual.
   */
  static async create(
    model: Uint8Array | string,
    settings: RuntimeSettings = DEFAULT_RUNTIME,
    deps: { statuses?: ProviderStatus[]; factory?: SessionFactory; keepOnDevice?: readonly string[] } = {},
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
        for (const listener of sessionListeners) listener(info);
        return new ModelSession(session, info, limit);
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

  async run(feeds: Feeds, outputs?: readonly string[]): Promise<Record<string, ort.Tensor>> {
    const s = this.require();
    this.checkLimit(feeds);
    try {
      return await (outputs ? s.run(feeds, outputs as string[]) : s.run(feeds));
    } catch (err) {
      const message = (err as Error).message ?? String(err);
      if (this.info.provider === 'webgpu' && WEBGPU_BUFFER_FAILURE.test(message))
        throw new FlaneurError(
          'INTERNAL',
          `The GPU (${this.limit?.adapter ?? 'WebGPU'}) could not hold a buffer of this computation: it is over the adapter's limits or its memory is full. Use a smaller batch or image size, or run it on the CPU (Device: provider cpu).`,
          { details: message },
        );
      throw err;
    }
  }

  async release(): Promise<void> {
    const s = this.session;
    this.session = null;
    await s?.release();
  }
}

export { ort };
