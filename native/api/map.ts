/**
 * Maps (UMAP of frame vectors), classification and clustering.
 * Part of the engine's contract (contract.ts is the index that exports every name).
 */
import { z } from 'zod';
import { Empty, UserPath } from './common.js';
import { FeatureKind } from './features.js';
import { JobInfo } from './jobs.js';

const MapPoint = z.object({ mediaId: z.int(), frameIdx: z.int(), x: z.number(), y: z.number(), cluster: z.int() });

/**
 * What a classification of frames reports (kNN's `classify.knn`, zero-shot's `classify.zeroShot`): the classes,
 * the score on the labelled frames, and the predicted class of the others.
 */
export const ClassifyOutcome = z.object({
  classes: z.array(z.string()),
  evaluated: z.int(),
  accuracy: z.number(),
  /** confusion[true][predicted] */
  confusion: z.array(z.array(z.int())),
  misclassified: z.array(
    z.object({ mediaId: z.int(), frameIdx: z.int(), truth: z.int(), predicted: z.int(), confidence: z.number() }),
  ),
  /** Frames outside the labelled folders, with their predicted class. */
  predictions: z.array(z.object({ mediaId: z.int(), frameIdx: z.int(), predicted: z.int(), confidence: z.number() })),
});

/** The commands of this capability (merged into `commands` by contract.ts). */
export const mapCommands = {
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
    result: ClassifyOutcome.extend({
      features: FeatureKind,
      /** Library items labelled by content: their file lies under a class folder at another path (a copy). */
      attachedByContent: z.int().optional(),
      /** Files under the class folders that label no library item, with why (the first 50; `total` in all). */
      unlabelled: z
        .object({
          total: z.int(),
          files: z.array(
            z.object({
              path: z.string(),
              code: z.enum(['UNREADABLE', 'NOT_IN_LIBRARY', 'NOT_INGESTED', 'TWO_CLASSES']),
              reason: z.string(),
            }),
          ),
        })
        .optional(),
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
} as const;
