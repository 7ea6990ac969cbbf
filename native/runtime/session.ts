/**
 * Sessions over onnxruntime-node: created with the first provider of the preference order that accepts the
 * model (falling back down the list, with the reasons kept), and recording the provider that really runs.
 */
import os from 'node:os';
import * as ort from 'onnxruntime-node';
import { FlaneurError } from '../api/errors.js';
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

export class ModelSession {
  private constructor(
    private session: ort.InferenceSession | null,
    readonly info: SessionInfo,
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
        return new ModelSession(session, { provider, fallbacks, threads });
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

  async run(feeds: Feeds, outputs?: readonly string[]): Promise<Record<string, ort.Tensor>> {
    const s = this.require();
    return outputs ? s.run(feeds, outputs as string[]) : s.run(feeds);
  }

  async release(): Promise<void> {
    const s = this.session;
    this.session = null;
    await s?.release();
  }
}

export { ort };
