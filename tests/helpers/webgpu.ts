/**
 * The WebGPU tests: whether this machine has a WebGPU adapter for them (vitest.config.ts provides a software
 * Vulkan where there is no GPU driver), and settings that force the provider. Where no adapter can be had the
 * tests are skipped with the reason printed — except in CI, which must provide one: there a missing adapter fails.
 */
import { describe, expect } from 'vitest';
import { type ProviderStatus, probeProviders } from '../../native/runtime/providers.js';
import type { RuntimeSettings } from '../../native/runtime/session.js';
import type { TrainState } from '../../native/train/step-runner.js';
import { maxAbsDiff } from './fixtures.js';

export const WEBGPU: RuntimeSettings = { provider: 'webgpu', threads: 1 };
export const CPU: RuntimeSettings = { provider: 'cpu', threads: 1 };

export const webgpuStatus = (await probeProviders()).find((p) => p.name === 'webgpu') as ProviderStatus;

if (!webgpuStatus.available) {
  const why =
    `no WebGPU adapter here (${webgpuStatus.reason}). The WebGPU tests use a software Vulkan: ` +
    "run `npm ci` (@sparticuz/chromium ships SwiftShader), install Debian's chromium, or set FLANEUR_VK_ICD.";
  if (process.env.CI) throw new Error(`CI must run the WebGPU tests, but ${why}`);
  console.warn(`WebGPU tests skipped: ${why}`);
}

/** `describe` where the WebGPU provider runs, `describe.skip` elsewhere. */
export const describeWebGpu = webgpuStatus.available ? describe : describe.skip;

/** max |a - b| / max |b|: the error relative to the tensor's scale. */
export function relErr(a: ArrayLike<number>, b: ArrayLike<number>): number {
  if (a.length !== b.length) throw new Error(`length ${a.length} vs ${b.length}`);
  let scale = 0;
  let err = 0;
  for (let i = 0; i < a.length; i++) {
    scale = Math.max(scale, Math.abs(b[i] as number));
    err = Math.max(err, Math.abs((a[i] as number) - (b[i] as number)));
  }
  return err / Math.max(scale, 1e-30);
}

/**
 * Expects a training state run on the GPU to be the CPU's within 1e-3 relative error, tensor by tensor (parameters,
 * teacher, AdamW moments), and returns the worst error of each. The key third of every qkv bias (parameters and
 * teacher) has an exactly zero gradient (softmax ignores a shift shared by all keys): AdamW turns each provider's
 * rounding noise into steps of up to lr either way, so it is checked against `keyBiasBound` (2 x the sum of the lrs).
 */
export function expectSameState(
  gpu: Pick<TrainState, 'params' | 'teacher' | 'm' | 'v'>,
  cpu: Pick<TrainState, 'params' | 'teacher' | 'm' | 'v'>,
  keyBiasBound: number,
): Record<string, number> {
  const worst: Record<string, number> = {};
  for (const kind of ['params', 'teacher', 'm', 'v'] as const)
    for (const [name, value] of cpu[kind]) {
      let [ours, ref] = [gpu[kind].get(name) as Float32Array, value];
      if (name.endsWith('attn.qkv.bias') && (kind === 'params' || kind === 'teacher')) {
        const d = ref.length / 3;
        expect(maxAbsDiff(ours.subarray(d, 2 * d), ref.subarray(d, 2 * d))).toBeLessThanOrEqual(keyBiasBound);
        ours = Float32Array.from([...ours.subarray(0, d), ...ours.subarray(2 * d)]);
        ref = Float32Array.from([...ref.subarray(0, d), ...ref.subarray(2 * d)]);
      }
      const e = relErr(ours, ref);
      worst[kind] = Math.max(worst[kind] ?? 0, e);
      expect(e, `${kind} ${name}`).toBeLessThanOrEqual(1e-3);
    }
  return worst;
}
