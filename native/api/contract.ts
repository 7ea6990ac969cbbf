/**
 * The engine's contract: every command's name, argument schema and result schema, and every event. All transports
 * (Electron IPC, browser-mode HTTP/WebSocket, the CLI, tests) go through one dispatcher built from this table, so an
 * argument is validated the same way wherever it comes from. The renderer imports only the types from here.
 */
import { z } from 'zod';
import { ModelAbout } from './model-about.js';
import { DefaultModel, DefaultModelArgs, SetDefaultModelArgs } from './models-default.js';
import { EvalDavisArgs, PropagateArgs, PropagationFrame, PropagationFrameArgs } from './propagate.js';

export const JOB_STATES = ['queued', 'running', 'done', 'failed', 'cancelled', 'interrupted'] as const;
export const JobState = z.enum(JOB_STATES);
export type JobState = z.infer<typeof JobState>;

export const ErrorInfo = z.object({
  code: z.string(),
  message: z.string(),
  field: z.string().optional(),
  details: z.string().optional(),
});
export type ErrorInfo = z.infer<typeof ErrorInfo>;

export const ProjectInfo = z.object({
  id: z.string(),
  name: z.string(),
  path: z.string(),
  isDemo: z.boolean(),
  schemaVersion: z.int(),
  createdAt: z.string(),
  summary: z.object({
    jobs: z.int(),
    runningJobs: z.int(),
  }),
});
export type ProjectInfo = z.infer<typeof ProjectInfo>;

export const RecentProject = z.object({
  path: z.string(),
  name: z.string(),
  openedAt: z.string(),
  exists: z.boolean(),
});
export type RecentProject = z.infer<typeof RecentProject>;

export const AppInfo = z.object({
  name: z.literal('flaneur'),
  version: z.string(),
  schemaVersion: z.int(),
  node: z.string(),
  platform: z.string(),
  arch: z.string(),
  home: z.string(),
});
export type AppInfo = z.infer<typeof AppInfo>;

export const JobProgress = z.object({
  phase: z.string(),
  done: z.number().nonnegative(),
  total: z.number().nonnegative().nullable(),
  unit: z.string(),
  /** Items per second over the recent window, null until measurable. */
  rate: z.number().nonnegative().nullable(),
  /** Seconds left at the current rate, null when unknown. */
  etaS: z.number().nonnegative().nullable(),
  /** Other counters of the job (files, frames, bytes…), for display. */
  detail: z.record(z.string(), z.number()).optional(),
});
export type JobProgress = z.infer<typeof JobProgress>;

export const JobInfo = z.object({
  id: z.int().positive(),
  kind: z.string(),
  title: z.string(),
  state: JobState,
  progress: JobProgress,
  items: z.object({ ok: z.int(), failed: z.int(), skipped: z.int() }),
  /** How many times the job has been started (1 + number of resumes). */
  attempt: z.int(),
  error: ErrorInfo.nullable(),
  createdAt: z.string(),
  startedAt: z.string().nullable(),
  finishedAt: z.string().nullable(),
  args: z.record(z.string(), z.unknown()),
});
export type JobInfo = z.infer<typeof JobInfo>;

export const JobItemStatus = z.enum(['ok', 'failed', 'skipped']);
export type JobItemStatus = z.infer<typeof JobItemStatus>;

export const JobItem = z.object({
  key: z.string(),
  status: JobItemStatus,
  result: z.unknown().nullable(),
  error: ErrorInfo.nullable(),
  attempt: z.int(),
  finishedAt: z.string(),
});
export type JobItem = z.infer<typeof JobItem>;

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

export const Sampling = z.discriminatedUnion('policy', [
  z.object({ policy: z.literal('fps'), fps: z.number().positive().max(240) }),
  z.object({ policy: z.literal('every'), n: z.int().min(1).max(100000) }),
  z.object({ policy: z.literal('keyframes') }),
  z.object({ policy: z.literal('scene'), threshold: z.number().min(0.01).max(1) }),
]);
export type Sampling = z.infer<typeof Sampling>;

export const FrameSize = z.object({
  /** 'short-side': the shorter side becomes `size`, aspect kept; 'square': size x size (squashed). */
  mode: z.enum(['short-side', 'square']),
  size: z.int().min(32).max(2048),
});
export type FrameSize = z.infer<typeof FrameSize>;

export const MediaInfo = z.object({
  id: z.int(),
  kind: z.enum(['image', 'video', 'unknown']),
  path: z.string(),
  name: z.string(),
  bytes: z.number(),
  status: z.enum(['pending', 'ingesting', 'done', 'failed']),
  /** Why it failed, or a warning about a file that was ingested with problems. */
  problem: ErrorInfo.nullable(),
  width: z.int().nullable(),
  height: z.int().nullable(),
  rotation: z.int(),
  codec: z.string().nullable(),
  durationS: z.number().nullable(),
  fps: z.number().nullable(),
  keyframeIntervalS: z.number().nullable(),
  sampling: Sampling.nullable(),
  frameWidth: z.int().nullable(),
  frameHeight: z.int().nullable(),
  frameCount: z.int(),
  addedAt: z.string(),
});
export type MediaInfo = z.infer<typeof MediaInfo>;

const Range = z.tuple([z.number().min(0).max(1), z.number().min(0).max(1)]);
/** FUNGI gradient features (native/fungi): the paper's settings by default, every one an argument. */
export const FungiArgs = z
  .object({
    modelId: z.int().positive(),
    media: z.array(z.int().positive()).optional(),
    size: z.int().min(16).max(1024).default(224),
    objectives: z
      .array(z.enum(['kl', 'dino', 'simclr']))
      .min(1)
      .default(['kl', 'dino', 'simclr']),
    seed: z.int().min(0).default(0),
    pcaDim: z.int().min(2).max(4096).default(512),
    kl: z.object({ temperature: z.number().positive() }).partial().strict().optional(),
    dino: z
      .object({
        teacherTemp: z.number().positive(),
        studentTemp: z.number().positive(),
        latentDim: z.int().min(2).max(65536),
        globalViews: z.int().min(1).max(8),
        localViews: z.int().min(0).max(32),
        globalScale: Range,
        localScale: Range,
      })
      .partial()
      .strict()
      .optional(),
    simclr: z
      .object({
        temperature: z.number().positive(),
        latentDim: z.int().min(2).max(4096),
        numPatches: z.int().min(1).max(64),
        strideScale: z.int().min(1).max(32),
        negatives: z.int().min(1).max(1024),
      })
      .partial()
      .strict()
      .optional(),
    /** Views per graph run (memory): samples per run = floor(viewBudget / views per sample). */
    viewBudget: z.int().min(1).max(1024).default(48),
  })
  .strict();

export const TrainDinoArgs = z
  .object({
    /** Media items whose sampled frames are the data (default: every ingested item). */
    media: z.array(z.int().positive()).optional(),
    /** Start from a registered model's weights, or from scratch with an architecture. */
    init: z
      .discriminatedUnion('kind', [
        z.object({ kind: z.literal('model'), id: z.int().positive() }),
        z.object({
          kind: z.literal('scratch'),
          preset: z.enum(['vit_ti16', 'vit_s16', 'vit_b16', 'vit_s8', 'tiny']),
        }),
      ])
      .default({ kind: 'scratch', preset: 'vit_ti16' }),
    steps: z.int().min(1).max(10_000_000).default(1000),
    batch: z.int().min(1).max(1024).default(32),
    globalSize: z.int().min(16).max(1024).default(224),
    localSize: z.int().min(16).max(512).default(96),
    localCrops: z.int().min(0).max(16).default(6),
    lr: z.number().positive().max(1).default(5e-4),
    minLr: z.number().min(0).max(1).default(1e-6),
    warmupSteps: z.int().min(0).default(100),
    weightDecay: z.number().min(0).default(0.04),
    weightDecayEnd: z.number().min(0).default(0.4),
    emaStart: z.number().min(0).max(1).default(0.996),
    emaEnd: z.number().min(0).max(1).default(1),
    studentTemp: z.number().positive().default(0.1),
    teacherTemp: z.number().positive().default(0.04),
    centerMomentum: z.number().min(0).max(1).default(0.9),
    clip: z.number().positive().default(3),
    /**
     * Keep the head's last layer fixed for the first N steps (DINO's freeze_last_layer, one epoch there): its
     * update and Adam moments are cancelled, the teacher's copy follows the unchanged student.
     */
    freezeLastLayerSteps: z.int().min(0).default(0),
    /** KoLeo regulariser weight on the student's CLS of each global crop (DINOv2 uses 0.1); 0: off. */
    koleo: z.number().min(0).max(10).default(0),
    dropPath: z.number().min(0).max(0.9).default(0.1),
    outDim: z.int().min(2).max(65536).default(4096),
    headHidden: z.int().min(8).default(2048),
    bottleneck: z.int().min(8).default(256),
    seed: z.int().min(0).default(0),
    /** Execution provider for this run; default the engine's setting (Device view). Falls back down the list. */
    device: z.union([ProviderName, z.literal('auto')]).optional(),
    /**
     * Dora instead of plain DINO: clips of `framesPerClip` frames `stride` sampled frames apart (`batch` frames per
     * step, a multiple of framesPerClip), `objects` objects discovered in the teacher's attention and tracked
     * through each clip; the student sees one masked view per object plus the local crops.
     */
    dora: z
      .object({
        framesPerClip: z.int().min(1).max(64).default(8),
        stride: z.int().min(1).max(10_000).default(1),
        objects: z.int().min(1).max(16).default(3),
        epsilon: z.number().positive().default(0.05),
        iterations: z.int().min(1).max(1000).default(30),
        grayscaleP: z.number().min(0).max(1).default(0.2),
        blurP: z.number().min(0).max(1).default(0.1),
      })
      .strict()
      .optional(),
    /**
     * NeCo instead of DINO (vpariza/NeCo, ICLR 2025): adapt the chosen encoder's patch features with patch
     * neighbour consistency. Uses `init` (usually a registered model), `media`, `steps`, `batch` (images per step),
     * `globalSize`, `dropPath`, `seed`, `device`, `checkpointEvery`, `previewEvery`, `name`; the DINO-only settings
     * (lr, temperatures, DINO head, clip, localSize/localCrops, weight decay) are replaced by these.
     */
    neco: z
      .object({
        /** Local crops per image (4 in the paper) and their size (default: the multiple of the patch nearest 98). */
        localCrops: z.int().min(0).max(16).default(4),
        localSize: z.int().min(16).max(512).optional(),
        globalScale: z.tuple([z.number().gt(0).max(1), z.number().gt(0).max(1)]).default([0.25, 1]),
        localScale: z.tuple([z.number().gt(0).max(1), z.number().gt(0).max(1)]).default([0.05, 0.25]),
        /** Teacher patch embeddings kept per global crop to draw reference patches from. */
        queue: z.int().min(64).max(65536).default(8192),
        /** Side of the aligned patch grid of a crop pair (7: 49 patches sorted). */
        aligned: z.int().min(2).max(16).default(7),
        steepness: z.number().positive().max(1e6).default(100),
        lrBackbone: z.number().min(0).max(1).default(1e-5),
        lrHead: z.number().min(0).max(1).default(1e-4),
        weightDecay: z.number().min(0).default(0.04),
        weightDecayEnd: z.number().min(0).default(0.5),
        emaStart: z.number().min(0).max(1).default(0.9995),
        emaEnd: z.number().min(0).max(1).default(1),
        headHidden: z.int().min(8).max(8192).default(2048),
        outDim: z.int().min(8).max(4096).default(256),
      })
      .strict()
      .optional(),
    checkpointEvery: z.int().min(1).default(50),
    /** Teacher attention previews of 2 fixed frames every N steps (and at the start and end); 0: none. */
    previewEvery: z.int().min(0).default(50),
    /** Name of the exported model in the registry. */
    name: z.string().min(1).max(200).optional(),
  })
  .strict();
export type TrainDinoArgs = z.output<typeof TrainDinoArgs>;

/** `train.export`: a run (the arguments of `train.start`) as a folder for PyTorch's torchrun (train/export-run.ts). */
export const TrainExportArgs = z
  .object({
    ...TrainDinoArgs.shape,
    /** The folder to write: new, empty, or an earlier attempt of the same export job. */
    dir: z.string().min(1, 'must not be empty').max(4096),
    /**
     * How a video's frames travel: 'copy' (the sampled frames as raw RGB), 'decode' (the source file and the index
     * of its frames' timestamps; the exported program decodes them with ffmpeg there), 'auto' (decode a video
     * whose raw frames exceed 512 MiB and its source file's size, copy the rest; images are always copied).
     */
    frames: z.enum(['auto', 'copy', 'decode']).default('auto'),
  })
  .strict();

/** `train.import`: an exported run trained elsewhere (its folder, run/ folder or a checkpoint) brought back. */
export const TrainImportArgs = z
  .object({
    path: z.string().min(1, 'must not be empty').max(4096),
    /** Name of the registered model (default: objective, model, steps and machines). */
    name: z.string().min(1).max(200).optional(),
  })
  .strict();

export const TrainLogEntry = z.object({
  step: z.int(),
  loss: z.number(),
  lr: z.number(),
  wd: z.number(),
  ema: z.number(),
  gradNorm: z.number(),
  teacherEntropy: z.number(),
  imgsPerS: z.number(),
});

/**
 * How a label mask's values are read: 'auto' recognises class ids, 0/255 and 0/1 binary, palette PNGs, colour
 * masks and JPEG noise (and warns); 'ids': value = class id, 255 = ignore; 'binary': dark = class 0, bright = 1.
 */
export const MaskValues = z.enum(['auto', 'ids', 'binary']);
const Palette = z
  .array(z.tuple([z.int().min(0).max(255), z.int().min(0).max(255), z.int().min(0).max(255)]))
  .min(1)
  .max(256);

/** How frames become model inputs: the aspect ratio kept (shorter side = input size) or squashed to a square. */
export const ResizePolicy = z.enum(['aspect', 'square']);
/** A frame's patch grid: rows and columns. */
export const PatchGrid = z.object({ gridH: z.int(), gridW: z.int() });

export const CountPoint = z.object({ x: z.number(), y: z.number(), score: z.number() });
export const CountResult = z.object({
  /** Refers to the similarity map kept by the engine, for count.peaks. */
  token: z.int(),
  count: z.int(),
  points: z.array(CountPoint),
  threshold: z.number(),
  /** Smallest and largest similarity in the map (the slider's range). */
  range: z.tuple([z.number(), z.number()]),
  width: z.int(),
  height: z.int(),
});

/** The scale and tiles an exemplar count used (`count.exemplar` without fixed sizes). */
/**
 * A counting threshold on the contrasted similarity (cosine to the exemplar minus cosine to the image's mean
 * patch), which lies in [-2, 2]: the similarity maps of count results range over it, and so does the slider.
 */
const CountThreshold = z.number().min(-2).max(2);

export const CountScaleInfo = z.object({
  /** The image counted: a still image's own file at its resolution (up to 4096 px), else the stored frame. */
  imageWidth: z.int(),
  imageHeight: z.int(),
  factor: z.number(),
  inputWidth: z.int(),
  inputHeight: z.int(),
  gridH: z.int(),
  gridW: z.int(),
  exemplarPatches: z.number(),
  tiles: z.int(),
  tileSize: z.int(),
  overlap: z.int(),
  capped: z.boolean(),
});

const Empty = z.object({}).strict();
const JobId = z.object({ id: z.int().positive() }).strict();
const UserPath = z.string().min(1, 'must not be empty').max(4096);

export const HASH_ALGORITHMS = ['sha256', 'sha1', 'md5'] as const;

/** Which vectors describe a frame: the run's CLS embeddings, or the FUNGI vectors of the run's model. */
const FeatureKind = z.enum(['embedding', 'fungi']);
const MapPoint = z.object({ mediaId: z.int(), frameIdx: z.int(), x: z.number(), y: z.number(), cluster: z.int() });

export const IntegrityReport = z.object({
  ok: z.boolean(),
  /** Damaged tables; every one of them is derived (recomputable) when `derivedOnly`. */
  tables: z.array(z.string()),
  derivedOnly: z.boolean(),
  /** What is damaged and what to do, as a sentence; empty when ok. */
  message: z.string(),
  /** SQLite's first lines. */
  details: z.array(z.string()),
  ms: z.number(),
  backup: z.object({ path: z.string(), at: z.string(), bytes: z.int() }).nullable(),
});
export type IntegrityReport = z.infer<typeof IntegrityReport>;

/** The command table. Add a command here, then a handler in native/engine/handlers.ts. */
export const commands = {
  'app.info': { args: Empty, result: AppInfo },

  'project.create': {
    args: z.object({ path: UserPath, name: z.string().min(1).max(200).optional() }).strict(),
    result: ProjectInfo,
  },
  'project.open': { args: z.object({ path: UserPath }).strict(), result: ProjectInfo },
  'project.openDemo': { args: Empty, result: ProjectInfo },
  'project.close': { args: Empty, result: z.null() },
  'project.current': { args: Empty, result: ProjectInfo.nullable() },
  'project.recent': { args: Empty, result: z.array(RecentProject) },
  'project.forgetRecent': { args: z.object({ path: UserPath }).strict(), result: z.array(RecentProject) },
  /** The full integrity check of the open project's database (every page), with the automatic backup's state. */
  'project.check': { args: Empty, result: IntegrityReport },
  /** A damaged project: the automatic backup put in place (the damaged file kept beside it), then opened. */
  'project.restoreBackup': { args: z.object({ path: UserPath }).strict(), result: ProjectInfo },
  /** A project whose damage is only in derived tables: rebuilt without them (recomputed by their jobs), opened. */
  'project.rebuild': { args: z.object({ path: UserPath }).strict(), result: ProjectInfo },

  'jobs.list': {
    args: z
      .object({
        states: z.array(JobState).optional(),
        limit: z.int().min(1).max(1000).optional(),
      })
      .strict(),
    result: z.array(JobInfo),
  },
  'jobs.get': { args: JobId, result: JobInfo },
  'jobs.items': {
    args: z
      .object({
        id: z.int().positive(),
        status: JobItemStatus.optional(),
        offset: z.int().min(0).optional(),
        limit: z.int().min(1).max(1000).optional(),
      })
      .strict(),
    result: z.object({ total: z.int(), items: z.array(JobItem) }),
  },
  'jobs.cancel': { args: JobId, result: JobInfo },
  'jobs.resume': { args: JobId, result: JobInfo },

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

  'library.add': {
    args: z
      .object({
        paths: z.array(UserPath).min(1).max(10000),
        recursive: z.boolean().optional(),
        extensions: z.array(z.string().min(1).max(10)).optional(),
        sampling: Sampling.optional(),
        frameSize: FrameSize.optional(),
      })
      .strict(),
    result: JobInfo,
  },
  'library.list': {
    args: z
      .object({
        kind: z.enum(['image', 'video']).optional(),
        status: z.enum(['pending', 'ingesting', 'done', 'failed']).optional(),
        withProblem: z.boolean().optional(),
        /** Only these items (e.g. a selection made on the embedding map). */
        ids: z.array(z.int().positive()).max(200000).optional(),
        offset: z.int().min(0).optional(),
        limit: z.int().min(1).max(1000).optional(),
      })
      .strict(),
    result: z.object({
      total: z.int(),
      items: z.array(MediaInfo),
      counts: z.object({ images: z.int(), videos: z.int(), frames: z.int(), failed: z.int() }),
    }),
  },
  'library.get': { args: z.object({ id: z.int().positive() }).strict(), result: MediaInfo },
  'library.frames': {
    args: z
      .object({
        id: z.int().positive(),
        offset: z.int().min(0).optional(),
        limit: z.int().min(1).max(100000).optional(),
      })
      .strict(),
    result: z.object({ total: z.int(), frames: z.array(z.object({ index: z.int(), pts: z.number() })) }),
  },
  /** Catalog items named the way people name them: an id, a file path, or a file name unique in the catalog. */
  'library.resolve': {
    args: z.object({ refs: z.array(z.string().min(1).max(4096)).min(1).max(100000) }).strict(),
    result: z.array(MediaInfo),
  },
  'library.remove': { args: z.object({ id: z.int().positive() }).strict(), result: z.null() },
  'media.tools': {
    args: Empty,
    result: z.object({
      ffmpeg: z.object({ path: z.string(), source: z.string(), version: z.string() }),
      ffprobe: z.object({ path: z.string(), source: z.string(), version: z.string() }),
      videoDecoders: z.array(z.string()),
    }),
  },

  'features.extract': {
    args: z
      .object({
        modelId: z.int().positive(),
        media: z.array(z.int().positive()).optional(),
        /** The input's shorter side (the whole side for square runs), a multiple of the patch size. */
        size: z.int().min(16).max(2048).optional(),
        /** 'aspect' (default): the frame's aspect ratio kept; 'square': squashed to size × size as older runs. */
        resize: ResizePolicy.optional(),
        batch: z.int().min(0).max(256).optional(),
      })
      .strict(),
    result: JobInfo,
  },
  'features.runs': {
    args: Empty,
    result: z.array(
      z.object({
        id: z.int(),
        modelId: z.int(),
        modelName: z.string(),
        inputSize: z.int(),
        /** Patches along the input's shorter side (a frame's own grid follows from its aspect ratio). */
        grid: z.int(),
        /** How frames were resized: 'square' runs were made before aspect-preserving features (recompute them). */
        resize: ResizePolicy,
        dim: z.int(),
        frames: z.int(),
        /** Sampled frames of the library's readable items now: more than `frames` means features are missing. */
        libraryFrames: z.int(),
        preprocessing: z.record(z.string(), z.unknown()),
        createdAt: z.string(),
      }),
    ),
  },
  /** A job: the run's stored features as files, one per frame, and a manifest (native/features/export.ts). */
  'features.export': {
    args: z
      .object({
        runId: z.int().positive(),
        outDir: UserPath,
        what: z.enum(['cls', 'patches', 'both']).optional(),
        format: z.enum(['npy', 'safetensors']).optional(),
        media: z.array(z.int().positive()).optional(),
      })
      .strict(),
    result: JobInfo,
  },
  'segment.createBank': {
    args: z
      .object({
        runId: z.int().positive(),
        name: z.string().min(1).max(200),
        /** Class names, class 0 first; absent: 'background', 'foreground' when every mask is binary (else refused). */
        classes: z.array(z.string().min(1).max(100)).min(2).max(254).optional(),
        examples: z
          .array(
            z.object({
              mediaId: z.int().positive(),
              frameIdx: z.int().min(0),
              mask: UserPath,
              /** How the mask's values map to classes (default 'auto': recognised, with warnings). */
              encoding: MaskValues.optional(),
              /** One [r, g, b] per class, for colour masks (nearest colour wins, JPEG noise tolerated). */
              palette: Palette.optional(),
            }),
          )
          .min(1)
          .max(10000),
        perImage: z.int().min(1).optional(),
        /** Total patches kept: memorySize // (examples x epochs) per view, rare classes first. */
        memorySize: z.int().min(1).optional(),
        /** Views per example (random resized crops and flips after the first); 1 = the frames only. */
        epochs: z.int().min(1).max(100).optional(),
      })
      .strict(),
    result: z.object({
      id: z.int(),
      name: z.string(),
      runId: z.int(),
      classes: z.array(z.string()),
      patches: z.int(),
      /** How masks were read when their values do not match the classes (e.g. only 0 and 255). */
      warnings: z.array(z.string()),
    }),
  },
  'segment.clusterBank': {
    args: z
      .object({
        runId: z.int().positive(),
        name: z.string().min(1).max(200),
        clusters: z.int().min(2).max(254),
        frames: z
          .array(z.object({ mediaId: z.int().positive(), frameIdx: z.int().min(0) }))
          .min(1)
          .max(5000),
      })
      .strict(),
    result: z.object({ id: z.int(), name: z.string(), runId: z.int(), classes: z.array(z.string()), patches: z.int() }),
  },
  'segment.relabelBank': {
    args: z
      .object({
        bankId: z.int().positive(),
        names: z.array(z.string().min(1).max(100)).min(2).max(254),
        /** New index of each old class (classes given the same index are merged). */
        into: z.array(z.int().min(0)),
      })
      .strict(),
    result: z.object({ id: z.int(), name: z.string(), runId: z.int(), classes: z.array(z.string()), patches: z.int() }),
  },
  'segment.saveMask': {
    args: z
      .object({
        mediaId: z.int().positive(),
        frameIdx: z.int().min(0),
        /** Class id per pixel, row-major, base64. */
        data: z.string().min(1).max(8_000_000),
      })
      .strict(),
    result: z.object({ path: z.string() }),
  },
  /**
   * Hummingbird in-context segmentation of the project's labelled frames (masks saved in the Segment view), each
   * frame segmented with a bank of the others, for each model on the same frames and banks: e.g. a NeCo run's base
   * model against the adapted one. With fewer than 2 labelled frames, the synthetic walking tour instead.
   */
  'segment.compareModels': {
    args: z
      .object({
        modelIds: z.array(z.int().positive()).min(1).max(8),
        size: z.int().min(16).max(1024).default(224),
      })
      .strict(),
    result: z.object({
      frames: z.int(),
      classes: z.int(),
      size: z.int(),
      /** 'synthetic': fewer than 2 labelled frames, so the synthetic walking tour was segmented (see `note`). */
      source: z.enum(['labelled', 'synthetic']),
      note: z.string().optional(),
      classNames: z.array(z.string()).optional(),
      models: z.array(z.object({ modelId: z.int(), miou: z.number(), perClass: z.array(z.number().nullable()) })),
    }),
  },
  /** Per class: patches, whether it is too small to be predicted, and example patches (clustered banks). */
  'segment.bankClasses': {
    args: z.object({ bankId: z.int().positive(), perClass: z.int().min(0).max(24).optional() }).strict(),
    result: z.array(
      z.object({
        name: z.string(),
        patches: z.int(),
        tiny: z.boolean(),
        examples: z.array(
          z.object({
            mediaId: z.int(),
            frameIdx: z.int(),
            box: z.tuple([z.number(), z.number(), z.number(), z.number()]),
          }),
        ),
      }),
    ),
  },
  'segment.banks': {
    args: Empty,
    result: z.array(
      z.object({
        id: z.int(),
        name: z.string(),
        runId: z.int(),
        classes: z.array(z.string()),
        patches: z.int(),
        /** Items the bank's examples came from that are no longer in the library. */
        missingMedia: z.int(),
        createdAt: z.string(),
      }),
    ),
  },
  'segment.apply': {
    args: z
      .object({
        bankId: z.int().positive(),
        mediaId: z.int().positive(),
        frameIdx: z.int().min(0),
        k: z.int().min(1).max(200).optional(),
        temperature: z.number().positive().optional(),
        truthMask: UserPath.optional(),
        truthEncoding: MaskValues.optional(),
        truthPalette: Palette.optional(),
      })
      .strict(),
    result: z.object({
      bankId: z.int(),
      mediaId: z.int(),
      frameIdx: z.int(),
      width: z.int(),
      height: z.int(),
      classes: z.array(z.string()),
      colours: z.array(z.tuple([z.int(), z.int(), z.int()])),
      pixels: z.array(z.int()),
      overlay: z.string(),
      labelFile: z.string(),
      iou: z.object({ mean: z.number(), perClass: z.array(z.number().nullable()) }).nullable(),
      /** How the truth mask was read when its values do not match the bank's classes. */
      warnings: z.array(z.string()),
    }),
  },
  'segment.batch': {
    args: z
      .object({
        bankId: z.int().positive(),
        media: z.array(z.int().positive()).optional(),
        every: z.int().min(1).optional(),
        outDir: UserPath.optional(),
        k: z.int().min(1).max(200).optional(),
        temperature: z.number().positive().optional(),
        /** Masks at the stored frames' size (default) or the source file's. */
        resolution: z.enum(['frame', 'source']).optional(),
        /** Truth masks (grayscale class ids) of frames to score: IoU per frame and over all (job items). */
        truth: z
          .array(z.object({ mediaId: z.int().positive(), frameIdx: z.int().min(0), mask: UserPath }).strict())
          .max(100000)
          .optional(),
      })
      .strict(),
    result: JobInfo,
  },
  'features.fungi': { args: FungiArgs, result: JobInfo },
  'fungi.runs': {
    args: Empty,
    result: z.array(
      z.object({
        id: z.int(),
        modelId: z.int(),
        modelName: z.string(),
        frames: z.int(),
        /** Sampled frames of the library's readable items now: more than `frames` means vectors are missing. */
        libraryFrames: z.int(),
        dim: z.int(),
        pcaDim: z.int().nullable(),
        settings: z.record(z.string(), z.unknown()),
        createdAt: z.string(),
      }),
    ),
  },
  'classify.knn': {
    args: z
      .object({
        runId: z.int().positive(),
        features: FeatureKind.optional(),
        /** Labelled folder: each sub-folder's name is the class of the media under it. */
        root: UserPath,
        /** Classified against `root` and scored; without it, leave-one-out over `root`. */
        queryRoot: UserPath.optional(),
        k: z.int().min(1).max(200).optional(),
        temperature: z.number().positive().optional(),
      })
      .strict(),
    result: z.object({
      features: FeatureKind,
      /** Library items labelled by content: their file lies under a class folder at another path (a copy). */
      attachedByContent: z.int().optional(),
      classes: z.array(z.string()),
      evaluated: z.int(),
      accuracy: z.number(),
      /** confusion[true][predicted] */
      confusion: z.array(z.array(z.int())),
      misclassified: z.array(
        z.object({ mediaId: z.int(), frameIdx: z.int(), truth: z.int(), predicted: z.int(), confidence: z.number() }),
      ),
      /** Frames outside the labelled folders, with their predicted class. */
      predictions: z.array(
        z.object({ mediaId: z.int(), frameIdx: z.int(), predicted: z.int(), confidence: z.number() }),
      ),
    }),
  },
  'map.build': {
    args: z
      .object({
        runId: z.int().positive(),
        features: FeatureKind.optional(),
        method: z.enum(['pca', 'umap']).optional(),
        neighbors: z.int().min(2).max(200).optional(),
        minDist: z.number().min(0).max(1).optional(),
        clusters: z.int().min(1).max(100).optional(),
        seed: z.int().min(0).optional(),
      })
      .strict(),
    result: JobInfo,
  },
  'map.list': {
    args: Empty,
    result: z.array(
      z.object({
        id: z.int(),
        runId: z.int(),
        features: FeatureKind,
        method: z.string(),
        points: z.int(),
        /** Frames its source (features or FUNGI run) holds now: different from `points` means out of date. */
        sourceFrames: z.int(),
        createdAt: z.string(),
      }),
    ),
  },
  'map.get': {
    args: z
      .object({
        id: z.int().positive(),
        /** Colour by class: the labelled folder whose sub-folder names are the classes. */
        root: UserPath.optional(),
      })
      .strict(),
    result: z.object({
      id: z.int(),
      method: z.string(),
      features: FeatureKind,
      points: z.array(MapPoint),
      classes: z.array(z.string()),
      /** Class index per point (-1 unlabelled), when `root` was given. */
      labels: z.array(z.int()),
    }),
  },
  'retrieve.images': {
    args: z
      .object({
        runId: z.int().positive(),
        features: FeatureKind.optional(),
        mediaId: z.int().positive(),
        frameIdx: z.int().min(0),
        k: z.int().min(1).max(200).optional(),
      })
      .strict(),
    result: z.object({
      runId: z.int(),
      features: FeatureKind,
      results: z.array(z.object({ mediaId: z.int(), frameIdx: z.int(), sim: z.number() })),
    }),
  },
  'retrieve.duplicates': {
    args: z
      .object({
        runId: z.int().positive(),
        threshold: z.number().min(0).max(1).optional(),
        limit: z.int().min(1).max(10000).optional(),
      })
      .strict(),
    result: z.object({
      runId: z.int(),
      threshold: z.number(),
      pairs: z.array(
        z.object({
          a: z.object({ mediaId: z.int(), frameIdx: z.int() }),
          b: z.object({ mediaId: z.int(), frameIdx: z.int() }),
          sim: z.number(),
        }),
      ),
    }),
  },
  'retrieve.patches': {
    args: z
      .object({
        runId: z.int().positive(),
        mediaId: z.int().positive(),
        frameIdx: z.int().min(0),
        /** The query patch (row-major on the frame's grid), or `point`. */
        patch: z.int().min(0).optional(),
        /** The query as a point of the frame, [x, y] as fractions of its width and height. */
        point: z.tuple([z.number().min(0).max(1), z.number().min(0).max(1)]).optional(),
        k: z.int().min(1).max(100).optional(),
      })
      .strict(),
    result: z.object({
      runId: z.int(),
      /** The query patch. */
      patch: z.int(),
      /** The query frame's patch grid (`patch` indexes it row-major). */
      grid: PatchGrid,
      /** Frames whose patches were searched: all of the run's, or every s-th where they exceed the memory budget. */
      framesSearched: z.int(),
      framesTotal: z.int(),
      results: z.array(
        z.object({
          mediaId: z.int(),
          frameIdx: z.int(),
          patch: z.int(),
          sim: z.number(),
          /** Similarity per patch of this frame, on its own grid. */
          heat: z.array(z.number()),
          grid: PatchGrid,
        }),
      ),
    }),
  },
  'count.exemplar': {
    args: z
      .object({
        modelId: z.int().positive(),
        mediaId: z.int().positive(),
        frameIdx: z.int().min(0),
        /** Exemplar boxes [x, y, w, h] in frame pixels. */
        boxes: z
          .array(z.tuple([z.number(), z.number(), z.number(), z.number()]))
          .min(1)
          .max(20),
        /**
         * Fixed input sizes (shorter side; the whole image at each, maps averaged). Absent: the scale is chosen from
         * the exemplar (it spans `exemplarPatches` patches) and large images are tiled.
         */
        scales: z.array(z.int().min(16).max(2048)).min(1).max(4).optional(),
        /** The model's input size (shorter side) for the smallest scale allowed; 224 by default. */
        size: z.int().min(16).max(2048).optional(),
        exemplarPatches: z.number().min(1).max(16).optional(),
        threshold: CountThreshold.optional(),
      })
      .strict(),
    result: CountResult.extend({ scale: CountScaleInfo.nullable() }),
  },
  'count.auto': {
    args: z
      .object({
        modelId: z.int().positive(),
        mediaId: z.int().positive(),
        frameIdx: z.int().min(0),
        scale: z.int().min(16).max(2048).optional(),
      })
      .strict(),
    result: CountResult.extend({ clusters: z.array(z.object({ blobs: z.int(), patches: z.int() })), chosen: z.int() }),
  },
  'count.batch': {
    args: z
      .object({
        modelId: z.int().positive(),
        exemplar: z
          .object({
            mediaId: z.int().positive(),
            frameIdx: z.int().min(0),
            boxes: z
              .array(z.tuple([z.number(), z.number(), z.number(), z.number()]))
              .min(1)
              .max(20),
          })
          .strict(),
        media: z.array(z.int().positive()).min(1),
        every: z.int().min(1).optional(),
        threshold: CountThreshold.optional(),
      })
      .strict(),
    result: JobInfo,
  },
  'count.results': {
    args: z.object({ jobId: z.int().positive() }).strict(),
    result: z.array(z.object({ mediaId: z.int(), frameIdx: z.int(), pts: z.number(), count: z.int() })),
  },
  'count.peaks': {
    args: z.object({ token: z.int().positive(), threshold: CountThreshold }).strict(),
    result: z.object({ count: z.int(), points: z.array(CountPoint), threshold: z.number() }),
  },
  'track.start': {
    args: z
      .object({
        modelId: z.int().positive(),
        mediaId: z.int().positive(),
        size: z.int().min(16).max(2048).optional(),
        heads: z.array(z.int().min(0)).min(1).max(16).optional(),
        objects: z.int().min(1).max(16).optional(),
        epsilon: z.number().positive().optional(),
        iterations: z.int().min(1).max(1000).optional(),
        seed: z.int().min(0).optional(),
      })
      .strict(),
    result: JobInfo,
  },
  'track.boxes': {
    args: z.object({ runId: z.int().positive() }).strict(),
    result: z.array(
      z.object({
        object: z.int(),
        frameIdx: z.int(),
        box: z.tuple([z.number(), z.number(), z.number(), z.number()]),
        area: z.int(),
      }),
    ),
  },
  'track.runs': {
    args: z.object({ mediaId: z.int().positive() }).strict(),
    result: z.array(
      z.object({
        id: z.int(),
        modelId: z.int(),
        objects: z.int(),
        grid: PatchGrid,
        frames: z.int(),
        createdAt: z.string(),
      }),
    ),
  },
  'track.frame': {
    args: z.object({ runId: z.int().positive(), frameIdx: z.int().min(0) }).strict(),
    result: z.object({
      grid: PatchGrid,
      objects: z.array(
        z.object({
          object: z.int(),
          box: z.tuple([z.number(), z.number(), z.number(), z.number()]),
          area: z.int(),
          mask: z.array(z.int()),
        }),
      ),
    }),
  },
  'track.mot': { args: z.object({ runId: z.int().positive() }).strict(), result: z.object({ csv: z.string() }) },
  'track.exportMot': {
    args: z.object({ runId: z.int().positive(), path: UserPath }).strict(),
    result: z.object({ path: z.string(), rows: z.int() }),
  },
  'track.exportMasks': {
    args: z
      .object({
        runId: z.int().positive(),
        dir: UserPath.optional(),
        /** 'frame' (default): the stored frames' size; 'source': the video's own size, as segment.batch writes. */
        resolution: z.enum(['frame', 'source']).optional(),
      })
      .strict(),
    result: z.object({ dir: z.string(), frames: z.int() }),
  },
  'track.propagate': { args: PropagateArgs.strict(), result: JobInfo },
  'eval.davis': { args: EvalDavisArgs.strict(), result: JobInfo },
  'track.propagation': { args: PropagationFrameArgs, result: PropagationFrame },
  'train.start': { args: TrainDinoArgs, result: JobInfo },
  'train.export': { args: TrainExportArgs, result: JobInfo },
  'train.import': { args: TrainImportArgs, result: JobInfo },
  'train.log': { args: z.object({ jobId: z.int().positive() }).strict(), result: z.array(TrainLogEntry) },
  'train.previews': {
    /** `lastSteps`: only the previews of the latest N preview steps (the view shows a few while training goes). */
    args: z.object({ jobId: z.int().positive(), lastSteps: z.int().positive().optional() }).strict(),
    result: z.array(z.object({ step: z.int(), frame: z.int(), png: z.string() })),
  },

  'ingest.hashFolder': {
    args: z
      .object({
        root: UserPath,
        recursive: z.boolean().optional(),
        algorithm: z.enum(HASH_ALGORITHMS).optional(),
      })
      .strict(),
    result: JobInfo,
  },
} as const;

export type CommandTable = typeof commands;
export type CommandName = keyof CommandTable;
export type CommandArgs<K extends CommandName> = z.input<CommandTable[K]['args']>;
export type ParsedArgs<K extends CommandName> = z.output<CommandTable[K]['args']>;
export type CommandResult<K extends CommandName> = z.output<CommandTable[K]['result']>;

export const COMMAND_NAMES = Object.keys(commands) as CommandName[];

export function isCommandName(name: unknown): name is CommandName {
  return typeof name === 'string' && Object.hasOwn(commands, name);
}

/** Events pushed from the engine to every connected UI. */
export const EngineEvent = z.discriminatedUnion('type', [
  z.object({ type: z.literal('job.updated'), job: JobInfo }),
  z.object({ type: z.literal('project.changed'), project: ProjectInfo.nullable() }),
  z.object({ type: z.literal('runtime.changed'), runtime: RuntimeInfo }),
  z.object({ type: z.literal('models.changed'), models: z.array(ModelInfo) }),
]);
export type EngineEvent = z.infer<typeof EngineEvent>;

/** The envelope every transport returns for a call. */
export type CallResponse<T = unknown> = { ok: true; result: T } | { ok: false; error: ErrorInfo };
