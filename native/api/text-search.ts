/**
 * Text search (issue 29): images ranked by a typed text, zero-shot classes from typed names, a map coloured by a
 * text, through a ShareLock head, the language model it was trained on, and a feature run of its vision encoder.
 * Part of the engine's contract (contract.ts is the index that exports every name).
 */
import { z } from 'zod';
import { UserPath } from './common.js';
import { ClassifyOutcome } from './map.js';

/**
 * Which head, language model and feature run answer a text. Each may be left out: the newest head, the language
 * model it was trained on, and the newest feature run of its vision encoder are taken (and said in the result).
 */
const TextPair = {
  head: z.int().positive().optional(),
  textModel: z.int().positive().optional(),
  runId: z.int().positive().optional(),
};

/** What answered: the head, the language model, the feature run (and the names to show). */
export const TextPairInfo = z.object({
  head: z.int(),
  headName: z.string(),
  textModel: z.int(),
  textModelName: z.string(),
  runId: z.int(),
  /** Texts the language model encoded for this call (the others came from the project's cache). */
  computed: z.int(),
});

const Query = z.string().trim().min(1).max(2000);

/** The commands of this capability (merged into `commands` by contract.ts). */
export const textSearchCommands = {
  /**
   * Whether a text can be searched now, and why not: no head, no language model for it, no features of its
   * vision encoder (what the views' disabled buttons say). Never an error for a missing piece.
   */
  'text.search.ready': {
    args: z.object(TextPair).strict(),
    result: z.object({
      ready: z.boolean(),
      /** A sentence when not ready. */
      why: z.string().nullable(),
      head: z.int().nullable(),
      headName: z.string().nullable(),
      textModel: z.int().nullable(),
      textModelName: z.string().nullable(),
      runId: z.int().nullable(),
    }),
  },
  'retrieve.text': {
    args: z.object({ ...TextPair, text: Query, k: z.int().min(1).max(1000).optional() }).strict(),
    result: TextPairInfo.extend({
      text: z.string(),
      /** Frames of the run that were ranked. */
      searched: z.int(),
      results: z.array(z.object({ mediaId: z.int(), frameIdx: z.int(), sim: z.number() })),
    }),
  },
  /**
   * Zero-shot classification of a run's frames from class names: each name in several prompt templates, embedded,
   * averaged. With a labelled folder (sub-folder = class, matched to the names ignoring case, `_` and `-`), its
   * frames are scored: accuracy and confusion matrix.
   */
  'classify.zeroShot': {
    args: z
      .object({
        ...TextPair,
        classes: z.array(z.string().trim().min(1).max(200)).min(2).max(1000),
        /** Prompt templates with `{}` for the name (default: ShareLock's and CLIP's seven). */
        templates: z.array(z.string().min(2).max(200)).min(1).max(32).optional(),
        root: UserPath.optional(),
      })
      .strict(),
    result: ClassifyOutcome.extend(TextPairInfo.shape).extend({
      method: z.literal('zero-shot'),
      templates: z.array(z.string()),
      /** Labelled frames whose folder names no typed class (not scored). */
      unmatched: z.int(),
      /** Folder names under `root` that no typed class matched. */
      unmatchedFolders: z.array(z.string()),
    }),
  },
  /** Every point of a map scored by its cosine similarity to a text (the map must be of CLS embeddings). */
  'map.textSimilarity': {
    args: z
      .object({
        mapId: z.int().positive(),
        head: TextPair.head,
        textModel: TextPair.textModel,
        text: Query,
      })
      .strict(),
    result: TextPairInfo.extend({
      /** Per point of `map.get`'s points, in order. */
      sims: z.array(z.number()),
      min: z.number(),
      max: z.number(),
    }),
  },
} as const;
