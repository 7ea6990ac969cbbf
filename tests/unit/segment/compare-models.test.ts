/**
 * Comparing encoders by in-context segmentation of the project's labelled frames (the Train view's before/after
 * check): leave-one-out Hummingbird on frames with saved masks, same frames and banks for every model; the synthetic
 * walking tour when the project has fewer than 2 labelled frames.
 */
import { describe, expect, it } from 'vitest';
import { FrameStore } from '../../../native/media/frame-store.js';
import { writeTinyViT } from '../../helpers/models.js';
import { engineWithFrames } from '../../helpers/train.js';

describe('segment.compareModels', () => {
  it('falls back to the synthetic tour with fewer than 2 labelled frames, then scores each model on the same labelled frames', async () => {
    const { engine, call } = await engineWithFrames('compare');
    const a = await call('models.import', { path: writeTinyViT(1), name: 'a' });
    const b = await call('models.import', { path: writeTinyViT(2), name: 'b' });
    // No masks: the synthetic walking tour (bank of frames 40 and 120, 20 frames segmented, 4 classes).
    const tour = await call('segment.compareModels', { modelIds: [a.id, b.id], size: 64 });
    expect(tour).toMatchObject({
      source: 'synthetic',
      frames: 20,
      classes: 4,
      size: 64,
      classNames: ['background', 'disc', 'box', 'kite'],
    });
    expect(tour.note).toMatch(/no labelled frames .* synthetic walking tour/);
    expect(tour.models.map((m) => m.modelId)).toEqual([a.id, b.id]);
    for (const m of tour.models) {
      expect(m.perClass).toHaveLength(4);
      // Every class of the tour occurs in the segmented frames; mIoU is their mean.
      for (const c of m.perClass) expect(c).not.toBeNull();
      expect(m.miou).toBeCloseTo(m.perClass.reduce((x: number, c) => x + (c as number), 0) / 4, 6);
      expect(m.miou).toBeGreaterThan(0);
      expect(m.miou).toBeLessThanOrEqual(1);
    }
    // Two different encoders see different features of the same frames.
    expect(tour.models[0]?.miou).not.toBe(tour.models[1]?.miou);
    // Labels: bright vs dark pixels of three frames (a task any encoder can be scored on).
    const project = engine.requireProject().project;
    const media = project.media.list().items[0];
    const W = media?.frameWidth as number;
    const H = media?.frameHeight as number;
    const store = new FrameStore(project.cacheDir);
    for (const f of [0, 3, 6]) {
      const img = store.image(media?.id as number, f, W, H);
      const gray = new Float32Array(W * H).map((_, i) => (img.data[i * 3] as number) + (img.data[i * 3 + 1] as number));
      const mean = gray.reduce((x, y) => x + y, 0) / gray.length;
      const labels = Uint8Array.from(gray, (g) => (g > mean ? 1 : 0));
      await call('segment.saveMask', {
        mediaId: media?.id as number,
        frameIdx: f,
        data: Buffer.from(labels).toString('base64'),
      });
    }
    const r = await call('segment.compareModels', { modelIds: [a.id, b.id], size: 32 });
    expect(r).toMatchObject({ frames: 3, classes: 2, size: 32, source: 'labelled' });
    expect(r.note).toBeUndefined();
    expect(r.models.map((m) => m.modelId)).toEqual([a.id, b.id]);
    for (const m of r.models) {
      expect(m.miou).toBeGreaterThan(0);
      expect(m.miou).toBeLessThanOrEqual(1);
      expect(m.perClass).toHaveLength(2);
    }
    // The same model twice scores the same: same frames, banks and classes.
    const twice = await call('segment.compareModels', { modelIds: [a.id, a.id], size: 32 });
    expect(twice.models[0]?.miou).toBe(twice.models[1]?.miou);
    await engine.close();
  });
});
