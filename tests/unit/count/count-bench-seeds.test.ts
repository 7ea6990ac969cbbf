/**
 * The count benchmark's held-out scenes stay held out: no seed is both a tuning and a held-out seed (across the
 * dense, distractor and UnCo lists), and the count tests, where tuning happens, build dense and distractor scenes
 * from tuning seeds only.
 */
import fs from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { COUNT_SEEDS, leakedSeeds } from '../../../bench/count-seeds.js';

describe('count benchmark seeds', () => {
  it('keeps every held-out list apart from every tuning list', () => {
    expect(leakedSeeds(COUNT_SEEDS)).toEqual([]);
    for (const [name, s] of Object.entries(COUNT_SEEDS)) {
      expect(new Set(s.heldOut).size, name).toBe(s.heldOut.length);
      expect(s.heldOut.length, name).toBeGreaterThanOrEqual(3);
    }
    // The dense list's order is the scene sizes': the third held-out scene is the 1000-object one.
    expect(COUNT_SEEDS.dense.heldOut).toHaveLength(3);
  });

  it('keeps the sparse scenes the benchmark counts apart from the sparse tuning scenes', () => {
    const { tuning, heldOut } = COUNT_SEEDS.sparse;
    expect(heldOut).toHaveLength(30);
    expect(tuning.length).toBeGreaterThanOrEqual(12);
    expect(tuning.filter((s) => heldOut.includes(s))).toEqual([]);
    // A sparse tuning seed held out by another list (or the reverse) is a leak too.
    expect(
      leakedSeeds({ ...COUNT_SEEDS, other: { tuning: [heldOut[0] as number], heldOut: [tuning[0] as number] } }),
    ).toEqual(expect.arrayContaining([heldOut[0], tuning[0]]));
  });

  it('finds a leak when a held-out seed is also a tuning seed', () => {
    expect(leakedSeeds({ a: { tuning: [1, 2], heldOut: [3] }, b: { tuning: [3], heldOut: [4] } })).toEqual([3]);
  });

  it('builds the count tests’ dense and distractor scenes from tuning seeds only, and no held-out sparse scene', () => {
    const dir = path.dirname(new URL(import.meta.url).pathname);
    const heldOut = new Set([...COUNT_SEEDS.dense.heldOut, ...COUNT_SEEDS.distractor.heldOut]);
    const tuning = new Set([...COUNT_SEEDS.dense.tuning, ...COUNT_SEEDS.distractor.tuning]);
    const used: number[] = [];
    const sparse: number[] = [];
    for (const f of fs.readdirSync(dir).filter((n) => n.endsWith('.test.ts'))) {
      const text = fs.readFileSync(path.join(dir, f), 'utf8');
      for (const m of text.matchAll(/make(?:Dense|Distractor)CountScene\((\d+)/g)) used.push(Number(m[1]));
      for (const m of text.matchAll(/makeCountScene\((\d+)/g)) sparse.push(Number(m[1]));
    }
    // Sparse scenes of other sizes (UnCo's tests) are other scenes; no test counts a held-out sparse one.
    for (const s of sparse) expect(COUNT_SEEDS.sparse.heldOut.includes(s), `sparse seed ${s}`).toBe(false);
    expect(used.length).toBeGreaterThan(0);
    for (const s of used) {
      expect(heldOut.has(s), `seed ${s}`).toBe(false);
      expect(tuning.has(s), `seed ${s}`).toBe(true);
    }
  });
});
