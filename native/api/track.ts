/**
 * Object discovery and tracking (Dora), mask propagation and its DAVIS evaluation (schemas in propagate.ts).
 * Part of the engine's contract (contract.ts is the index that exports every name).
 */
import { z } from 'zod';
import { UserPath } from './common.js';
import { PatchGrid } from './features.js';
import { JobInfo } from './jobs.js';
import { EvalDavisArgs, PropagateArgs, PropagationFrame, PropagationFrameArgs } from './propagate.js';

/** The commands of this capability (merged into `commands` by contract.ts). */
export const trackCommands = {
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
} as const;
