/**
 * The `text.features` job (`text.features.start`): a long list of texts (a captions file's) encoded into the
 * project's feature cache with progress and cancel; the small `text.features` call stays synchronous. A resumed or
 * repeated job encodes only what is not cached yet.
 */
import { TextFeaturesJobArgs } from '../api/contract.js';
import type { JobHandler } from '../jobs/types.js';
import { jobTextFeatures } from '../train/train-sharelock.js';
import { requireTextModel } from './text-models.js';

export const textFeaturesJob: JobHandler<TextFeaturesJobArgs, null> = {
  kind: 'text.features',
  args: TextFeaturesJobArgs,
  title: (a) => `Text features of ${a.texts.length} texts`,
  async run(ctx) {
    const row = requireTextModel(ctx.project, ctx.args.model, 'llm');
    const { computed } = await jobTextFeatures(ctx, row, ctx.args.texts);
    ctx.commit(
      [{ key: 'features', status: 'ok', result: { model: row.id, texts: ctx.args.texts.length, computed } }],
      null,
    );
  },
};
