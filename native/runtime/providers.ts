/**
 * Execution providers: a preference list (cuda, dml, coreml, webgpu, cpu) filtered by what actually loads on this
 * machine. Each provider is probed once per process by creating a one-node session with it alone; the reason a
 * provider is unavailable is kept and shown in the UI's device panel.
 */
import * as ort from 'onnxruntime-node';
import { GraphBuilder } from '../graph/builder.js';
import { toOnnx } from '../graph/onnx.js';
import { probeWebGpu, type WebGpuAdapter } from './webgpu-probe.js';

// Probing a provider that is not installed makes the runtime log an error before it throws; the exception carries
// the same message and is what we record, so only fatal messages go to stderr.
ort.env.logLevel = 'fatal';

export const PROVIDER_PREFERENCE = ['cuda', 'dml', 'coreml', 'webgpu', 'cpu'] as const;
export type ProviderName = (typeof PROVIDER_PREFERENCE)[number];

export interface ProviderStatus {
  name: ProviderName;
  available: boolean;
  /** Why it is not available (the runtime's own message), or null. */
  reason: string | null;
  /** Shipped inside onnxruntime-node for this platform (else it needs an opt-in download). */
  bundled: boolean;
  /** WebGPU: the adapter Dawn picks (null when none, or for other providers). */
  adapter: WebGpuAdapter | null;
  /** WebGPU: Dawn's start-up messages from the probe, kept for the Device view instead of the terminal. */
  log: string[];
}

export type SessionFactory = (
  model: Uint8Array | string,
  options: ort.InferenceSession.SessionOptions,
) => Promise<ort.InferenceSession>;

export const ortSessionFactory: SessionFactory = (model, options) =>
  typeof model === 'string' ? ort.InferenceSession.create(model, options) : ort.InferenceSession.create(model, options);

let probeModel: Uint8Array | null = null;
function tinyModel(): Uint8Array {
  if (!probeModel) {
    const b = new GraphBuilder('probe');
    const x = b.input('x', 'float32', [2]);
    b.output(b.add(x, x), 'y');
    probeModel = toOnnx(b.build());
  }
  return probeModel;
}

function firstLine(message: string): string {
  const line = message.split('\n').find((l) => l.trim()) ?? message;
  return line.replace(/\s+/g, ' ').trim().slice(0, 300);
}

let cached: Promise<ProviderStatus[]> | null = null;

/** Probes every provider of the preference list (once per process unless `fresh`). */
export function probeProviders(options: { fresh?: boolean; factory?: SessionFactory } = {}): Promise<ProviderStatus[]> {
  if (cached && !options.fresh && !options.factory) return cached;
  const factory = options.factory ?? ortSessionFactory;
  const run = async () => {
    const bundled = new Set(
      ort
        .listSupportedBackends()
        .filter((b) => b.bundled)
        .map((b) => b.name),
    );
    const out: ProviderStatus[] = [];
    for (const name of PROVIDER_PREFERENCE) {
      if (name === 'webgpu' && !options.factory) {
        // In a child process: Dawn prints start-up noise on stderr, and the adapter's facts need Dawn itself.
        const p = await probeWebGpu(tinyModel());
        // Without an adapter, Dawn's own sentence says why better than the runtime's assertion text.
        const why = p.adapter ? p.runtime.reason : (p.adapterError ?? p.runtime.reason);
        const reason = p.runtime.ok ? null : (why ?? 'the WebGPU provider did not run the probe graph');
        out.push({ name, available: p.runtime.ok, reason, bundled: bundled.has(name), adapter: p.adapter, log: p.log });
        continue;
      }
      try {
        const s = await factory(tinyModel(), { executionProviders: [name], logSeverityLevel: 4 });
        const r = await s.run({ x: new ort.Tensor('float32', Float32Array.from([1, 2]), [2]) });
        await s.release();
        const y = r.y?.data as Float32Array | undefined;
        if (y?.[0] !== 2 || y[1] !== 4) throw new Error('wrong result from a probe session');
        out.push({
          name,
          available: true,
          reason: null,
          bundled: bundled.has(name) || name === 'cpu',
          adapter: null,
          log: [],
        });
      } catch (err) {
        const reason = firstLine((err as Error).message);
        out.push({ name, available: false, reason, bundled: bundled.has(name), adapter: null, log: [] });
      }
    }
    return out;
  };
  const p = run();
  if (!options.factory) cached = p;
  return p;
}

/**
 * Whether `auto` may use a provider: it must load, and WebGPU only on a hardware adapter (a software one such as
 * SwiftShader runs a ViT hundreds of times slower than the CPU provider; an adapter Dawn cannot name is not
 * trusted either). Forcing the provider still uses it.
 */
export function autoUses(s: ProviderStatus): boolean {
  if (!s.available) return false;
  return s.name !== 'webgpu' || (s.adapter !== null && !s.adapter.software);
}

/** Why `auto` passes over an available provider, or null. */
export function autoSkipReason(s: ProviderStatus): string | null {
  if (!s.available || autoUses(s)) return null;
  return s.adapter
    ? 'a software adapter (runs on the CPU, far slower than the CPU provider): automatic choice skips it; choose WebGPU to force it'
    : 'the adapter could not be identified: automatic choice skips it; choose WebGPU to force it';
}

/** The providers to try, best first: the override alone (then cpu), or the usable ones in preference order. */
export function providerOrder(statuses: readonly ProviderStatus[], override: ProviderName | 'auto'): ProviderName[] {
  if (override !== 'auto') return override === 'cpu' ? ['cpu'] : [override, 'cpu'];
  const order = PROVIDER_PREFERENCE.filter((p) => {
    const s = statuses.find((x) => x.name === p);
    return s !== undefined && autoUses(s);
  });
  return order.includes('cpu') ? order : [...order, 'cpu'];
}
