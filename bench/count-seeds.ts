/**
 * Scene seeds of the count benchmark's sparse, dense and distractor figures (tools/synth/count.ts), as bench/unco-seeds.ts
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
   * Sparse scenes (`makeCountScene`, 320 px, 2 to 60 targets of varied sizes among a few distractors): exemplar and
   * automatic counting (`mae_exemplar`, `mae_auto`, `mae_auto_product`). The held-out ones are the scenes the
   * benchmark always counted (1000..1029); 7000.. tune the automatic path on small images.
   */
  sparse: {
    tuning: Array.from({ length: 12 }, (_, i) => 7000 + i),
    heldOut: Array.from({ length: 30 }, (_, i) => 1000 + i),
  },
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
