/**
 * UnCo ("Learning to Count without Annotations"): training a counting decoder on Self-Collages of the project's own
 * frames (`train.unco`, an objective of the one trainer), the trained counters, and counting with one.
 * Part of the engine's contract (contract.ts is the index that exports every name).
 */
import { z } from 'zod';
import { UserPath } from './common.js';
import { CountBoxes } from './count.js';
import { JobInfo } from './jobs.js';
import { ProviderName } from './runtime.js';

/** What a run's Self-Collages are made of and how (`train.unco` and `train.uncoPreview` share them). */
const collageFields = {
  /** The frozen backbone: a registered model (default: the project's default model). */
  model: z.int().positive().optional(),
  /** Media items whose sampled frames give the objects and backgrounds (default: every ingested item). */
  media: z.array(z.int().positive()).optional(),
  /** Frames the collage library is built from (evenly spaced over the chosen media's frames). */
  libraryFrames: z.int().min(1).max(2000).default(48),
  /**
   * Objects cut at pixel level (the attention's salient patches refined by colour contrast with the rest of the
   * frame, split into connected components); false: the salient patch regions themselves.
   */
  pixelObjects: z.boolean().default(true),
  /** Object types found by k-means over the objects' features. */
  types: z.int().min(2).max(64).default(8),
  /** Target objects per collage: N uniform in [1, maxCount]; `total` objects pasted with the distractors. */
  maxCount: z.int().min(1).max(500).default(60),
  total: z.int().min(1).max(600).default(70),
  /** Mean pasted object size range in pixels of the 224 px collage. */
  pasteSize: z.tuple([z.int().min(2).max(200), z.int().min(2).max(220)]).default([10, 34]),
  /** Largest random rotation of a pasted object in degrees. */
  rotation: z.number().min(0).max(180).default(30),
  /** Density mass of one object (count = the map's sum / scaling). */
  scaling: z.number().positive().max(1e6).default(100),
  seed: z.int().min(0).default(0),
};

/** How a counter trains (`train.unco` and `train.uncoExport`). */
const trainFields = {
  steps: z.int().min(1).max(1_000_000).default(900),
  /** Collages per step. */
  batch: z.int().min(1).max(256).default(4),
  /** AdamW (the official optimiser): peak learning rate, linear warm-up over `warmup` of the steps, cosine to 0. */
  lr: z.number().positive().max(1).default(1e-3),
  warmup: z.number().min(0).max(0.9).default(0.1),
  weightDecay: z.number().min(0).max(1).default(1e-2),
  /** Exemplars per collage; 0 trains the reference-less (automatic) counter. */
  shots: z.int().min(0).max(3).default(1),
  /**
   * Decoder size: 'small' (embed 64, 4 heads, 32 channels, density at twice the patch grid: fits a CPU) or
   * 'official' (UnCounTRModel.py's defaults: embed 512, 16 heads, 256 channels, density at the input size).
   */
  decoder: z.enum(['small', 'official']).default('small'),
  /** Execution provider for this run; default the engine's setting (Device view). Falls back to the CPU. */
  device: z.union([ProviderName, z.literal('auto')]).optional(),
  checkpointEvery: z.int().min(1).default(50),
  /** A collage, its target and the prediction every N steps (and at the start and end); 0: none. */
  previewEvery: z.int().min(0).default(50),
  /** The held-out collage MAE every N steps (and at the first and last step). */
  evalEvery: z.int().min(1).default(50),
  /** Held-out collages (a generator of their own, never trained on). */
  evalCollages: z.int().min(1).max(256).default(16),
  /** Name of the trained counter. */
  name: z.string().min(1).max(200).optional(),
};

export const TrainUncoArgs = z
  .object({
    ...collageFields,
    ...trainFields,
    /**
     * Collages drawn once (their backbone features computed once) that every step samples its batch from; 0 draws
     * new collages for every step (slower: building and encoding a collage costs more than a small decoder's step).
     */
    pool: z.int().min(0).max(4096).default(0),
  })
  .strict()
  .refine((a) => a.total >= a.maxCount, { message: 'total must be at least maxCount', path: ['total'] })
  .refine((a) => a.pasteSize[0] <= a.pasteSize[1], { message: 'pasteSize must be [min, max]', path: ['pasteSize'] });

export type TrainUncoArgs = z.output<typeof TrainUncoArgs>;

/**
 * `train.uncoExport`: the run as a folder for PyTorch's torchrun (count/unco-export.ts): a pool of Self-Collages
 * built here (images, density targets, exemplar boxes) and held-out ones, the frozen backbone, the decoder's start.
 */
export const TrainUncoExportArgs = z
  .object({
    ...collageFields,
    ...trainFields,
    /** The folder to write: new or empty. */
    dir: UserPath,
    /** Training collages built (the program draws each step's batch from them; Flaneur draws new ones every step). */
    pool: z.int().min(1).max(100_000).default(512),
  })
  .strict()
  .refine((a) => a.total >= a.maxCount, { message: 'total must be at least maxCount', path: ['total'] })
  .refine((a) => a.pasteSize[0] <= a.pasteSize[1], { message: 'pasteSize must be [min, max]', path: ['pasteSize'] });

export type TrainUncoExportArgs = z.output<typeof TrainUncoExportArgs>;

/** `train.uncoImport`: the decoder a torchrun run of such a folder wrote (OUT/decoder.safetensors), as a counter. */
export const TrainUncoImportArgs = z
  .object({
    /** The export folder (its out/decoder.safetensors) or the decoder file itself. */
    path: UserPath,
    name: z.string().min(1).max(200).optional(),
  })
  .strict();

export type TrainUncoImportArgs = z.output<typeof TrainUncoImportArgs>;

/** `train.uncoPreview`: a few Self-Collages of a run's settings, built without training (what the counter learns from). */
export const UncoPreviewArgs = z
  .object({
    ...collageFields,
    /** Collages to build (drawn one after another from a generator seeded with `seed`). */
    collages: z.int().min(1).max(16).default(4),
  })
  .strict()
  .refine((a) => a.total >= a.maxCount, { message: 'total must be at least maxCount', path: ['total'] })
  .refine((a) => a.pasteSize[0] <= a.pasteSize[1], { message: 'pasteSize must be [min, max]', path: ['pasteSize'] });

export type UncoPreviewArgs = z.output<typeof UncoPreviewArgs>;

export const UncoPreviewCollage = z.object({
  /** The collage (PNG data URL, `size` px square). */
  png: z.string(),
  /** Its density target as a heat image (PNG data URL, scaled to its own maximum). */
  densityPng: z.string(),
  /** N: the target objects pasted. */
  count: z.int(),
  /** The density target's sum / scaling (N up to float rounding). */
  targetSum: z.number(),
  /** Objects of other types pasted beside the targets. */
  distractors: z.int(),
  /** Exemplar boxes [x, y, w, h] in collage pixels (up to 3 of the targets). */
  exemplars: CountBoxes,
  /** True when the last placement try pasted objects over each other. */
  overlapping: z.boolean(),
});

export const UncoPreviewResult = z.object({
  size: z.int(),
  /** Frames the library was built from, the objects found in them without labels, and their types. */
  frames: z.int(),
  objects: z.int(),
  types: z.int(),
  collages: z.array(UncoPreviewCollage),
});

/** A trained counter: a finished `train.unco` job's exported decoder. */
export const UncoCounter = z.object({
  jobId: z.int(),
  name: z.string(),
  /** The frozen backbone it was trained on (a registered model). */
  modelId: z.int(),
  /** Exemplars it takes (0: reference-less, counts automatically). */
  shots: z.int(),
  steps: z.int(),
  /** The held-out collage MAE at the end of its training (and always predicting their mean count). */
  heldoutMae: z.number().nullable(),
  heldoutMeanMae: z.number().nullable(),
});

export const UncoCountResult = z.object({
  /** The density map's sum / scaling. */
  count: z.number(),
  /** The density map (side × side, row-major, the whole frame squashed to a square), in objects per cell. */
  density: z.array(z.number()),
  side: z.int(),
  width: z.int(),
  height: z.int(),
  jobId: z.int(),
});

/** `count.uncoVideo`: every (Nth) frame of an item counted with a trained counter, as a job (resumable). */
export const CountUncoVideoArgs = z
  .object({
    /** The counter (its training job). */
    jobId: z.int().positive(),
    mediaId: z.int().positive(),
    /** Exemplar boxes [x, y, w, h] in frame pixels on `exemplarFrameIdx` (a counter trained with exemplars needs one). */
    boxes: CountBoxes.max(20).default([]),
    exemplarFrameIdx: z.int().min(0).default(0),
    /** Every Nth frame (from the first). */
    every: z.int().min(1).default(1),
  })
  .strict();

export type CountUncoVideoArgs = z.output<typeof CountUncoVideoArgs>;

/** The commands of this capability (merged into `commands` by contract.ts). */
export const uncoCommands = {
  'train.unco': { args: TrainUncoArgs, result: JobInfo },
  'train.uncoPreview': { args: UncoPreviewArgs, result: UncoPreviewResult },
  'train.uncoExport': { args: TrainUncoExportArgs, result: JobInfo },
  'train.uncoImport': { args: TrainUncoImportArgs, result: JobInfo },
  /** Per-frame counts: `count.results` of the job (a decimal count per frame), for the curve and the CSV. */
  'count.uncoVideo': { args: CountUncoVideoArgs, result: JobInfo },
  'count.counters': { args: z.object({}).strict(), result: z.array(UncoCounter) },
  'count.unco': {
    args: z
      .object({
        /** The counter (its training job). */
        jobId: z.int().positive(),
        mediaId: z.int().positive(),
        frameIdx: z.int().min(0),
        /** Exemplar boxes [x, y, w, h] in frame pixels (a counter trained with exemplars needs at least one). */
        boxes: CountBoxes.max(20).default([]),
        /** The frame of the same item the boxes are drawn on (a video's other frames counted with them). */
        exemplarFrameIdx: z.int().min(0).optional(),
      })
      .strict(),
    result: UncoCountResult,
  },
} as const;
