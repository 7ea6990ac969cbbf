import { describe, expect, it } from 'vitest';
import { boxPolygon, fillPolygon } from '../../../native/segment/polygons.js';

describe('polygon masks', () => {
  it('fills a box exactly and a triangle by pixel centres', () => {
    const m = new Uint8Array(10 * 8);
    fillPolygon(m, 10, 8, boxPolygon([2, 1, 4, 3]), 7);
    expect(m.filter((v) => v === 7)).toHaveLength(9);
    expect(m[1 * 10 + 2]).toBe(7);
    expect(m[3 * 10 + 4]).toBe(7);
    expect(m[4 * 10 + 4]).toBe(0);
    const t = new Uint8Array(10 * 10);
    fillPolygon(
      t,
      10,
      10,
      [
        [0, 0],
        [10, 0],
        [0, 10],
      ],
      1,
    );
    // Pixel centres strictly below the diagonal x + y < 10: 45 of them (x + y <= 8 with centres at +0.5).
    expect(t.filter((v) => v === 1)).toHaveLength(45);
  });
});
