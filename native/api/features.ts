/**
 * Feature extraction: runs, model inputs (resize policy, patch grids), frame vectors.
 * Part of the engine's contract (contract.ts is the index that exports every name).
 */
import { z } from 'zod';
import { Empty, UserPath } from './common.js';
import { FungiArgs } from './fungi.js';
import { JobInfo } from './jobs.js';

/** How frames become model inputs: the aspect ratio kept (shorter side = input size) or squashed to a square. */
export const ResizePolicy = z.enum(['aspect', 'square']);

/** A frame's patch grid: rows and columns. */
export const PatchGrid = z.object({ gridH: z.int(), gridW: z.int() });

/** Which vectors describe a frame: the run's CLS embeddings, or the FUNGI vectors of the run's model. */
export const FeatureKind = z.enum(['embedding', 'fungi']);

/** The commands of this capability (merged into `commands` by contract.ts). */
export const featuresCommands = {
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
  'features.fungi': { args: FungiArgs, result: JobInfo },
} as const;
