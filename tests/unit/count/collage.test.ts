import { describe, expect, it } from 'vitest';
import { Rng } from '../../../native/base/rng.js';
import {
  buildCollage,
  type CollageLibrary,
  type CollageObject,
  transformObject,
} from '../../../native/count/collage.js';
import { discoverObjects, objectTypes, withoutObjects } from '../../../native/count/collage-objects.js';
import { ExactKnn } from '../../../native/features/knn.js';
import type { FrameAttention } from '../../../native/track/attention.js';

/** Discs (type 0), squares (type 1) and crosses (type 2) of a few sizes and colours; noise backgrounds. */
function library(): CollageLibrary {
  const objects: CollageObject[] = [];
  for (let type = 0; type < 3; type++) {
    for (const side of [12, 20, 31]) {
      const mask = new Uint8Array(side * side);
      const rgb = new Uint8Array(side * side * 3);
      for (let y = 0; y < side; y++)
        for (let x = 0; x < side; x++) {
          const u = (x + 0.5) / side - 0.5;
          const v = (y + 0.5) / side - 0.5;
          const inside =
            type === 0 ? u * u + v * v < 0.25 : type === 1 ? true : Math.abs(u) < 0.15 || Math.abs(v) < 0.15;
          mask[y * side + x] = inside ? 1 : 0;
          rgb.set([type === 0 ? 230 : 20, type === 1 ? 230 : 20, type === 2 ? 230 : 20], (y * side + x) * 3);
        }
      objects.push({ width: side, height: side, rgb, mask, type });
    }
  }
  const rng = new Rng(99);
  const backgrounds = [0, 1].map(() => {
    const data = new Uint8Array(50 * 40 * 3);
    for (let i = 0; i < data.length; i++) data[i] = 100 + rng.int(40);
    return { width: 50, height: 40, data };
  });
  return { objects, backgrounds };
}

const lib = library();
const options = { size: 96, maxCount: 12, total: 16, types: { min: 2, max: 3 }, rotation: 30 };

describe('Self-Collages', () => {
  it('count, object masks and density target agree exactly', () => {
    let withDistractors = 0;
    let overlapping = 0;
    for (let seed = 1; seed <= 30; seed++) {
      const c = buildCollage(lib, options, new Rng(seed));
      const targets = c.objects.filter((o) => o.target);
      expect(c.count).toBeGreaterThanOrEqual(0);
      expect(c.count).toBeLessThanOrEqual(options.maxCount);
      expect(targets.length).toBe(c.count);
      expect(c.objects.length).toBe(Math.max(options.total, c.count));
      for (const t of targets) expect(t.type).toBe(c.targetType);
      const distractors = c.objects.filter((o) => !o.target);
      for (const d of distractors) expect(d.type).not.toBe(c.targetType);
      if (distractors.length) withDistractors++;
      // Each object's visible pixels are its whole mask: no overlap (unless the last try had to allow it).
      const visible = new Array<number>(c.objects.length).fill(0);
      for (const l of c.labels) if (l >= 0) visible[l] = (visible[l] as number) + 1;
      if (c.overlapping) overlapping++;
      else for (const [i, o] of c.objects.entries()) expect(visible[i], `object ${i} of seed ${seed}`).toBe(o.area);
      // Every labelled pixel lies in its object's box.
      c.labels.forEach((l, p) => {
        if (l < 0) return;
        const [x0, y0, x1, y1] = (c.objects[l] as { box: number[] }).box as [number, number, number, number];
        const x = p % c.size;
        const y = (p - x) / c.size;
        expect(x >= x0 && x < x1 && y >= y0 && y < y1).toBe(true);
      });
      let sum = 0;
      for (const v of c.density) sum += v;
      expect(Math.abs(sum - c.count * c.scaling)).toBeLessThan(1e-3 * Math.max(1, c.count));
      expect(c.exemplars.length).toBe(Math.min(3, c.count));
      for (const e of c.exemplars) expect(targets.some((t) => t.box.join() === e.join())).toBe(true);
    }
    expect(withDistractors).toBeGreaterThan(20);
    expect(overlapping).toBeLessThan(5);
  });

  it('point density puts exactly the scaling at each target centre', () => {
    const c = buildCollage(lib, { ...options, density: 'point', scaling: 3000, count: 7 }, new Rng(5));
    expect(c.count).toBe(7);
    const expected = new Map<number, number>();
    for (const t of c.objects.filter((o) => o.target)) {
      const p = t.centre[1] * c.size + t.centre[0];
      expected.set(p, (expected.get(p) ?? 0) + 3000);
    }
    c.density.forEach((v, p) => {
      expect(v).toBe(expected.get(p) ?? 0);
    });
  });

  it('pastes no object outside the canvas, even large rotated ones', () => {
    for (let seed = 1; seed <= 20; seed++) {
      const c = buildCollage(lib, { ...options, pasteSize: [60, 120], rotation: 90 }, new Rng(seed));
      for (const o of c.objects) {
        expect(o.box[0]).toBeGreaterThanOrEqual(0);
        expect(o.box[1]).toBeGreaterThanOrEqual(0);
        expect(o.box[2]).toBeLessThanOrEqual(c.size);
        expect(o.box[3]).toBeLessThanOrEqual(c.size);
        expect(o.centre[0]).toBeLessThan(c.size);
        expect(o.centre[1]).toBeLessThan(c.size);
      }
    }
  });

  it('the same seed gives the same collage, another seed another', () => {
    const a = buildCollage(lib, options, new Rng(42));
    const b = buildCollage(lib, options, new Rng(42));
    const c = buildCollage(lib, options, new Rng(43));
    expect(Buffer.from(a.rgb).equals(Buffer.from(b.rgb))).toBe(true);
    expect(a.density).toEqual(b.density);
    expect(a.objects).toEqual(b.objects);
    expect(Buffer.from(a.rgb).equals(Buffer.from(c.rgb))).toBe(false);
  });

  it('a rotated object keeps its mask area roughly and its pixels aligned with the mask', () => {
    const square = lib.objects.find((o) => o.type === 1 && o.width === 31) as CollageObject;
    const cut = transformObject(square, 31, 45);
    // A 31 px square turned 45 degrees spans about 31 * sqrt(2) px.
    expect(cut.width).toBeGreaterThanOrEqual(42);
    expect(cut.width).toBeLessThanOrEqual(45);
    expect(Math.abs(cut.area - 31 * 31) / (31 * 31)).toBeLessThan(0.06);
    for (let i = 0; i < cut.mask.length; i++) if (cut.mask[i]) expect(cut.rgb[i * 3 + 1]).toBe(230);
  });
});

describe('Self-Collage objects from the frozen encoder', () => {
  it('cuts each salient region of the attention as an object and clusters them by feature', async () => {
    // An 8x8 grid, 16 px patches: two attended 2x2 regions with keys along e0, one 1x2 region along e1.
    const gridW = 8;
    const gridH = 8;
    const dim = 4;
    const n = gridW * gridH;
    const attention = new Float32Array(2 * n).fill(0.001);
    const k = new Float32Array(n * dim);
    for (let i = 0; i < n; i++) k[i * dim + 3] = 1;
    const region = (cells: [number, number][], axis: number) => {
      for (const [x, y] of cells) {
        const i = y * gridW + x;
        attention[i] = 1;
        attention[n + i] = 1;
        k.fill(0, i * dim, (i + 1) * dim);
        k[i * dim + axis] = 1;
      }
    };
    region(
      [
        [1, 1],
        [2, 1],
        [1, 2],
        [2, 2],
      ],
      0,
    );
    region(
      [
        [5, 5],
        [6, 5],
        [5, 6],
        [6, 6],
      ],
      0,
    );
    region(
      [
        [6, 1],
        [6, 2],
      ],
      1,
    );
    const att: FrameAttention = { q: k, k, attention, gridH, gridW, dim, heads: 2 };
    const img = { width: 128, height: 128, data: new Uint8Array(128 * 128 * 3).fill(7) };
    const objects = discoverObjects(img, att, 0, { mass: 0.9 });
    expect(objects.map((o) => o.box).sort()).toEqual(
      [
        [16, 16, 48, 48],
        [80, 80, 112, 112],
        [96, 16, 112, 48],
      ].sort(),
    );
    for (const o of objects) expect(o.mask.every((m) => m === 1)).toBe(true);
    const types = await objectTypes(new ExactKnn(), objects, { types: 2, seed: 1 });
    const byBox = new Map(objects.map((o, i) => [o.box.join(), types[i]]));
    expect(byBox.get('16,16,48,48')).toBe(byBox.get('80,80,112,112'));
    expect(byBox.get('96,16,112,48')).not.toBe(byBox.get('16,16,48,48'));
  });

  it('cuts objects at pixel level: two objects in one salient patch region become two, painted out of the background', () => {
    // A grey 64x64 image, 16 px patches; two red squares (6x6 and 5x7 px) 6 px apart inside one attended 2x1 region.
    const W = 64;
    const data = new Uint8Array(W * W * 3).fill(128);
    const square = (x0: number, y0: number, w: number, h: number) => {
      for (let y = y0; y < y0 + h; y++) for (let x = x0; x < x0 + w; x++) data.set([220, 30, 30], (y * W + x) * 3);
    };
    square(18, 20, 6, 6);
    square(30, 19, 5, 7);
    const gridW = 4;
    const n = gridW * gridW;
    const attention = new Float32Array(n).fill(0.001);
    attention[1 * gridW + 1] = 1;
    attention[1 * gridW + 2] = 1;
    const k = new Float32Array(n).fill(1);
    const att: FrameAttention = { q: k, k, attention, gridH: gridW, gridW, dim: 1, heads: 1 };
    const img = { width: W, height: W, data };
    // On the patch grid they are one object; at pixel level two, each mask exactly its square.
    expect(discoverObjects(img, att, 0, { mass: 0.9 })).toHaveLength(1);
    const objects = discoverObjects(img, att, 0, { mass: 0.9, pixels: true });
    expect(objects.map((o) => o.box).sort()).toEqual([
      [18, 20, 24, 26],
      [30, 19, 35, 26],
    ]);
    for (const o of objects) expect(o.mask.every((m) => m === 1)).toBe(true);
    // The background without them: no red pixel is left, the grey around them is untouched.
    const bg = withoutObjects(img, objects);
    for (let i = 0; i < W * W; i++) expect(bg.data[i * 3]).toBe(128);
  });

  it("takes a background without the collage's object types when there is one", () => {
    const base = library();
    // Background 0 shows types 0 and 1, background 1 type 2: a collage of types 0 and 1 only uses background 1.
    const marked = base.backgrounds.map((b, i) => ({ ...b, data: b.data.slice().fill(i === 0 ? 11 : 222) }));
    const withTypes = { ...base, backgrounds: marked, backgroundTypes: [new Set([0, 1]), new Set([2])] };
    let checked = 0;
    for (let seed = 0; seed < 30; seed++) {
      const c = buildCollage(
        withTypes,
        { ...options, types: { min: 2, max: 2 }, total: 4, maxCount: 2 },
        new Rng(seed),
      );
      // The collage's two types: the target's and the distractors' (4 - N >= 2 of them, always pasted).
      const types = new Set([c.targetType, ...c.objects.map((o) => o.type)]);
      const corner = c.labels[0] === -1 ? c.rgb[0] : null;
      if (corner === null || types.has(2)) continue;
      expect(corner).toBe(222);
      checked++;
    }
    expect(checked).toBeGreaterThan(2);
  });
});
