import fs from 'node:fs';
import zlib from 'node:zlib';
import { describe, expect, it } from 'vitest';
import {
  boundaryF,
  boundaryMap,
  boundaryTolerance,
  regionJ,
  scoreSequence,
  VideoScorer,
} from '../../../native/metrics/video.js';
import { fixturePath } from '../../helpers/fixtures.js';

const W = 40;
const H = 30;
const rect = (x0: number, y0: number, x1: number, y1: number, id = 1) => {
  const m = new Uint8Array(W * H);
  for (let y = y0; y < y1; y++) for (let x = x0; x < x1; x++) m[y * W + x] = id;
  return m;
};

describe('J and F (DAVIS definitions)', () => {
  it('J is the IoU of the masks, and 1 when both are empty', () => {
    expect(regionJ(rect(0, 0, 10, 10), rect(5, 0, 15, 10))).toBeCloseTo(50 / 150, 9);
    expect(regionJ(new Uint8Array(W * H), new Uint8Array(W * H))).toBe(1);
    expect(regionJ(rect(0, 0, 10, 10), new Uint8Array(W * H))).toBe(0);
  });

  it('draws one-pixel boundaries offset towards the origin, none for a full mask', () => {
    const b = boundaryMap(rect(10, 10, 20, 20), W, H);
    // The pixel just inside the left edge differs from nothing to its east: the boundary is the column left of it.
    expect(b[15 * W + 9]).toBe(1);
    expect(b[15 * W + 10]).toBe(0);
    expect(b[15 * W + 19]).toBe(1);
    expect(boundaryMap(rect(0, 0, W, H), W, H).every((v) => v === 0)).toBe(true);
  });

  it('tolerates boundaries within ceil(0.008 × diagonal) pixels and not beyond', () => {
    expect(boundaryTolerance(854, 480)).toBe(8);
    // 40 × 30: diagonal 50, tolerance 1 pixel.
    expect(boundaryF(rect(10, 10, 20, 20), rect(10, 10, 20, 20), W, H)).toBe(1);
    expect(boundaryF(rect(10, 10, 20, 20), rect(11, 10, 21, 20), W, H)).toBe(1);
    expect(boundaryF(rect(10, 10, 20, 20), rect(13, 13, 23, 23), W, H)).toBeLessThan(0.2);
  });

  it('scores empty and full masks as the DAVIS toolkit does', () => {
    const empty = new Uint8Array(W * H);
    expect(boundaryF(empty, empty, W, H)).toBe(1);
    expect(boundaryF(empty, rect(5, 5, 10, 10), W, H)).toBe(0);
    expect(boundaryF(rect(5, 5, 10, 10), empty, W, H)).toBe(0);
  });

  it('agrees with the reference f_measure (tools/propagate_reference.py) within 1e-3, empty and full masks included', () => {
    const meta = JSON.parse(fs.readFileSync(fixturePath('propagate', 'fmeasure', 'meta.json'), 'utf8')) as {
      width: number;
      height: number;
      pairs: number;
    };
    const bytes = zlib.gunzipSync(fs.readFileSync(fixturePath('propagate', 'fmeasure', 'pairs.u8.gz')));
    const ref = (
      JSON.parse(fs.readFileSync(fixturePath('propagate', 'fmeasure', 'fmeasure.json'), 'utf8')) as { F: number[] }
    ).F;
    const n = meta.width * meta.height;
    expect(ref).toHaveLength(meta.pairs);
    // The set covers the corner cases and ordinary partial matches.
    expect(ref.filter((f) => f === 1).length).toBeGreaterThan(1);
    expect(ref.filter((f) => f === 0).length).toBeGreaterThan(1);
    expect(ref.filter((f) => f > 0 && f < 1).length).toBeGreaterThan(2);
    for (let i = 0; i < meta.pairs; i++) {
      const pred = bytes.subarray(2 * i * n, (2 * i + 1) * n);
      const truth = bytes.subarray((2 * i + 1) * n, (2 * i + 2) * n);
      expect(Math.abs(boundaryF(pred, truth, meta.width, meta.height) - (ref[i] as number))).toBeLessThan(1e-3);
    }
  });

  it('averages per object over frames, then over objects; a sequence skips its first and last frames', () => {
    const s = new VideoScorer(2);
    const truth = new Uint8Array(W * H);
    truth.set(rect(0, 0, 10, 10));
    for (let i = 0; i < truth.length; i++) if (rect(20, 10, 30, 20)[i]) truth[i] = 2;
    const pred = Uint8Array.from(truth, (v) => (v === 2 ? 0 : v));
    s.add(pred, truth, W, H);
    const r = s.score();
    expect(r.objects[0]?.J).toBe(1);
    expect(r.objects[1]?.J).toBe(0);
    expect(r.J).toBeCloseTo(0.5, 9);
    expect(r.JF).toBeCloseTo((r.J + r.F) / 2, 9);
    // A wrong first and last frame do not count.
    const seq = scoreSequence([new Uint8Array(W * H), pred, new Uint8Array(W * H)], [truth, truth, truth], W, H);
    expect(seq.J).toBeCloseTo(0.5, 9);
    expect(seq.objects).toHaveLength(2);
  });
});
