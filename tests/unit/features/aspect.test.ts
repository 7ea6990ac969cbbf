/**
 * A 16:9 video (480x270, tools/synth-tour.ts) through every consumer of patch features, with its aspect ratio kept:
 * extracted on a 14x25 grid (not squashed to 14x14), banked, segmented (masks at the frame's resolution, exports at
 * the source's), retrieved (heat maps on the frame's grid), tracked, counted and FUNGI'd; a square run made the old
 * way stays readable and is marked. Frames are stored at 240x135 (shorter side 135), so a 224 input decodes them
 * again from the video at the input shape, and the extraction says so.
 */
import fs from 'node:fs';
import path from 'node:path';
import zlib from 'node:zlib';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { frameGrid, runPolicy } from '../../../native/features/extract.js';
import { encodePng } from '../../../native/media/png.js';
import type { FrameTruth } from '../../../tools/synth/tour.js';
import { writeTour } from '../../../tools/synth-tour.js';
import { dispatchEngine } from '../../helpers/dispatch.js';
import { writeInitViT } from '../../helpers/models.js';
import { tmpDir } from '../../helpers/tmp.js';

const SRC = { width: 480, height: 270 };
const CLASSES = ['background', 'disc', 'box', 'kite'];

function pngSize(file: string): { width: number; height: number } {
  const b = fs.readFileSync(file);
  return { width: b.readUInt32BE(16), height: b.readUInt32BE(20) };
}

describe('a 16:9 frame through every consumer, its aspect ratio kept', () => {
  const work = tmpDir();
  const { engine, call } = dispatchEngine();
  const idle = () => engine.requireProject().runner.idle();
  const tour = path.join(work, 'tour');
  let mediaId = 0;
  let modelId = 0;
  let runId = 0;
  let frames: FrameTruth[] = [];
  /** Category mask of tour frame `i` (rendered every fps-th frame, i.e. at each sampled second). */
  const maskFile = (second: number) => path.join(tour, 'masks', `${String(second * 5).padStart(4, '0')}.png`);
  afterAll(() => engine.close());

  beforeAll(async () => {
    await writeTour(tour, { ...SRC, fps: 5, seconds: 4, seed: 2, objectsPerCategory: 3 });
    frames = (JSON.parse(fs.readFileSync(path.join(tour, 'tour.json'), 'utf8')) as { frames: FrameTruth[] }).frames;
    await call('project.create', { path: path.join(work, 'p') });
    await call('library.add', {
      paths: [path.join(tour, 'tour.mp4')],
      sampling: { policy: 'fps', fps: 1 },
      frameSize: { mode: 'short-side', size: 135 },
    });
    await idle();
    const media = (await call('library.list', {})).items[0];
    expect([media?.frameWidth, media?.frameHeight]).toEqual([240, 135]);
    mediaId = media?.id ?? 0;
    modelId = (await call('models.import', { path: writeInitViT(path.join(work, 'vit.safetensors')) })).id;
    const job = await call('features.extract', { modelId, size: 224 });
    await idle();
    const items = await call('jobs.items', { id: job.id });
    expect(items.items[0]?.result).toMatchObject({ grid: [14, 25] });
    const note = (items.items[0]?.result as { note?: string } | undefined)?.note;
    // Stored at 240x135, smaller than the input: decoded again from the video at the input shape (400x224), every
    // frame (none upsampled from the store).
    expect(note).toBe('decoded from the source at 400x224 (stored frames are 240x135)');
    runId = (await call('features.runs', {}))[0]?.id ?? 0;
  }, 180_000);

  it('extracts patch features on the frame grid: 14 rows by 25 columns at 224', async () => {
    const [run] = await call('features.runs', {});
    expect(run).toMatchObject({ inputSize: 224, grid: 14, resize: 'aspect', frames: 4 });
    const row = engine.requireProject().project.features.run(runId);
    if (!row) throw new Error('no run');
    expect(frameGrid(row, 240, 135)).toMatchObject({ gridH: 14, gridW: 25, width: 400, height: 224 });
    expect(engine.requireProject().project.features.get(runId, mediaId, 0)?.patches.length).toBe(14 * 25 * 192);
  });

  it('banks and segments at the frame resolution, and exports masks at the source resolution', async () => {
    const bank = await call('segment.createBank', {
      runId,
      name: 'tour',
      classes: CLASSES,
      examples: [
        { mediaId, frameIdx: 0, mask: maskFile(0) },
        { mediaId, frameIdx: 2, mask: maskFile(2) },
      ],
    });
    expect(bank.warnings).toEqual([]);
    // Every patch of both frames has pixels under it: 2 x 14 x 25.
    expect(bank.patches).toBe(2 * 14 * 25);
    const r = await call('segment.apply', { bankId: bank.id, mediaId, frameIdx: 1, truthMask: maskFile(1) });
    expect(r).toMatchObject({ width: 240, height: 135, warnings: [] });
    expect(r.pixels.reduce((a, b) => a + b, 0)).toBe(240 * 135);
    expect(r.iou?.mean).toBeGreaterThan(0);
    const out = path.join(work, 'seg');
    // Issue 25 item 7: a coco.json planted as a link in the output folder is replaced, its target left untouched.
    const target = path.join(work, 'precious.txt');
    fs.writeFileSync(target, 'keep me');
    fs.mkdirSync(out, { recursive: true });
    fs.symlinkSync(target, path.join(out, 'coco.json'));
    const job = await call('segment.batch', { bankId: bank.id, outDir: out, resolution: 'source' });
    await idle();
    expect((await call('jobs.get', { id: job.id })).state).toBe('done');
    expect(fs.readFileSync(target, 'utf8')).toBe('keep me');
    expect(fs.lstatSync(path.join(out, 'coco.json')).isFile()).toBe(true);
    const masks = fs.readdirSync(path.join(out, 'masks'));
    expect(masks).toHaveLength(4);
    for (const m of masks) expect(pngSize(path.join(out, 'masks', m))).toEqual(SRC);
    const coco = JSON.parse(fs.readFileSync(path.join(out, 'coco.json'), 'utf8')) as { images: { width: number }[] };
    expect(coco.images[0]?.width).toBe(480);
  }, 120_000);

  it('reads a 0/255 binary mask as foreground and background, and says so', async () => {
    // A binary 'object' mask of the first second at the source size: 255 wherever the tour has an object.
    const gz = zlib.gunzipSync(fs.readFileSync(path.join(tour, 'tour.masks.gz')));
    const inst = gz.subarray(0, SRC.width * SRC.height);
    const file = path.join(work, 'binary.png');
    fs.writeFileSync(
      file,
      encodePng(
        Uint8Array.from(inst, (v) => (v ? 255 : 0)),
        SRC.width,
        SRC.height,
        6,
        1,
      ),
    );
    const bank = await call('segment.createBank', {
      runId,
      name: 'binary',
      classes: ['background', 'object'],
      examples: [{ mediaId, frameIdx: 0, mask: file }],
    });
    expect(bank.warnings[0]).toMatch(/only values 0 and 255: 255 was read as the second class \('object'\)/);
    const r = await call('segment.apply', { bankId: bank.id, mediaId, frameIdx: 0 });
    // Objects are found: the bank has foreground (read as 'ignore' it had none and nothing was segmented).
    expect(r.pixels[1]).toBeGreaterThan(0);
  });

  it("retrieves patches on each frame's own grid, with heat maps over it", async () => {
    const r = await call('retrieve.patches', { runId, mediaId, frameIdx: 1, point: [0.9, 0.5], k: 3 });
    expect(r.grid).toEqual({ gridH: 14, gridW: 25 });
    expect(r.patch).toBe(7 * 25 + 22);
    expect(r.results).toHaveLength(3);
    for (const x of r.results) {
      expect(x.grid).toEqual({ gridH: 14, gridW: 25 });
      expect(x.heat).toHaveLength(14 * 25);
      expect(Math.max(...x.heat)).toBeCloseTo(x.sim, 2);
    }
  });

  it('discovers and tracks objects on the 14x25 grid, masks exported at the frame size', async () => {
    const job = await call('track.start', { modelId, mediaId, objects: 2, size: 224 });
    await idle();
    expect((await call('jobs.get', { id: job.id })).state).toBe('done');
    const [runInfo] = await call('track.runs', { mediaId });
    expect(runInfo?.grid).toEqual({ gridH: 14, gridW: 25 });
    const f = await call('track.frame', { runId: runInfo?.id ?? 0, frameIdx: 3 });
    expect(f.objects.every((o) => o.mask.length === 14 * 25)).toBe(true);
    const exported = await call('track.exportMasks', { runId: runInfo?.id ?? 0, dir: path.join(work, 'tracks') });
    expect(exported.frames).toBe(4);
    expect(pngSize(path.join(exported.dir, 'frame_000001.png'))).toEqual({ width: 240, height: 135 });
    // At the source's resolution (as segment.batch and the CLI write them): the video's 480x270.
    const source = await call('track.exportMasks', {
      runId: runInfo?.id ?? 0,
      dir: path.join(work, 'tracks-source'),
      resolution: 'source',
    });
    expect(source.frames).toBe(4);
    expect(pngSize(path.join(source.dir, 'frame_000004.png'))).toEqual(SRC);
  });

  it('counts with a scale chosen from the exemplar, reporting it and the tiles', async () => {
    // The first object of the first second, in frame pixels (the frame is half the source).
    const b = frames[0]?.boxes.find((x) => x.w > 8 && x.h > 8);
    if (!b) throw new Error('no object in the first frame');
    const box: [number, number, number, number] = [b.x / 2, b.y / 2, Math.max(4, b.w / 2), Math.max(4, b.h / 2)];
    const r = await call('count.exemplar', { modelId, mediaId, frameIdx: 0, boxes: [box] });
    expect(r.count).toBeGreaterThan(0);
    expect(r.scale).not.toBeNull();
    const s = r.scale as NonNullable<typeof r.scale>;
    // The aspect ratio is kept: 240x135 scaled by the same factor on both sides (within a patch of rounding).
    expect(Math.abs(s.inputWidth / s.inputHeight - 240 / 135)).toBeLessThan(0.15);
    expect(s.gridW).toBe(s.inputWidth / 16);
    expect(s.tiles).toBeGreaterThanOrEqual(1);
    expect(s.exemplarPatches).toBeGreaterThan(1.5);
    const auto = await call('count.auto', { modelId, mediaId, frameIdx: 0 });
    expect(auto.width).toBe(240);
  });

  it('computes FUNGI features of the 16:9 frames', async () => {
    const job = await call('features.fungi', {
      modelId,
      size: 32,
      dino: { localViews: 2 },
      simclr: { strideScale: 2, negatives: 2 },
      pcaDim: 2,
    });
    await idle();
    expect((await call('jobs.get', { id: job.id })).state).toBe('done');
    const [fr] = await call('fungi.runs', {});
    expect(fr?.frames).toBe(4);
  }, 120_000);

  it('keeps a square run readable and marks it as square', async () => {
    await call('features.extract', { modelId, size: 224, resize: 'square' });
    await idle();
    const runs = await call('features.runs', {});
    const square = runs.find((r) => r.resize === 'square');
    expect(square).toMatchObject({ inputSize: 224, grid: 14, frames: 4 });
    const row = engine.requireProject().project.features.run(square?.id ?? 0);
    if (!row) throw new Error('no square run');
    // A run made before the aspect policy has preprocessing.resize 'squash': it is read as square.
    expect(row.preprocessing.resize).toBe('squash');
    expect(runPolicy(row)).toBe('square');
    const bank = await call('segment.createBank', {
      runId: square?.id ?? 0,
      name: 'square',
      classes: CLASSES,
      examples: [{ mediaId, frameIdx: 0, mask: maskFile(0) }],
    });
    expect(bank.patches).toBe(14 * 14);
    const r = await call('retrieve.patches', { runId: square?.id ?? 0, mediaId, frameIdx: 1, patch: 20, k: 2 });
    expect(r.grid).toEqual({ gridH: 14, gridW: 14 });
  });
});
