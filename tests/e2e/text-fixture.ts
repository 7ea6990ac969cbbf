/**
 * What the text e2e tests start from: a project's library with the CLS features of a freshly initialised ViT, so a
 * ShareLock head (tests/helpers/text-head.ts) can be written against that feature run.
 */
import path from 'node:path';
import { expect } from 'vitest';
import type { ModelInfo } from '../../native/api/contract.js';
import { writeInitViT } from '../helpers/models.js';
import type { Session } from './browser.js';

/** Adds `root` to the open project, imports the ViT, extracts features at 32 px; `frames`: how many `root` holds. */
export async function libraryWithFeatures(
  s: Session,
  o: { root: string; work: string; frames: number },
): Promise<{ vision: ModelInfo; runId: number }> {
  await s.engine.call('library.add', { paths: [o.root] });
  const vision = (await s.engine.call('models.import', {
    path: writeInitViT(path.join(o.work, 'vit.safetensors')),
  })) as ModelInfo;
  await expect
    .poll(async () => ((await s.engine.call('library.list', { status: 'done' })) as { total: number }).total, {
      timeout: 120_000,
    })
    .toBe(o.frames);
  await s.engine.call('features.extract', { modelId: vision.id, size: 32 });
  await expect
    .poll(async () => ((await s.engine.call('features.runs', {})) as { frames: number }[])[0]?.frames ?? 0, {
      timeout: 60_000,
    })
    .toBe(o.frames);
  const runId = ((await s.engine.call('features.runs', {})) as { id: number }[])[0]?.id as number;
  return { vision, runId };
}
