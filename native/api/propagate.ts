/**
 * Mask propagation through a video and the DAVIS benchmark runner: argument and result schemas (the commands are
 * registered in contract.ts). Defaults are DINO's video segmentation protocol (eval_video_segmentation.py).
 */
import { z } from 'zod';

const Path = z.string().min(1, 'must not be empty').max(4096);

/** DINO's protocol, every parameter a choice. */
export const PropagationParams = z.object({
  /** Most recent predicted frames kept as context beside the first (DINO: 7; Flaneur's default 3, bench/README.md). */
  context: z.int().min(0).max(64).default(3),
  /** Neighbours a patch takes its label from (DINO: 5). */
  topk: z.int().min(1).max(100).default(5),
  /** Neighbourhood half-size in patches; 0 = the whole frame (DINO: 12). */
  radius: z.int().min(0).max(256).default(12),
  /** Affinity exp(cos / temperature) (DINO: 0.1). */
  temperature: z.number().positive().max(10).default(0.1),
  /**
   * Neighbourhood half-size for the first frame's patches, 0 = the whole frame; absent = `radius` (DINO's protocol).
   * An object that left the frame and comes back elsewhere finds its first-frame patches again.
   */
  firstRadius: z.int().min(0).max(256).optional(),
  /**
   * Weight of a first-frame prior, 0 to 1 (DINO: 0): each patch's labels mixed with those of its top-k most similar
   * patches anywhere in the first frame, so objects that come back or were lost are found again.
   */
  firstPrior: z.number().min(0).max(1).default(0),
  /**
   * Re-identification of lost objects (null = off, DINO's; Flaneur's default -0.05): the cosine margin δ by which a patch must look more like
   * a lost object's first-frame patches than like its recent neighbourhood to take that object's label
   * (native/track/propagate.ts).
   */
  reidentify: z.number().min(-1).max(1).nullable().default(-0.05),
  /** Input size: the shorter side of the network input (DINO: 480), the frame's aspect ratio kept. */
  size: z.int().min(224).max(896).default(480),
  /**
   * Upsampling of the patch labels: 'input' (DINO: bilinear to the network input, then nearest to the source) or
   * 'source' (bilinear straight to the source's size).
   */
  upsample: z.enum(['input', 'source']).default('input'),
});

/** Where the start masks come from: a mask image (drawn masks are saved as PNG), a Dora track run's objects. */
export const StartMasks = z.union([
  z.object({
    /** PNG of instance ids: a palette PNG (index = object), 0/255 (one object) or gray ids; 0 = background. */
    mask: Path,
  }),
  z.object({
    /** A Dora run of this item: its objects on the start frame (nearest to it in time) become the objects. */
    trackRun: z.int().positive(),
    objects: z.array(z.int().min(1)).optional(),
  }),
]);

export const PropagateArgs = PropagationParams.extend({
  modelId: z.int().positive(),
  mediaId: z.int().positive(),
  start: StartMasks,
  /** The run's frame (0-based) the start masks belong to. */
  fromFrame: z.int().min(0).default(0),
  /** Or its time in the source (seconds): the run's frame nearest to it (the Player's frames are a sample). */
  fromTime: z.number().min(0).optional(),
  /** Every Nth frame of the source (1 = every frame). */
  every: z.int().min(1).max(1000).default(1),
  direction: z.enum(['forward', 'backward', 'both']).default('both'),
  /** Output folder (DAVIS layout: 00000.png …, palette PNGs at the source's size); default <project>/exports/propagate-<job>. */
  outDir: Path.optional(),
  /** Truth masks (a folder of PNGs named like the output, or in name order) to score J and F against. */
  truth: Path.optional(),
});
export type PropagateArgs = z.output<typeof PropagateArgs>;

export const EvalDavisArgs = PropagationParams.extend({
  modelId: z.int().positive(),
  /** The DAVIS root: JPEGImages/<resolution>/<seq>/*.jpg and Annotations/<resolution>/<seq>/*.png. */
  root: Path,
  resolution: z.string().min(1).max(32).default('480p'),
  /** Sequences to run (default: every sequence with annotations). */
  sequences: z.array(z.string().min(1)).optional(),
  /** Write each sequence's predicted masks under this folder (DAVIS results layout); nothing is written otherwise. */
  masksDir: Path.optional(),
});
export type EvalDavisArgs = z.output<typeof EvalDavisArgs>;

export const ObjectScore = z.object({ object: z.int(), J: z.number(), F: z.number(), JF: z.number(), frames: z.int() });

export const SequenceScore = z.object({
  sequence: z.string(),
  frames: z.int(),
  J: z.number(),
  F: z.number(),
  JF: z.number(),
  objects: z.array(ObjectScore),
});
export type SequenceScore = z.infer<typeof SequenceScore>;

export const DavisResult = z.object({
  /** Means over every object of every sequence (the DAVIS toolkit's J&F-Mean). */
  J: z.number(),
  F: z.number(),
  JF: z.number(),
  sequences: z.array(SequenceScore),
  frames: z.int(),
  msPerFrame: z.number(),
  settings: z.record(z.string(), z.unknown()),
});
export type DavisResult = z.infer<typeof DavisResult>;

/** The Player's overlay: a propagation job's mask of the run frame nearest to a time, at the stored frames' size. */
export const PropagationFrameArgs = z
  .object({ jobId: z.int().positive(), pts: z.number().min(0), width: z.int().positive(), height: z.int().positive() })
  .strict();
export const PropagationFrame = z.object({
  dir: z.string(),
  /** The run's frame shown (0-based), null when none is written yet. */
  frame: z.int().nullable(),
  frames: z.int(),
  objects: z.int(),
  /** Instance id per pixel (width × height, row-major), base64; null when the frame is not written yet. */
  ids: z.string().nullable(),
});
