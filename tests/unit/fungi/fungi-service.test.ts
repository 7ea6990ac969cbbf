/**
 * FUNGI features, kNN classification and embedding maps through the dispatcher, on 300 Fashion-MNIST images in
 * class sub-folders (tests/fixtures/fashion) with a ViT-Ti/16 (4 blocks) at initialisation.
 */
import fs from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { loadRegisteredModel } from '../../../native/features/extract.js';
import { ExactKnn, f16RowsToF32 } from '../../../native/features/knn.js';
import { FungiExtractor } from '../../../native/fungi/extractor.js';
import { fungiSettings } from '../../../native/fungi/job.js';
import { frameSeed } from '../../../native/fungi/views.js';
import { FrameStore } from '../../../native/media/frame-store.js';
import { dispatchEngine } from '../../helpers/dispatch.js';
import { fixturePath, maxAbsDiff } from '../../helpers/fixtures.js';
import { writeInitViT } from '../../helpers/models.js';
import { tmpDir } from '../../helpers/tmp.js';

const ROOT = fixturePath('fashion', 'train');

describe('FUNGI features, kNN classification and maps', () => {
  const work = tmpDir();
  // Jobs in this process: the map test spies on the kNN searches a resumed job makes.
  const { engine, d, call } = dispatchEngine({ jobWorkers: false });
  const idle = () => engine.requireProject().runner.idle();
  let runId = 0;
  let modelId = 0;
  afterAll(() => engine.close());

  beforeAll(async () => {
    await call('project.create', { path: path.join(work, 'p') });
    await call('library.add', { paths: [ROOT] });
    await idle();
    modelId = (await call('models.import', { path: writeInitViT(path.join(work, 'vit.safetensors')) })).id;
    await call('features.extract', { modelId, size: 32 });
    await idle();
    runId = (await call('features.runs', {}))[0]?.id ?? 0;
  }, 120_000);

  it('asks for FUNGI features before using them', async () => {
    const r = await d.dispatch('retrieve.images', { runId, mediaId: 1, frameIdx: 0, features: 'fungi' });
    expect(r).toMatchObject({ ok: false, error: { code: 'NOT_FOUND' } });
  });

  it('computes FUNGI vectors for every image, with provenance and a PCA', async () => {
    // Fewer views than the paper's (2 + 2 DINO crops, 9 SimCLR patches, 8 negative frames) to keep the test short.
    const args = { modelId, size: 32, dino: { localViews: 2 }, simclr: { strideScale: 2, negatives: 8 }, pcaDim: 64 };
    const job = await call('features.fungi', args);
    await idle();
    expect((await call('jobs.get', { id: job.id })).state).toBe('done');
    const [run] = await call('fungi.runs', {});
    expect(run).toMatchObject({ frames: 300, dim: 4 * 192, pcaDim: 64 });
    expect(run?.settings).toMatchObject({ size: 32, objectives: ['kl', 'dino', 'simclr'], seed: 0 });
    // The same settings again reuse the run: nothing is recomputed.
    await call('features.fungi', args);
    await idle();
    expect(await call('fungi.runs', {})).toHaveLength(1);
  }, 600_000);

  it('a cancelled FUNGI job resumes where it stopped and stores what an uninterrupted extraction computes', async () => {
    const args = {
      modelId,
      size: 32,
      objectives: ['kl', 'dino'] as ('kl' | 'dino')[],
      dino: { localViews: 1 },
      seed: 5,
      pcaDim: 16,
      media: Array.from({ length: 80 }, (_, i) => i + 1),
    };
    const job = await call('features.fungi', args);
    await expect
      .poll(async () => (await call('jobs.get', { id: job.id })).progress.done, { timeout: 60_000, interval: 10 })
      .toBeGreaterThan(0);
    await call('jobs.cancel', { id: job.id });
    await idle();
    expect((await call('jobs.get', { id: job.id })).state).toBe('cancelled');
    const partial = (await call('fungi.runs', {})).find((r) => r.settings.seed === 5);
    expect(partial?.frames).toBeGreaterThan(0);
    expect(partial?.frames).toBeLessThan(80);
    await call('jobs.resume', { id: job.id });
    await idle();
    expect((await call('jobs.get', { id: job.id })).state).toBe('done');
    const project = engine.requireProject().project;
    const run = project.fungi.runs().find((r) => r.settings.seed === 5);
    if (!run) throw new Error('no run');
    const stored = project.fungi.all(run.id);
    expect(stored).toHaveLength(80);
    // Recompute three frames (the first before the cancel, the last after it) directly: the same vectors, to f16 precision.
    const { model } = loadRegisteredModel(project, modelId);
    const x = await FungiExtractor.create(model, {
      size: 32,
      objectives: ['kl', 'dino'],
      settings: fungiSettings(args),
      seed: 5,
    });
    const store = new FrameStore(project.cacheDir);
    try {
      for (const row of [stored[0], stored[40], stored[79]]) {
        if (!row) throw new Error('missing row');
        const m = project.media.get(row.mediaId);
        const w = m?.frameWidth as number;
        const h = m?.frameHeight as number;
        const [v] = await x.run([
          {
            img: { width: w, height: h, data: store.read(row.mediaId, 0, w * h * 3) },
            seed: frameSeed(5, row.mediaId, 0),
          },
        ]);
        expect(maxAbsDiff(f16RowsToF32(row.vec), v as Float32Array)).toBeLessThan(2e-3);
      }
    } finally {
      await x.release();
    }
  }, 600_000);

  it('retrieves similar images with embeddings or FUNGI vectors', async () => {
    for (const features of ['embedding', 'fungi'] as const) {
      const r = await call('retrieve.images', { runId, mediaId: 1, frameIdx: 0, k: 5, features });
      expect(r.features).toBe(features);
      expect(r.results).toHaveLength(5);
      expect(r.results.every((x) => x.mediaId !== 1)).toBe(true);
    }
  });

  it('classifies the labelled folder leave-one-out far above chance, with a confusion matrix', async () => {
    for (const features of ['embedding', 'fungi'] as const) {
      const r = await call('classify.knn', { runId, root: ROOT, features });
      expect(r.classes).toHaveLength(10);
      expect(r.classes).toContain('ankle_boot');
      expect(r.evaluated).toBe(300);
      // Chance is 0.1; pixels alone give about 0.7 on Fashion-MNIST.
      expect(r.accuracy).toBeGreaterThan(0.4);
      expect(r.confusion.flat().reduce((a, b) => a + b, 0)).toBe(300);
      const diag = r.confusion.reduce((a, row, i) => a + (row[i] as number), 0);
      expect(diag / 300).toBeCloseTo(r.accuracy, 6);
      expect(r.misclassified).toHaveLength(300 - diag);
    }
  });

  it('refuses a folder without two labelled classes', async () => {
    const r = await d.dispatch('classify.knn', { runId, root: path.join(ROOT, 'bag') });
    expect(r).toMatchObject({ ok: false, error: { code: 'INVALID_ARGUMENT', field: 'root' } });
  });

  it('builds PCA and UMAP maps with clusters, coloured by class on request', async () => {
    await call('map.build', { runId, method: 'pca' });
    await call('map.build', { runId, method: 'umap', features: 'fungi', clusters: 10 });
    await idle();
    const maps = await call('map.list', {});
    expect(maps.map((m) => [m.method, m.features, m.points])).toEqual([
      ['pca', 'embedding', 300],
      ['umap', 'fungi', 300],
    ]);
    const m = await call('map.get', { id: maps[1]?.id ?? 0, root: ROOT });
    expect(m.points).toHaveLength(300);
    expect(m.points.every((p) => Number.isFinite(p.x) && Number.isFinite(p.y))).toBe(true);
    expect(new Set(m.points.map((p) => p.cluster)).size).toBeGreaterThan(3);
    expect(m.classes).toHaveLength(10);
    expect(m.labels.every((l) => l >= 0 && l < 10)).toBe(true);
  }, 120_000);

  it('resumes a cancelled UMAP map from its kept neighbour graph, to the map an uninterrupted job makes', async () => {
    const args = { runId, method: 'umap', seed: 3 } as const;
    await call('map.build', args);
    await idle();
    const whole = (await call('map.list', {})).at(-1)?.id ?? 0;

    const job = await call('map.build', args);
    // Cancelled once the neighbour graph is kept, while UMAP's epochs run.
    const kept = path.join(engine.requireProject().project.cacheDir, 'maps', `job-${job.id}-neighbours.bin`);
    while (!fs.existsSync(kept)) {
      expect((await call('jobs.get', { id: job.id })).state).not.toBe('done');
      await new Promise((r) => setTimeout(r, 1));
    }
    await call('jobs.cancel', { id: job.id });
    await idle();
    expect((await call('jobs.get', { id: job.id })).state).toBe('cancelled');
    expect(fs.statSync(kept).size).toBe(8 + 12 * 300 * 15);

    // The resume reads the kept graph: no exact 16-NN search (15 neighbours + self) runs again.
    const search = vi.spyOn(ExactKnn.prototype, 'search');
    await call('jobs.resume', { id: job.id });
    await idle();
    expect(search.mock.calls.filter((c) => c[2] === 16)).toHaveLength(0);
    expect(search.mock.calls.length).toBeGreaterThan(0);
    search.mockRestore();
    expect((await call('jobs.get', { id: job.id })).state).toBe('done');
    expect(fs.existsSync(kept)).toBe(false);
    const resumed = (await call('map.list', {})).at(-1)?.id ?? 0;
    const a = await call('map.get', { id: whole });
    const b = await call('map.get', { id: resumed });
    expect(b.points).toEqual(a.points);
  }, 120_000);
});
