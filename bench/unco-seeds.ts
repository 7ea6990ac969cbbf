/**
 * Scene seeds of the UnCo benchmark (tools/synth/count.ts `makeCountScene`): the tuning seeds build the synthetic
 * library the collages come from (and are the only ones a change may be tuned on); the held-out seeds are only
 * counted. tests/unit/count/unco-bench-seeds.test.ts checks the lists are disjoint, and disjoint from the seeds
 * the other count benchmarks use (1000.., 2000..).
 */
export const UNCO_TUNING_SEEDS: readonly number[] = Array.from({ length: 24 }, (_, i) => 7000 + i);
export const UNCO_HELDOUT_SEEDS: readonly number[] = Array.from({ length: 40 }, (_, i) => 9100 + 7 * i);
