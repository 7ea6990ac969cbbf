/**
 * Retrieval: frames and patches like a query.
 * Part of the engine's contract (contract.ts is the index that exports every name).
 */
import { z } from 'zod';
import { FeatureKind, PatchGrid } from './features.js';

/** The commands of this capability (merged into `commands` by contract.ts). */
export const retrieveCommands = {
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
} as const;
