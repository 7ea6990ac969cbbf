/**
 * Segmentation: label masks, palettes, dense retrieval (Hummingbird) and its runs.
 * Part of the engine's contract (contract.ts is the index that exports every name).
 */
import { z } from 'zod';
import { Empty, UserPath } from './common.js';
import { JobInfo } from './jobs.js';

/**
 * How a label mask's values are read: 'auto' recognises class ids, 0/255 and 0/1 binary, palette PNGs, colour
 * masks and JPEG noise (and warns); 'ids': value = class id, 255 = ignore; 'binary': dark = class 0, bright = 1.
 */
export const MaskValues = z.enum(['auto', 'ids', 'binary']);

const Palette = z
  .array(z.tuple([z.int().min(0).max(255), z.int().min(0).max(255), z.int().min(0).max(255)]))
  .min(1)
  .max(256);

/** The commands of this capability (merged into `commands` by contract.ts). */
export const segmentCommands = {
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
} as const;
