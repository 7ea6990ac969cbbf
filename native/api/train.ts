/**
 * Training (DINO, Dora, NeCo; export to PyTorch and import back) and its logs and previews.
 * Part of the engine's contract (contract.ts is the index that exports every name).
 */
import { z } from 'zod';
import { JobInfo } from './jobs.js';
import { ProviderName } from './runtime.js';

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
  /** The validation loss, at the steps that validated (ShareLock with a validation split); null elsewhere. */
  valLoss: z.number().nullable().optional(),
});

/** The commands of this capability (merged into `commands` by contract.ts). */
export const trainCommands = {
  'train.start': { args: TrainDinoArgs, result: JobInfo },
  'train.export': { args: TrainExportArgs, result: JobInfo },
  'train.import': { args: TrainImportArgs, result: JobInfo },
  'train.log': { args: z.object({ jobId: z.int().positive() }).strict(), result: z.array(TrainLogEntry) },
  'train.previews': {
    /** `lastSteps`: only the previews of the latest N preview steps (the view shows a few while training goes). */
    args: z.object({ jobId: z.int().positive(), lastSteps: z.int().positive().optional() }).strict(),
    result: z.array(z.object({ step: z.int(), frame: z.int(), png: z.string() })),
  },
} as const;
