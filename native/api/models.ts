/**
 * Models: the registry, the catalog of published checkpoints, import and download.
 * Part of the engine's contract (contract.ts is the index that exports every name).
 */
import { z } from 'zod';
import { Empty, UserPath } from './common.js';
import { JobInfo } from './jobs.js';
import { ModelAbout } from './model-about.js';
import { DefaultModel, DefaultModelArgs, SetDefaultModelArgs } from './models-default.js';
import { ProviderName } from './runtime.js';

export const ModelArchitecture = z.object({
  family: z.enum(['dino', 'dinov2', 'dinov3']),
  /** Feed-forward layer: GELU MLP or SwiGLU (DINOv3 S+/16, H+/16). */
  mlp: z.enum(['gelu', 'swiglu']),
  patchSize: z.int(),
  dim: z.int(),
  depth: z.int(),
  heads: z.int(),
  mlpHidden: z.int(),
  registers: z.int(),
  layerScale: z.boolean(),
  posGrid: z.int(),
  lnEps: z.number(),
});

export type ModelArchitecture = z.infer<typeof ModelArchitecture>;

export const ModelInfo = z.object({
  id: z.int(),
  name: z.string(),
  sha256: z.string(),
  bytes: z.int(),
  params: z.int(),
  architecture: ModelArchitecture,
  /** Naming scheme of the imported file: official (DINO/timm) or Hugging Face. */
  scheme: z.string(),
  sourceDtype: z.string(),
  /** Where the file was imported from. */
  source: z.string(),
  licence: z.string().nullable(),
  /** For a PyTorch checkpoint: which state dict was taken and what was removed; for a model trained in the project: how (NeCo: base model, frames, steps). A sentence. */
  origin: z.string().nullable(),
  /** The catalog entry the file was recognised as (models/catalog.json), or null. */
  catalogId: z.string().nullable(),
  mean: z.array(z.number()),
  std: z.array(z.number()),
  createdAt: z.string(),
  /** A model trained elsewhere and brought back: objective, steps, processes, device, wall time, run.json. */
  provenance: z.record(z.string(), z.unknown()).optional(),
  /** What the model is and how good it is known to be, for the places a model is chosen. */
  about: ModelAbout.optional(),
});

export type ModelInfo = z.infer<typeof ModelInfo>;

/** A published checkpoint the app knows (models/catalog.json): what it is, where to get it, how to check it. */
export const CatalogEntry = z
  .object({
    id: z.string().regex(/^[a-z0-9-]+$/),
    title: z.string(),
    family: z.enum(['dino', 'dinov2', 'dinov3']),
    size: z.string(),
    patch: z.int(),
    dim: z.int(),
    depth: z.int(),
    heads: z.int(),
    registers: z.int(),
    mlp: z.enum(['gelu', 'swiglu']),
    goodFor: z.string(),
    page: z.string(),
    fileName: z.string().nullable(),
    /** Direct download (https); null where the publisher gates or hides it (then `access` says how). */
    url: z.string().nullable(),
    /** Hosts the download may be redirected to besides the url's own (the publisher's CDN); none other is followed. */
    hosts: z.array(z.string().max(253)).max(8).optional(),
    access: z.string().optional(),
    huggingFace: z.string().nullable(),
    licence: z.string().nullable(),
    licenceNote: z.string().optional(),
    /** Size in bytes where the publisher states it. */
    bytes: z.int().nullable(),
    /** Full SHA-256 where the publisher gives one; never made up. */
    sha256: z
      .string()
      .regex(/^[0-9a-f]{64}$/)
      .nullable(),
    /** A published prefix of the SHA-256 (DINOv3's file names, torch.hub's convention). */
    sha256Prefix: z
      .string()
      .regex(/^[0-9a-f]{8,64}$/)
      .nullable(),
    checksumNote: z.string(),
    mean: z.array(z.number()).length(3),
    std: z.array(z.number()).length(3),
  })
  .strict();

export type CatalogEntry = z.infer<typeof CatalogEntry>;

export const CatalogEntryInfo = CatalogEntry.extend({
  /** float32 bytes of the architecture's parameters: an estimate of the file size where `bytes` is null. */
  estimatedBytes: z.int(),
  params: z.int(),
  /** The project's model registered from this entry, if any. */
  modelId: z.int().nullable(),
});

export type CatalogEntryInfo = z.infer<typeof CatalogEntryInfo>;

/** The commands of this capability (merged into `commands` by contract.ts). */
export const modelsCommands = {
  'models.import': {
    args: z
      .object({
        path: UserPath,
        name: z.string().min(1).max(200).optional(),
        licence: z.string().max(200).optional(),
        heads: z.int().min(1).max(64).optional(),
      })
      .strict(),
    result: ModelInfo,
  },
  'models.list': { args: Empty, result: z.array(ModelInfo) },
  'models.default': { args: DefaultModelArgs, result: DefaultModel },
  'models.setDefault': { args: SetDefaultModelArgs, result: DefaultModel },
  /** Registers the starter encoder that ships with the app (models/default) in the open project; no-op if there. */
  'models.addBundled': { args: Empty, result: ModelInfo },
  /** The catalog of known checkpoints (nothing is fetched; the list ships with the app). */
  'models.catalog': { args: Empty, result: z.array(CatalogEntryInfo) },
  /** Downloads a catalog entry (only when asked), resumable, checksum-verified, then imports it: a job. */
  'models.download': { args: z.object({ id: z.string().min(1).max(100) }).strict(), result: JobInfo },
  'models.remove': { args: z.object({ id: z.int().positive() }).strict(), result: z.array(ModelInfo) },
  'models.embed': {
    args: z
      .object({
        id: z.int().positive(),
        paths: z.array(UserPath).min(1).max(256),
        size: z.int().min(16).max(2048).optional(),
      })
      .strict(),
    result: z.object({
      modelId: z.int(),
      provider: ProviderName,
      size: z.int(),
      dim: z.int(),
      vectors: z.array(z.array(z.number())),
    }),
  },
} as const;
