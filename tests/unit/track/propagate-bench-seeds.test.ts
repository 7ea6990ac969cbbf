import { describe, expect, it } from 'vitest';
import { HELD_OUT_SEEDS, TUNING_SEEDS } from '../../../tools/synth/propagate.js';

describe('propagation benchmark seeds', () => {
  it('keeps the held-out scenes (101-103, the reported figures) apart from the tuning scenes', () => {
    expect(new Set(TUNING_SEEDS).size).toBe(TUNING_SEEDS.length);
    expect([...HELD_OUT_SEEDS]).toEqual([101, 102, 103]);
    for (const s of HELD_OUT_SEEDS) expect((TUNING_SEEDS as readonly number[]).includes(s), `seed ${s}`).toBe(false);
  });
});
