/**
 * Counting crowds: a generated scene with several hundred small objects (tools/synth/count.ts makeDenseCountScene)
 * counted from one exemplar box with the bundled default model. The exemplar-chosen scale and tiles (countDense)
 * return a count in the hundreds, close to the truth, each object found once across tile overlaps; the whole image
 * squashed to fixed squares (the method before) cannot, since a patch then holds several objects.
 */
import fs from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { countDense, countWithExemplars } from '../../../native/count/count.js';
import { DEFAULT_MODEL_DIR } from '../../../native/engine/engine.js';
import { FeatureExtractor } from '../../../native/features/extract.js';
import { encodePng } from '../../../native/media/png.js';
import { importViTFile } from '../../../native/models/import-vit.js';
import { type CountScene, makeDenseCountScene } from '../../../tools/synth/count.js';
import { dispatchEngine } from '../../helpers/dispatch.js';
import { tmpDir } from '../../helpers/tmp.js';

describe('dense counting', { timeout: 240_000 }, () => {
  const model = importViTFile(path.join(DEFAULT_MODEL_DIR, 'flaneur-vit-ti16-dora-vtest.safetensors'));
  let ex: FeatureExtractor;
  let square: FeatureExtractor[] = [];
  let scene: CountScene;
  beforeAll(async () => {
    ex = await FeatureExtractor.create(model, 224);
    square = await Promise.all([224, 448].map((s) => FeatureExtractor.create(model, s, undefined, 'square')));
    scene = makeDenseCountScene(11, { width: 800, height: 600, count: 320, radius: 10 });
  });
  afterAll(async () => {
    await ex?.release();
    for (const e of square) await e.release();
  });

  it('generates the scene it says: hundreds of separate objects, the exemplar one of them', () => {
    expect(scene.count).toBeGreaterThanOrEqual(300);
    expect(scene.centres).toHaveLength(scene.count);
    const [x, y, w, h] = scene.exemplar;
    expect(scene.centres.some(([cx, cy]) => Math.abs(cx - (x + w / 2)) < 1 && Math.abs(cy - (y + h / 2)) < 1)).toBe(
      true,
    );
  });

  it('counts several hundred objects from one exemplar, each once across tiles', async () => {
    const img = { width: scene.width, height: scene.height, data: scene.rgb };
    const r = await countDense(ex, img, [scene.exemplar]);
    // The exemplar spans about 3 patches, which takes several overlapping tiles of 448 px.
    expect(r.scale.exemplarPatches).toBeGreaterThan(2.5);
    expect(r.scale.tiles).toBeGreaterThan(4);
    expect(r.count).toBeGreaterThan(0.9 * scene.count);
    expect(r.count).toBeLessThan(1.15 * scene.count);
    // Found where they are: nearly every object has a point within its radius.
    const found = scene.centres.filter(([cx, cy]) => r.points.some((p) => Math.hypot(p.x - cx, p.y - cy) < 10));
    expect(found.length).toBeGreaterThan(0.9 * scene.count);
    // One point per object: none closer than the suppression radius (an object in a tile overlap is not twice).
    const minGap = r.radius * r.map.scale * 0.99;
    for (let i = 0; i < r.points.length; i++)
      for (let j = i + 1; j < r.points.length; j++) {
        const a = r.points[i] as { x: number; y: number };
        const b = r.points[j] as { x: number; y: number };
        expect(Math.hypot(a.x - b.x, a.y - b.y)).toBeGreaterThan(minGap);
      }
    // The whole image squashed to 224 and 448 px squares puts several objects in a patch: far fewer are found.
    const before = await countWithExemplars(square, img, [scene.exemplar]);
    expect(before.count).toBeLessThan(0.5 * scene.count);
  });
});

describe('counting a crowd photo added with the default settings', { timeout: 300_000 }, () => {
  const work = tmpDir();
  const { engine, call } = dispatchEngine();
  afterAll(() => engine.close());

  it("counts on the file's own pixels, not on the 224 px frame stored for it; boxes and points in frame pixels", async () => {
    const scene = makeDenseCountScene(11, { width: 800, height: 600, count: 320, radius: 10 });
    const file = path.join(work, 'crowd.png');
    fs.writeFileSync(file, encodePng(scene.rgb, scene.width, scene.height));
    await call('project.create', { path: path.join(work, 'p') });
    await call('library.add', { paths: [file] });
    await engine.requireProject().runner.idle();
    const media = (await call('library.list', {})).items[0];
    // Stored at 224 px on the shorter side: the objects are under 6 px across there.
    expect([media?.frameWidth, media?.frameHeight]).toEqual([298, 224]);
    const { id: modelId } = await call('models.import', {
      path: path.join(DEFAULT_MODEL_DIR, 'flaneur-vit-ti16-dora-vtest.safetensors'),
    });
    const k = 224 / 600;
    const [x, y, w, h] = scene.exemplar;
    const r = await call('count.exemplar', {
      modelId,
      mediaId: media?.id ?? 0,
      frameIdx: 0,
      boxes: [[x * k, y * k, w * k, h * k]],
    });
    expect(r.scale).toMatchObject({ imageWidth: 800, imageHeight: 600 });
    expect(r).toMatchObject({ width: 298, height: 224 });
    expect(r.count).toBeGreaterThan(0.9 * scene.count);
    expect(r.count).toBeLessThan(1.15 * scene.count);
    for (const p of r.points) {
      expect(p.x).toBeLessThanOrEqual(298);
      expect(p.y).toBeLessThanOrEqual(224);
    }
    // Points land on the objects, in frame pixels.
    const found = scene.centres.filter(([cx, cy]) => r.points.some((p) => Math.hypot(p.x / k - cx, p.y / k - cy) < 10));
    expect(found.length).toBeGreaterThan(0.9 * scene.count);
    // The threshold slider re-counts the same map, its points in frame pixels too.
    const again = await call('count.peaks', { token: r.token, threshold: r.threshold });
    expect(again.count).toBe(r.count);
    expect(again.points[0]).toEqual(r.points[0]);
    // The contrasted similarity goes past 1 (cosine to the exemplar minus cosine to the mean patch): so may the slider.
    expect(r.range[1]).toBeGreaterThan(r.threshold);
    const high = await call('count.peaks', { token: r.token, threshold: 1.5 });
    expect(high.count).toBeLessThanOrEqual(r.count);
  });
});
