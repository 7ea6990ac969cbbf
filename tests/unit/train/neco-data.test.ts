/** NeCo's host-side data: crop boxes with the official overlap rule, and the queue's push/draw semantics. */
import { describe, expect, it } from 'vitest';
import { Rng } from '../../../native/base/rng.js';
import { necoPairs } from '../../../native/models/neco.js';
import { type Box, NecoQueue, randpermPrefix, sampleNecoBoxes } from '../../../native/train/neco-data.js';

const inter = (a: Box, b: Box) =>
  Math.max(0, Math.min(a[2], b[2]) - Math.max(a[0], b[0])) * Math.max(0, Math.min(a[3], b[3]) - Math.max(a[1], b[1]));

describe('NeCo crops', () => {
  it('overlaps every crop with the global crops by more than 1% of the frame (2% between globals)', () => {
    const rng = new Rng(4);
    for (let t = 0; t < 50; t++) {
      const boxes = sampleNecoBoxes(
        320,
        240,
        [
          { size: 224, scale: [0.25, 1], count: 2 },
          { size: 98, scale: [0.05, 0.25], count: 4 },
        ],
        rng,
      );
      expect(boxes).toHaveLength(6);
      const min = Math.floor(320 * 240 * 0.01);
      expect(inter(boxes[1] as Box, boxes[0] as Box)).toBeGreaterThan(2 * min);
      for (const b of boxes.slice(2)) {
        expect(inter(b, boxes[0] as Box)).toBeGreaterThan(min);
        expect(inter(b, boxes[1] as Box)).toBeGreaterThan(min);
      }
      for (const b of boxes) expect(b[0] >= 0 && b[1] >= 0 && b[2] <= 320 && b[3] <= 240).toBe(true);
    }
  });

  it('draws distinct indices for a permutation prefix', () => {
    const p = randpermPrefix(100, 30, new Rng(1));
    expect(new Set(p).size).toBe(30);
    expect(p.every((i) => i >= 0 && i < 100)).toBe(true);
  });
});

describe('NeCo queue', () => {
  it('pushes the planned teacher patches in front, shifts older rows back, and draws below the filled count', () => {
    const G = 2;
    const B = 1;
    const N = 16;
    const K = 2;
    const q = new NecoQueue(G, 32, K);
    const pairs = necoPairs(G, 1);
    const rng = new Rng(3);
    const teacher = Float32Array.from({ length: G * B * N * K }, (_, i) => i);
    const plan1 = q.plan(rng, B, N, pairs, 4);
    expect(plan1.push[0]).toHaveLength(10);
    for (const d of plan1.draws) expect(d.every((j) => j < 10)).toBe(true);
    // Before the first push every reference is one of this step's teacher patches.
    const r1 = q.references(plan1, pairs, B, N);
    expect([...r1.refIndex].every((i) => i < BigInt(G * B * N))).toBe(true);
    q.push(plan1, teacher, B, N);
    expect(q.entries).toBe(10);
    const first = (plan1.push[1] as number[])[0] as number;
    expect(Array.from((q.rows[1] as Float32Array).subarray(0, K))).toEqual([(N + first) * K, (N + first) * K + 1]);
    const plan2 = q.plan(rng, B, N, pairs, 4);
    q.push(plan2, teacher, B, N);
    expect(q.entries).toBe(20);
    // The first push's first row moved back by 10.
    expect(Array.from((q.rows[1] as Float32Array).subarray(10 * K, 11 * K))).toEqual([
      (N + first) * K,
      (N + first) * K + 1,
    ]);
  });
});
