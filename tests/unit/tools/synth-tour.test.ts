import fs from 'node:fs';
import zlib from 'node:zlib';
import { describe, expect, it } from 'vitest';
import { decodeVideo } from '../../../native/media/decode.js';
import { CATEGORIES, makeInstances, renderFrame, type TourOptions } from '../../../tools/synth/tour.js';
import { fixturePath } from '../../helpers/fixtures.js';

const small: TourOptions = { width: 96, height: 64, fps: 5, seconds: 2, seed: 3, objectsPerCategory: 2 };

describe('synthetic walking tour', () => {
  it('renders the same frames and truth for the same seed, and different ones for another', () => {
    const a = renderFrame(small, makeInstances(small), 4);
    const b = renderFrame(small, makeInstances(small), 4);
    const c = renderFrame({ ...small, seed: 4 }, makeInstances({ ...small, seed: 4 }), 4);
    expect(Buffer.from(a.rgb).equals(Buffer.from(b.rgb))).toBe(true);
    expect(a.truth).toEqual(b.truth);
    expect(Buffer.from(a.rgb).equals(Buffer.from(c.rgb))).toBe(false);
  });

  it('derives boxes and counts from the visible mask', () => {
    const f = renderFrame(small, makeInstances(small), 0);
    for (const box of f.truth.boxes) {
      let n = 0;
      for (let i = 0; i < f.mask.length; i++) if (f.mask[i] === box.id) n++;
      expect(n).toBe(box.pixels);
    }
    const total = Object.values(f.truth.counts).reduce((x, y) => x + y, 0);
    expect(total).toBe(f.truth.boxes.filter((b) => b.pixels >= 50).length);
  });

  it('ships a committed fixture whose video, masks and truth agree', async () => {
    const truth = JSON.parse(fs.readFileSync(fixturePath('synthetic', 'tour.json'), 'utf8')) as {
      options: TourOptions;
      frames: { counts: Record<string, number> }[];
    };
    const { width, height, fps, seconds } = truth.options;
    const n = Math.round(seconds * fps);
    expect(truth.frames).toHaveLength(n);
    const masks = zlib.gunzipSync(fs.readFileSync(fixturePath('synthetic', 'tour.masks.gz')));
    expect(masks.length).toBe(n * width * height);
    const ids = new Set(masks);
    expect(ids.size).toBeGreaterThan(CATEGORIES.length);
    let frames = 0;
    for await (const _ of decodeVideo(fixturePath('synthetic', 'tour.mp4'), {
      sampling: { policy: 'every', n: 1 },
      width: 32,
      height: 24,
    }))
      frames++;
    expect(frames).toBe(n);
    // Several objects of every category appear over the tour.
    for (const c of CATEGORIES)
      expect(Math.max(...truth.frames.map((f) => f.counts[c.name] ?? 0))).toBeGreaterThanOrEqual(1);
  });
});
