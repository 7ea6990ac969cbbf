import { describe, expect, it } from 'vitest';
import { HELD_OUT_SEEDS, HELD_OUT_SEEDS_INSPECTED, TUNING_SEEDS } from '../../../tools/synth/propagate.js';

describe('propagation benchmark seeds', () => {
  it('keeps both held-out sets (101-103 inspected, 104-111 reported) apart from the tuning scenes and each other', () => {
    expect(new Set(TUNING_SEEDS).size).toBe(TUNING_SEEDS.length);
    expect([...HELD_OUT_SEEDS_INSPECTED]).toEqual([101, 102, 103]);
    expect([...HELD_OUT_SEEDS]).toEqual([104, 105, 106, 107, 108, 109, 110, 111]);
    const tuning = TUNING_SEEDS as readonly number[];
    for (const s of [...HELD_OUT_SEEDS_INSPECTED, ...HELD_OUT_SEEDS])
      expect(tuning.includes(s), `seed ${s}`).toBe(false);
    for (const s of HELD_OUT_SEEDS)
      expect((HELD_OUT_SEEDS_INSPECTED as readonly number[]).includes(s), `seed ${s}`).toBe(false);
  });
});
