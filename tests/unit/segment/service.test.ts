/**
 * The segmentation and retrieval services end to end through the dispatcher, on the synthetic tour: features,
 * a bank from two frames with their mask PNGs, segmenting a third with its IoU, and retrieval.
 */
import fs from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { IoUMeter } from '../../../native/segment/labels.js';
import { readMask } from '../../../native/segment/masks.js';
import { dispatchEngine, tourProjectWithModel } from '../../helpers/dispatch.js';
import { fixturePath } from '../../helpers/fixtures.js';
import { tmpDir } from '../../helpers/tmp.js';

describe('segmentation and retrieval', () => {
  const work = tmpDir();
  const { engine, call } = dispatchEngine();
  let runId = 0;
  let mediaId = 0;
  afterAll(() => engine.close());

  beforeAll(async () => {
    const model = await tourProjectWithModel({ engine, call }, work);
    mediaId = (await call('library.list', {})).items[0]?.id ?? 0;
    await call('features.extract', { modelId: model.id, size: 224 });
    await engine.requireProject().runner.idle();
    runId = (await call('features.runs', {}))[0]?.id ?? 0;
  });

  it('says which provider ran once a job (not only an embedding) has run a model', async () => {
    // Only feature extraction has run in this engine: the Device view's "in use" line must still know it.
    const info = await call('runtime.info', {});
    expect(info.active?.provider).toBe('cpu');
    expect(info.active?.threads).toBeGreaterThan(0);
  });

  it('extracts features for every sampled frame at its aspect ratio, with provenance', async () => {
    const [run] = await call('features.runs', {});
    expect(run).toMatchObject({ inputSize: 224, grid: 14, dim: 192, frames: 20, resize: 'aspect' });
    expect(run?.preprocessing).toMatchObject({ resize: 'aspect', maxAspect: 4 });
    // 320x240 frames: 14 rows by 19 columns of patches (224 x 304 input), not 14 x 14.
    const feat = engine.requireProject().project.features.get(runId, mediaId, 0);
    expect(feat?.patches.length).toBe(14 * 19 * 192);
  });

  it('segments a third frame from a bank of two labelled frames, far better than chance', async () => {
    const mask = (f: number) => fixturePath('synthetic', 'masks', `${String(f * 10).padStart(4, '0')}.png`);
    const bank = await call('segment.createBank', {
      runId,
      name: 'tour',
      classes: ['background', 'disc', 'box', 'kite'],
      examples: [
        { mediaId, frameIdx: 4, mask: mask(4) },
        { mediaId, frameIdx: 12, mask: mask(12) },
      ],
    });
    expect(bank.patches).toBeGreaterThan(300);
    const r = await call('segment.apply', { bankId: bank.id, mediaId, frameIdx: 8, truthMask: mask(8) });
    expect(r).toMatchObject({ width: 320, height: 240, classes: ['background', 'disc', 'box', 'kite'] });
    // Against the majority-class prediction on the same frame (what a bank-free guess scores).
    const { labels: truth } = await readMask(mask(8), 320, 240, { kind: 'ids' }, 4);
    const majority = new IoUMeter(4);
    majority.add(new Uint8Array(320 * 240), truth);
    expect(r.iou?.mean).toBeGreaterThan(majority.mean() + 0.05);
    expect(fs.existsSync(r.labelFile)).toBe(true);
    expect(r.pixels.reduce((a, b) => a + b, 0)).toBe(320 * 240);
  });

  it('retrieves similar frames and patches, with heat maps', async () => {
    const imgs = await call('retrieve.images', { runId, mediaId, frameIdx: 5, k: 3 });
    expect(imgs.results).toHaveLength(3);
    expect(imgs.results.every((x) => x.frameIdx !== 5)).toBe(true);
    for (let i = 1; i < imgs.results.length; i++)
      expect(imgs.results[i]?.sim).toBeLessThanOrEqual(imgs.results[i - 1]?.sim ?? 1);
    const patches = await call('retrieve.patches', { runId, mediaId, frameIdx: 5, patch: 150, k: 4 });
    expect(patches.grid).toEqual({ gridH: 14, gridW: 19 });
    expect(patches.results).toHaveLength(4);
    for (const p of patches.results) {
      expect(p.grid).toEqual({ gridH: 14, gridW: 19 });
      expect(p.heat).toHaveLength(14 * 19);
      expect(Math.max(...p.heat)).toBeCloseTo(p.sim, 2);
    }
  });

  it('bounds the bank with augmentation epochs and a memory size, rare classes first', async () => {
    const mask = (f: number) => fixturePath('synthetic', 'masks', `${String(f * 10).padStart(4, '0')}.png`);
    const bank = await call('segment.createBank', {
      runId,
      name: 'bounded',
      classes: ['background', 'disc', 'box', 'kite'],
      examples: [
        { mediaId, frameIdx: 4, mask: mask(4) },
        { mediaId, frameIdx: 12, mask: mask(12) },
      ],
      epochs: 3,
      memorySize: 240,
    });
    // 2 examples x 3 views, 40 patches each at most.
    expect(bank.patches).toBeLessThanOrEqual(240);
    expect(bank.patches).toBeGreaterThan(200);
    const r = await call('segment.apply', { bankId: bank.id, mediaId, frameIdx: 8 });
    // The rare classes survive the bound: objects are still found.
    expect(r.pixels.slice(1).reduce((a, b) => a + b, 0)).toBeGreaterThan(0);
  });

  it('builds an annotation-free bank from k-means pseudo-classes, then names and merges them', async () => {
    const frames = [0, 6, 12].map((frameIdx) => ({ mediaId, frameIdx }));
    const bank = await call('segment.clusterBank', { runId, name: 'clusters', clusters: 5, frames });
    expect(bank.classes).toEqual(['cluster 1', 'cluster 2', 'cluster 3', 'cluster 4', 'cluster 5']);
    expect(bank.patches).toBe(3 * 14 * 19);
    // Each pseudo-class shows where its patches are, so a person can name it: counts cover the bank, and every
    // example patch of a class is one the bank labels with that class.
    const summary = await call('segment.bankClasses', { bankId: bank.id, perClass: 4 });
    expect(summary.map((c) => c.name)).toEqual(bank.classes);
    expect(summary.reduce((a, c) => a + c.patches, 0)).toBe(bank.patches);
    const items = engine.requireProject().project.features.bankItems(bank.id);
    for (const [c, cls] of summary.entries()) {
      expect(cls.examples.length).toBe(Math.min(4, cls.patches));
      for (const ex of cls.examples) {
        const [x0, y0, x1, y1] = ex.box;
        expect(x1 - x0).toBeCloseTo(1 / 19);
        expect(y1 - y0).toBeCloseTo(1 / 14);
        const item = items.find((i) => i.frameIdx === ex.frameIdx);
        const p = Math.round(y0 * 14) * 19 + Math.round(x0 * 19);
        expect(item?.labels[p * 5 + c]).toBe(1);
      }
    }
    const merged = await call('segment.relabelBank', {
      bankId: bank.id,
      names: ['street', 'things'],
      into: [0, 1, 1, 0, 1],
    });
    expect(merged.classes).toEqual(['street', 'things']);
    const r = await call('segment.apply', { bankId: bank.id, mediaId, frameIdx: 9 });
    expect(r.classes).toEqual(['street', 'things']);
    expect(r.pixels.reduce((a, b) => a + b, 0)).toBe(320 * 240);
  });

  it('saves a mask drawn in the UI and builds a bank from it', async () => {
    const labels = new Uint8Array(320 * 240);
    labels.fill(1, 0, 320 * 120); // top half: class 1
    const { path: file } = await call('segment.saveMask', {
      mediaId,
      frameIdx: 2,
      data: Buffer.from(labels).toString('base64'),
    });
    expect(fs.existsSync(file)).toBe(true);
    const bank = await call('segment.createBank', {
      runId,
      name: 'drawn',
      classes: ['ground', 'sky'],
      examples: [{ mediaId, frameIdx: 2, mask: file }],
    });
    expect(bank.patches).toBe(14 * 19);
    // Counts per class from the drawn mask: the top half is sky, and the sky's example patches are in that half
    // (the bank kept the whole frame, so the places of its patches are known).
    const summary = await call('segment.bankClasses', { bankId: bank.id });
    expect(summary.map((c) => [c.name, c.patches, c.tiny])).toEqual([
      ['ground', 14 * 19 - 7 * 19, false],
      ['sky', 7 * 19, false],
    ]);
    expect(summary[1]?.examples.length).toBe(6);
    expect(summary[1]?.examples.every((e) => e.box[3] <= 0.5 + 1e-9)).toBe(true);
    expect(summary[0]?.examples.every((e) => e.box[1] >= 0.5 - 1e-9)).toBe(true);
    await expect(
      call('segment.saveMask', { mediaId, frameIdx: 2, data: Buffer.from(new Uint8Array(10)).toString('base64') }),
    ).rejects.toThrow(/has 10 pixels/);
  });

  it('flags a class with fewer patches than the neighbours it is matched against as tiny', async () => {
    const labels = new Uint8Array(320 * 240);
    for (let y = 0; y < 17; y++) labels.fill(1, y * 320, y * 320 + 17); // one patch-sized corner: class 1
    const { path: file } = await call('segment.saveMask', {
      mediaId,
      frameIdx: 3,
      data: Buffer.from(labels).toString('base64'),
    });
    const bank = await call('segment.createBank', {
      runId,
      name: 'tiny',
      classes: ['rest', 'corner'],
      examples: [{ mediaId, frameIdx: 3, mask: file }],
    });
    const [rest, corner] = await call('segment.bankClasses', { bankId: bank.id });
    expect(rest?.tiny).toBe(false);
    expect(corner?.patches).toBeGreaterThan(0);
    expect(corner?.patches).toBeLessThan(30);
    expect(corner?.tiny).toBe(true);
  });

  it('finds near-duplicate frames', async () => {
    const all = await call('retrieve.duplicates', { runId, threshold: 0, limit: 5 });
    expect(all.pairs).toHaveLength(5);
    for (let i = 1; i < all.pairs.length; i++)
      expect(all.pairs[i]?.sim).toBeLessThanOrEqual(all.pairs[i - 1]?.sim ?? 1);
    const none = await call('retrieve.duplicates', { runId, threshold: 0.99999 });
    expect(none.pairs).toEqual([]);
  });

  it('segments frames as a batch job into class-id PNGs and a COCO file', async () => {
    const bankId = (await call('segment.banks', {}))[0]?.id ?? 0;
    const out = path.join(work, 'export');
    const job = await call('segment.batch', { bankId, every: 5, outDir: out });
    await engine.requireProject().runner.idle();
    expect((await call('jobs.get', { id: job.id })).state).toBe('done');
    expect(fs.readdirSync(path.join(out, 'masks'))).toHaveLength(4);
    const coco = JSON.parse(fs.readFileSync(path.join(out, 'coco.json'), 'utf8')) as {
      images: unknown[];
      categories: { name: string }[];
      annotations: { segmentation: { counts: number[]; size: number[] }; area: number }[];
    };
    expect(coco.images).toHaveLength(4);
    expect(coco.categories.map((c) => c.name)).toEqual(['disc', 'box', 'kite']);
    for (const a of coco.annotations) expect(a.segmentation.counts.reduce((x, y) => x + y, 0)).toBe(320 * 240);
  });
});
