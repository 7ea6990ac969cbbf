/**
 * Counting by exemplar: results, thresholds and scales.
 * Part of the engine's contract (contract.ts is the index that exports every name).
 */
import { z } from 'zod';
import { JobInfo } from './jobs.js';

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

/** Boxes [x, y, w, h] in frame pixels (exemplars, negatives). */
export const CountBoxes = z.array(z.tuple([z.number(), z.number(), z.number(), z.number()]));

/** A region of interest: a polygon's corners [x, y] in frame pixels; only what lies inside is counted. */
export const CountRoi = z
  .array(z.tuple([z.number(), z.number()]))
  .min(3)
  .max(500);

/** One input size automatic counting tried, and what it found there. */
export const AutoScaleTrial = z.object({
  factor: z.number(),
  inputWidth: z.int(),
  inputHeight: z.int(),
  tiles: z.int(),
  blobs: z.int(),
  typical: z.int(),
});

/** The commands of this capability (merged into `commands` by contract.ts). */
export const countCommands = {
  'count.exemplar': {
    args: z
      .object({
        modelId: z.int().positive(),
        mediaId: z.int().positive(),
        frameIdx: z.int().min(0),
        /** Exemplar boxes [x, y, w, h] in frame pixels. */
        boxes: CountBoxes.min(1).max(20),
        /**
         * Fixed input sizes (shorter side; the whole image at each, maps averaged). Absent: the scale is chosen from
         * the exemplar (it spans `exemplarPatches` patches) and large images are tiled.
         */
        scales: z.array(z.int().min(16).max(2048)).min(1).max(4).optional(),
        /** The model's input size (shorter side) for the smallest scale allowed; 224 by default. */
        size: z.int().min(16).max(2048).optional(),
        exemplarPatches: z.number().min(1).max(16).optional(),
        threshold: CountThreshold.optional(),
        /** Negative exemplars ("not this"), frame pixels: what is more like one of them is not counted. */
        negatives: CountBoxes.max(20).optional(),
        roi: CountRoi.optional(),
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
        /** The smallest input size tried (shorter side; 224 by default); larger ones follow, doubling. */
        scale: z.int().min(16).max(2048).optional(),
        roi: CountRoi.optional(),
      })
      .strict(),
    result: CountResult.extend({
      clusters: z.array(z.object({ blobs: z.int(), patches: z.int() })),
      chosen: z.int(),
      /** The input size counted at (`exemplarPatches`: the side of a typical object found, in patches). */
      scale: CountScaleInfo,
      trials: z.array(AutoScaleTrial),
    }),
  },
  'count.batch': {
    args: z
      .object({
        modelId: z.int().positive(),
        exemplar: z
          .object({
            mediaId: z.int().positive(),
            frameIdx: z.int().min(0),
            boxes: CountBoxes.min(1).max(20),
          })
          .strict(),
        media: z.array(z.int().positive()).min(1),
        /** Negative exemplars on the exemplar frame and a region of interest, both frame pixels, for every frame. */
        negatives: CountBoxes.max(20).optional(),
        roi: CountRoi.optional(),
        every: z.int().min(1).optional(),
        threshold: CountThreshold.optional(),
      })
      .strict(),
    result: JobInfo,
  },
  'count.results': {
    args: z.object({ jobId: z.int().positive() }).strict(),
    /** Counts of `count.batch` (whole objects) or `count.uncoVideo` (a density map's sum, a decimal). */
    result: z.array(z.object({ mediaId: z.int(), frameIdx: z.int(), pts: z.number(), count: z.number() })),
  },
  'count.peaks': {
    args: z.object({ token: z.int().positive(), threshold: CountThreshold }).strict(),
    result: z.object({ count: z.int(), points: z.array(CountPoint), threshold: z.number() }),
  },
} as const;
