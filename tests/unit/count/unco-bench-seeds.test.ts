import { describe, expect, it } from 'vitest';
import { UNCO_HELDOUT_SEEDS, UNCO_TUNING_SEEDS } from '../../../bench/unco-seeds.js';

describe('UnCo benchmark seeds', () => {
  it('keeps held-out scenes apart from the tuning scenes and from the other count benchmarks', () => {
    const tuning = new Set(UNCO_TUNING_SEEDS);
    expect(tuning.size).toBe(UNCO_TUNING_SEEDS.length);
    expect(new Set(UNCO_HELDOUT_SEEDS).size).toBe(UNCO_HELDOUT_SEEDS.length);
    for (const s of UNCO_HELDOUT_SEEDS) expect(tuning.has(s), `seed ${s}`).toBe(false);
    // bench/count.ts counts scenes 1000 + i and dense scenes 2000 + i.
    for (const s of [...UNCO_TUNING_SEEDS, ...UNCO_HELDOUT_SEEDS]) expect(s >= 1000 && s < 3000).toBe(false);
    expect(UNCO_HELDOUT_SEEDS.length).toBeGreaterThanOrEqual(30);
  });
});
