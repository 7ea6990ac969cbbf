import { describe, expect, it } from 'vitest';
import { CocoWriter, rleDecode, rleEncode } from '../../../native/segment/export.js';
import { IoUMeter, patchLabels, upsampleArgmax } from '../../../native/segment/labels.js';

describe('segmentation export and metrics', () => {
  it('round-trips masks through COCO RLE (column-major, starting with a 0-run)', () => {
    const W = 7;
    const H = 5;
    const mask = new Uint8Array(W * H);
    for (const [x, y] of [
      [0, 0],
      [1, 0],
      [6, 4],
      [3, 2],
      [3, 3],
    ] as const)
      mask[y * W + x] = 2;
    const { counts, area, bbox } = rleEncode(mask, W, H, 2);
    expect(counts[0]).toBe(0);
    expect(counts.reduce((a, b) => a + b, 0)).toBe(W * H);
    expect(area).toBe(5);
    expect(bbox).toEqual([0, 0, 7, 5]);
    const back = rleDecode(counts, W, H);
    for (let i = 0; i < W * H; i++) expect(back[i]).toBe(mask[i] === 2 ? 1 : 0);
  });

  it('writes one annotation per present class, skipping the background', () => {
    const w = new CocoWriter(['bg', 'a', 'b']);
    w.add({ file_name: 'x', width: 2, height: 2, media_id: 1, frame_index: 0 }, Uint8Array.from([0, 1, 1, 0]));
    const j = w.toJSON();
    expect(j.annotations.map((a) => a.category_id)).toEqual([1]);
    expect(j.categories).toEqual([
      { id: 1, name: 'a' },
      { id: 2, name: 'b' },
    ]);
  });

  it('computes soft patch labels, upsampling and IoU as expected', () => {
    // 4x4 labels, 2x2 grid: top-left patch is all class 1, others mixed.
    const labels = Uint8Array.from([1, 1, 0, 0, 1, 1, 0, 1, 0, 0, 0, 0, 255, 0, 0, 0]);
    const soft = patchLabels(labels, 4, 4, { gridH: 2, gridW: 2 }, 2);
    expect(Array.from(soft)).toEqual([0, 1, 0.75, 0.25, 1, 0, 1, 0]);
    const pred = upsampleArgmax(soft, { gridH: 2, gridW: 2 }, 2, 4, 4);
    expect(pred[0]).toBe(1);
    expect(pred[15]).toBe(0);
  });

  it('labels and upsamples a non-square grid over a wide frame at the frame resolution', () => {
    // 8x2 labels (wide), a 1x4 grid: each patch covers 2x2 pixels; the right half is class 1.
    const labels = Uint8Array.from([0, 0, 0, 0, 1, 1, 1, 1, 0, 0, 0, 0, 1, 1, 1, 1]);
    const grid = { gridH: 1, gridW: 4 };
    const soft = patchLabels(labels, 8, 2, grid, 2);
    expect(Array.from(soft)).toEqual([1, 0, 1, 0, 0, 1, 0, 1]);
    const pred = upsampleArgmax(soft, grid, 2, 8, 2);
    expect(pred.length).toBe(16);
    expect(Array.from(pred.subarray(0, 8))).toEqual([0, 0, 0, 0, 1, 1, 1, 1]);
    const m = new IoUMeter(2);
    m.add(pred, labels);
    expect(m.mean()).toBeGreaterThan(0.5);
    m.add(
      labels.map((v) => (v === 255 ? 0 : v)),
      labels,
    );
    expect(m.perClass().every((x) => x !== null)).toBe(true);
  });
});
