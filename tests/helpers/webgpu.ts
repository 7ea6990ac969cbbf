/**
 * The WebGPU tests: whether this machine has a WebGPU adapter for them (vitest.config.ts provides a software
 * Vulkan where there is no GPU driver), and settings that force the provider. Where no adapter can be had the
 * tests are skipped with the reason printed — except in CI, which must provide one: there a missing adapter fails.
 */
import { describe } from 'vitest';
import { type ProviderStatus, probeProviders } from '../../native/runtime/providers.js';
import type { RuntimeSettings } from '../../native/runtime/session.js';

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
