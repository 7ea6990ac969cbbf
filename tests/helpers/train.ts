import type { CommandArgs } from '../../native/api/contract.js';

/** A tiny but complete DINO run on the synthetic tour's frames. */
export const TINY_TRAIN = {
  init: { kind: 'scratch', preset: 'tiny' },
  steps: 12,
  batch: 2,
  globalSize: 32,
  localSize: 16,
  localCrops: 2,
  warmupSteps: 2,
  outDim: 64,
  headHidden: 32,
  bottleneck: 16,
  checkpointEvery: 4,
  seed: 7,
} as const satisfies CommandArgs<'train.start'>;
