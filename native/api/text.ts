/**
 * Text: the project's language models (decoder LLMs) and ShareLock heads, and text features (issue 29).
 * Part of the engine's contract (contract.ts is the index that exports every name).
 */
import { z } from 'zod';
import { Empty, UserPath } from './common.js';
import { JobInfo } from './jobs.js';
import { ProviderName } from './runtime.js';

export const TextModelKind = z.enum(['llm', 'sharelock-head']);
export type TextModelKind = z.infer<typeof TextModelKind>;

/** A language model as Flaneur runs it (native/text/llama.ts). */
export const LlmInfo = z.object({
  format: z.enum(['gguf', 'safetensors']),
  arch: z.enum(['llama', 'qwen2']),
  /** Width of its text features (the hidden size). */
  dim: z.int(),
  layers: z.int(),
  params: z.int(),
  /** Memory needed to load and run it (float32 weights plus a batch's working memory). */
  memoryBytes: z.number(),
  /** Whether that fits this machine (at most 80 % of its memory); a model that does not is refused when loaded. */
  fits: z.boolean(),
});
export type LlmInfo = z.infer<typeof LlmInfo>;

/** The language model a head was trained on: its feature-cache key when known, else the name it was published with. */
export const HeadTextModel = z.object({
  /** textModelKey of the LLM file (a head trained here); null for an imported official checkpoint. */
  key: z.string().nullable(),
  /** The LLM's name (the registered model's, or the official checkpoint's, e.g. "meta-llama/Meta-Llama-3-8B"). */
  name: z.string().nullable(),
  dim: z.int(),
});
export type HeadTextModel = z.infer<typeof HeadTextModel>;

/** The vision encoder whose normalised CLS features a head was trained on. */
export const HeadVisionModel = z.object({
  /** The registered model it was trained with (a head trained here), else null. */
  modelId: z.int().nullable(),
  sha256: z.string().nullable(),
  /** The model's name (registered, or the official one, e.g. "dinov2_vitl14"). */
  name: z.string().nullable(),
  /** Architecture as far as it is known: family, patch, width, registers. */
  architecture: z
    .object({
      family: z.enum(['dino', 'dinov2', 'dinov3']).nullable(),
      patchSize: z.int().nullable(),
      dim: z.int(),
      registers: z.int().nullable(),
    })
    .strict(),
});
export type HeadVisionModel = z.infer<typeof HeadVisionModel>;

export const ShareLockHeadConfig = z.object({
  textDim: z.int(),
  visionDim: z.int(),
  hidden: z.int(),
  layers: z.int(),
  dropout: z.number(),
});

export const HeadInfo = z.object({
  textModel: HeadTextModel,
  vision: HeadVisionModel,
  config: ShareLockHeadConfig,
});
export type HeadInfo = z.infer<typeof HeadInfo>;

export const TextModelInfo = z.object({
  id: z.int(),
  kind: TextModelKind,
  name: z.string(),
  /** LLM: the file where the user keeps it (never copied: gigabytes); head: its copy in the project. */
  file: z.string(),
  bytes: z.number(),
  /** A sentence: what it is, its size and the memory it needs (an LLM), what it pairs with (a head). */
  summary: z.string(),
  /** LLM: its feature-cache key (textModelKey); head: the SHA-256 of the imported file. */
  key: z.string(),
  llm: LlmInfo.nullable(),
  head: HeadInfo.nullable(),
  /** How a head was made (trained here: data, steps; imported: from which checkpoint); null for an LLM. */
  origin: z.string().nullable(),
  createdAt: z.string(),
});
export type TextModelInfo = z.infer<typeof TextModelInfo>;

/**
 * `train.sharelock`: a ShareLock head trained on precomputed features (the trainer's objective; official defaults
 * from JonaRuthardt/ShareLock configs/default_config.yaml). Image side: the CLS of a feature run (normalised in
 * the step); text side: the language model's features (cached per text). Data: labelled folders, captions, or both.
 */
export const TrainShareLockArgs = z
  .object({
    /** The language model (`text.models.list`, kind 'llm'). */
    textModel: z.int().positive(),
    /** A feature run of the vision model (its CLS vectors are the image features). */
    runId: z.int().positive(),
    /**
     * A labelled folder (sub-folder = class; its images in the library, with features in the run): prompts from
     * `template` per class, the classes split into seen (trained on) and unseen (held out for zero-shot) sets —
     * the named `unseen` ones, else `unseenFraction` of them drawn with the seed.
     */
    classes: z
      .object({
        root: UserPath,
        template: z.string().min(1).max(500).default('a photo of a {}'),
        unseen: z.array(z.string().min(1).max(500)).max(10000).optional(),
        unseenFraction: z.number().min(0).max(0.95).default(0.5),
      })
      .strict()
      .optional(),
    /** A captions file: CSV (path,caption), JSON Lines, or COCO captions JSON; image paths relative to `imagesDir`. */
    captions: z
      .object({
        file: UserPath,
        format: z.enum(['auto', 'csv', 'jsonl', 'coco']).default('auto'),
        imagesDir: UserPath.optional(),
      })
      .strict()
      .optional(),
    steps: z.int().min(1).max(10_000_000).default(5000),
    /** Pairs per micro-batch (at most the number of pairs); official 1024. */
    batch: z.int().min(2).max(65536).default(1024),
    /** Micro-batches per optimizer step (official 16). */
    accumulation: z.int().min(1).max(256).default(1),
    lr: z.number().positive().max(1).default(1e-3),
    warmupSteps: z.int().min(0).default(150),
    weightDecay: z.number().min(0).default(1e-4),
    maxGradNorm: z.number().positive().default(1),
    hidden: z.int().min(1).max(16384).default(4096),
    layers: z.int().min(1).max(16).default(4),
    dropout: z.number().min(0).max(0.9).default(0.2),
    seed: z.int().min(0).default(0),
    device: z.union([ProviderName, z.literal('auto')]).optional(),
    checkpointEvery: z.int().min(1).default(50),
    name: z.string().min(1).max(200).optional(),
    /**
     * Validation as the official code does it: this share of the images (and their pairs) held out with the seed
     * (official: 50,000 images), their contrastive loss in eval mode every `valEvery` steps (official 500) into
     * the training log; the head exported is the one of the lowest validation loss. 0: none.
     */
    valFraction: z.number().min(0).max(0.5).default(0),
    valEvery: z.int().min(1).default(500),
    /** Early stopping: after this many validations without a loss `minDelta` below the best, stop (official 50, 0.1). 0: off. */
    patience: z.int().min(0).default(0),
    minDelta: z.number().min(0).default(0.1),
  })
  .strict()
  .refine((a) => Boolean(a.classes || a.captions), {
    message: 'give a labelled folder (classes), a captions file, or both',
  })
  .refine((a) => a.patience === 0 || a.valFraction > 0, {
    message: 'early stopping (patience) needs a validation split: give valFraction too',
    path: ['patience'],
  });
export type TrainShareLockArgs = z.output<typeof TrainShareLockArgs>;

/** Most texts one `text.features` call takes (a file is sent in parts by the CLI). */
export const MAX_TEXTS_PER_CALL = 4096;

/** Above this many texts, `flaneur text features` runs the `text.features` job (progress, cancel) before reading. */
export const TEXT_FEATURES_JOB_THRESHOLD = 1000;

/** `text.features.start`: a long list of texts encoded into the project's cache as a job. */
export const TextFeaturesJobArgs = z
  .object({
    model: z.int().positive(),
    texts: z.array(z.string().min(1).max(20000)).min(1).max(1_000_000),
  })
  .strict();
export type TextFeaturesJobArgs = z.output<typeof TextFeaturesJobArgs>;

/** The commands of this capability (merged into `commands` by contract.ts). */
export const textCommands = {
  'text.models.list': { args: Empty, result: z.array(TextModelInfo) },
  /**
   * Registers a language model (.gguf, or .safetensors with config.json and tokenizer.json beside it; kept where it
   * is) or a ShareLock head (.safetensors saved by Flaneur, or an official Lightning .ckpt; copied into the
   * project). The same file again returns the model already there (`existed`).
   */
  'text.models.import': {
    args: z
      .object({
        path: UserPath,
        name: z.string().min(1).max(200).optional(),
      })
      .strict(),
    result: TextModelInfo.extend({ existed: z.boolean() }),
  },
  /**
   * Forgets a language model (its file stays where it is) or a ShareLock head (its copy in the project goes);
   * refused while a job uses it. Returns the text models left.
   */
  'text.models.remove': { args: z.object({ id: z.int().positive() }).strict(), result: z.array(TextModelInfo) },
  /**
   * Text features of a language model (ShareLock's: the final-norm last-token state), cached in the project per
   * (model, text): each text is encoded once. `vectors: false` only fills the cache (a long list of captions).
   */
  'text.features': {
    args: z
      .object({
        model: z.int().positive(),
        texts: z.array(z.string().min(1).max(20000)).min(1).max(MAX_TEXTS_PER_CALL),
        vectors: z.boolean().optional(),
      })
      .strict(),
    result: z.object({
      model: z.int(),
      dim: z.int(),
      /** Texts encoded by this call (the others came from the cache). */
      computed: z.int(),
      /** One vector per text, in order; empty with `vectors: false`. */
      features: z.array(z.array(z.number())),
    }),
  },
  /** Trains a ShareLock head (a job; the head is registered in `text.models.list` when it ends). */
  'train.sharelock': { args: TrainShareLockArgs, result: JobInfo },
  /**
   * A long list of texts (captions) encoded into the project's feature cache as a job: progress per chunk, cancel
   * between chunks, what was encoded stays cached (a resume or a later `text.features` reads it).
   */
  'text.features.start': { args: TextFeaturesJobArgs, result: JobInfo },
} as const;
