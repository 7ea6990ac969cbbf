/**
 * FUNGI gradient features.
 * Part of the engine's contract (contract.ts is the index that exports every name).
 */
import { z } from 'zod';
import { Empty } from './common.js';

const Range = z.tuple([z.number().min(0).max(1), z.number().min(0).max(1)]);

/** FUNGI gradient features (native/fungi): the paper's settings by default, every one an argument. */
export const FungiArgs = z
  .object({
    modelId: z.int().positive(),
    media: z.array(z.int().positive()).optional(),
    size: z.int().min(16).max(1024).default(224),
    objectives: z
      .array(z.enum(['kl', 'dino', 'simclr']))
      .min(1)
      .default(['kl', 'dino', 'simclr']),
    seed: z.int().min(0).default(0),
    pcaDim: z.int().min(2).max(4096).default(512),
    kl: z.object({ temperature: z.number().positive() }).partial().strict().optional(),
    dino: z
      .object({
        teacherTemp: z.number().positive(),
        studentTemp: z.number().positive(),
        latentDim: z.int().min(2).max(65536),
        globalViews: z.int().min(1).max(8),
        localViews: z.int().min(0).max(32),
        globalScale: Range,
        localScale: Range,
      })
      .partial()
      .strict()
      .optional(),
    simclr: z
      .object({
        temperature: z.number().positive(),
        latentDim: z.int().min(2).max(4096),
        numPatches: z.int().min(1).max(64),
        strideScale: z.int().min(1).max(32),
        negatives: z.int().min(1).max(1024),
      })
      .partial()
      .strict()
      .optional(),
    /** Views per graph run (memory): samples per run = floor(viewBudget / views per sample). */
    viewBudget: z.int().min(1).max(1024).default(48),
  })
  .strict();

/** The commands of this capability (merged into `commands` by contract.ts). */
export const fungiCommands = {
  'fungi.runs': {
    args: Empty,
    result: z.array(
      z.object({
        id: z.int(),
        modelId: z.int(),
        modelName: z.string(),
        frames: z.int(),
        /** Sampled frames of the library's readable items now: more than `frames` means vectors are missing. */
        libraryFrames: z.int(),
        dim: z.int(),
        pcaDim: z.int().nullable(),
        settings: z.record(z.string(), z.unknown()),
        createdAt: z.string(),
      }),
    ),
  },
} as const;
