/**
 * The project's default model: the one every command uses when none is named. Set explicitly
 * (`models.setDefault`), or else the newest model registered (trained, imported or downloaded).
 */
import { z } from 'zod';

export const DefaultModel = z
  .object({
    id: z.int(),
    name: z.string(),
    /** 'set': chosen with models.setDefault; 'newest': the newest registered model (nothing was set). */
    chosen: z.enum(['set', 'newest']),
  })
  .nullable();
export type DefaultModel = z.infer<typeof DefaultModel>;

export const DefaultModelArgs = z.object({}).strict();
/** `id: null` forgets the choice (the newest model is the default again). */
export const SetDefaultModelArgs = z.object({ id: z.int().positive().nullable() }).strict();
