/**
 * The execution providers (Device view) and their settings.
 * Part of the engine's contract (contract.ts is the index that exports every name).
 */
import { z } from 'zod';
import { Empty } from './common.js';

export const PROVIDERS = ['cuda', 'dml', 'coreml', 'webgpu', 'cpu'] as const;

export const ProviderName = z.enum(PROVIDERS);

/** The WebGPU adapter Dawn picks (vendor, architecture, description, software or not, buffer limits in bytes). */
export const WebGpuAdapter = z.object({
  vendor: z.string(),
  architecture: z.string(),
  device: z.string(),
  description: z.string(),
  software: z.boolean(),
  maxBufferSize: z.number(),
  maxStorageBufferBindingSize: z.number(),
  shaderF16: z.boolean(),
});

export type WebGpuAdapter = z.infer<typeof WebGpuAdapter>;

export const RuntimeInfo = z.object({
  ortVersion: z.string(),
  cpus: z.int(),
  preference: z.array(ProviderName),
  providers: z.array(
    z.object({
      name: ProviderName,
      available: z.boolean(),
      reason: z.string().nullable(),
      bundled: z.boolean(),
      /** WebGPU: the adapter, or null. */
      adapter: WebGpuAdapter.nullable(),
      /** WebGPU: Dawn's start-up messages during the probe (kept here instead of printed). */
      log: z.array(z.string()),
      /** Why `auto` passes over this available provider (a software or unidentified WebGPU adapter), or null. */
      autoSkip: z.string().nullable(),
    }),
  ),
  settings: z.object({ provider: z.union([ProviderName, z.literal('auto')]), threads: z.int().nullable() }),
  /** The provider the most recent model session really runs on. */
  active: z
    .object({
      provider: ProviderName,
      threads: z.int(),
      fallbacks: z.array(z.object({ provider: ProviderName, reason: z.string() })),
    })
    .nullable(),
});

export type RuntimeInfo = z.infer<typeof RuntimeInfo>;

/** The commands of this capability (merged into `commands` by contract.ts). */
export const runtimeCommands = {
  'runtime.info': { args: Empty, result: RuntimeInfo },
  'runtime.configure': {
    args: z
      .object({
        provider: z.union([ProviderName, z.literal('auto')]).optional(),
        threads: z.int().min(1).max(256).nullable().optional(),
      })
      .strict(),
    result: RuntimeInfo,
  },
} as const;
