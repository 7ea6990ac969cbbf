/**
 * What a model is, said where it is chosen: where it comes from, how much training went into it, whether its quality
 * was checked, and what to do for real results (issue 26).
 */
import { z } from 'zod';

export const ModelAbout = z.object({
  /** bundled: the app's own starter encoder; published: a catalog checkpoint; trained: made in this project. */
  kind: z.enum(['bundled', 'published', 'trained', 'imported']),
  /** Where it comes from, in a sentence. */
  provenance: z.string(),
  /** How much training went into it (steps, frames, time, machine), or null where the publisher's page says. */
  budget: z.string().nullable(),
  /** True only where a measurement or a published checksum backs it. */
  verified: z.boolean(),
  /** What "verified" rests on, or why not, in a sentence (with the manifest's own figures where there are some). */
  verdict: z.string(),
  /** True where a published model (Models → Get models) would give real results. */
  suggestPublished: z.boolean(),
});
export type ModelAbout = z.infer<typeof ModelAbout>;
