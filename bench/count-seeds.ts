/**
 * Scene seeds of the count benchmark's dense and distractor figures (tools/synth/count.ts), as bench/unco-seeds.ts
 * keeps UnCo's: the tuning seeds are the only scenes a change may be tuned on (and the only ones tests use); the
 * held-out seeds are only counted by `npm run bench -- count`. tests/unit/count/count-bench-seeds.test.ts checks
 * that every held-out list is disjoint from every tuning list (UnCo's included) and that the count tests build
 * scenes from tuning seeds only.
 */
import { UNCO_HELDOUT_SEEDS, UNCO_TUNING_SEEDS } from './unco-seeds.js';

export interface SeedSplit {
  tuning: readonly number[];
  heldOut: readonly number[];
}

export const COUNT_SEEDS = {
  /**
   * Dense scenes (`makeDenseCountScene`, 200 / 500 / 1000 objects by position in the list): exemplar and automatic
   * counting. 11 and 12 chose the exemplar path's defaults (DENSE_DEFAULTS); 5000.. the automatic path's.
   */
  dense: { tuning: [11, 12, 5000, 5001, 5002], heldOut: [2000, 2001, 2002] },
  /** Scenes with 2–3 kinds of look-alike distractors (`makeDistractorCountScene`). */
  distractor: {
    tuning: Array.from({ length: 8 }, (_, i) => 6000 + i),
    heldOut: Array.from({ length: 16 }, (_, i) => 6100 + 3 * i),
  },
  unco: { tuning: UNCO_TUNING_SEEDS, heldOut: UNCO_HELDOUT_SEEDS },
} as const satisfies Record<string, SeedSplit>;

/** Seeds that are held out somewhere and used for tuning somewhere (empty when the split is kept). */
export function leakedSeeds(splits: Record<string, SeedSplit>): number[] {
  const tuning = new Set(Object.values(splits).flatMap((s) => [...s.tuning]));
  return [...new Set(Object.values(splits).flatMap((s) => s.heldOut.filter((x) => tuning.has(x))))];
}
