import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { propagationFigures } from '../../../bench/propagate.js';
import { gridLabels, LabelPropagator, PROPAGATE_DEFAULTS } from '../../../native/track/propagate.js';
import { instancePng, readInstanceMask, readState, writeState } from '../../../native/track/propagate-job.js';
import { colourFeatures, renderScene, writeDavisFolder, writeSceneVideo } from '../../../tools/synth/propagate.js';
import { runCli } from '../../helpers/cli.js';
import { dispatchEngine } from '../../helpers/dispatch.js';
import { writeInitViT } from '../../helpers/models.js';
import { tmpDir } from '../../helpers/tmp.js';

describe('propagation job', () => {
  it('follows start masks from a middle frame to both ends of a video, with PNG, COCO and MOT exports and J/F', async () => {
    const work = tmpDir();
    const { engine, call } = dispatchEngine();
    try {
      await call('project.create', { path: path.join(work, 'p') });
      const scene = renderScene(21, { width: 160, height: 96, frames: 14 });
      const video = await writeSceneVideo(path.join(work, 'scene.mp4'), scene);
      await call('library.add', { paths: [video] });
      const runner = engine.requireProject().runner;
      await runner.idle();
      const media = (await call('library.list', {})).items[0];
      expect(media?.kind).toBe('video');
      const model = await call('models.import', { path: writeInitViT(path.join(work, 'vit.safetensors')) });
      const truth = path.join(work, 'truth');
      fs.mkdirSync(truth);
      scene.masks.forEach((m, i) => {
        fs.writeFileSync(path.join(truth, `${String(i).padStart(5, '0')}.png`), instancePng(m, 160, 96));
      });
      const out = path.join(work, 'out');
      const job = await call('track.propagate', {
        modelId: model.id,
        mediaId: media?.id as number,
        start: { mask: path.join(truth, '00005.png') },
        fromFrame: 5,
        size: 224,
        outDir: out,
        truth,
      });
      await runner.idle();
      const done = await call('jobs.get', { id: job.id });
      expect(done.error ?? null).toBeNull();
      expect(done.state).toBe('done');
      // Every frame of the video (not the library's 1 fps sample), before and after the start frame.
      const pngs = fs.readdirSync(out).filter((f) => f.endsWith('.png'));
      expect(pngs).toHaveLength(14);
      const last = await readInstanceMask(path.join(out, '00013.png'), 160, 96);
      const first = await readInstanceMask(path.join(out, '00000.png'), 160, 96);
      expect(new Set(last).size).toBeGreaterThan(1);
      expect(new Set(first).size).toBeGreaterThan(1);
      const item = (await call('jobs.items', { id: job.id })).items.find((i) => i.key === 'run')?.result as {
        frames: number;
        objects: number;
        score: { J: number; F: number; JF: number; frames: number; objects: unknown[] };
      };
      expect(item).toMatchObject({ frames: 14, objects: 3 });
      expect(item.score.frames).toBe(13);
      expect(item.score.objects).toHaveLength(3);
      expect(item.score.JF).toBeGreaterThan(0);
      const coco = JSON.parse(fs.readFileSync(path.join(out, 'coco.json'), 'utf8')) as {
        images: unknown[];
        annotations: { category_id: number }[];
      };
      expect(coco.images).toHaveLength(14);
      // The start frame is exported too: every object present there has annotations.
      const present = [...new Set(scene.masks[5])].filter((v) => v > 0).sort();
      expect(present.length).toBeGreaterThan(1);
      const categories = new Set(coco.annotations.map((a) => a.category_id));
      for (const o of present) expect(categories.has(o)).toBe(true);
      expect(fs.readFileSync(path.join(out, 'mot.txt'), 'utf8').split('\n').length).toBeGreaterThan(14);
      const run = JSON.parse(fs.readFileSync(path.join(out, 'run.json'), 'utf8')) as { grid: { gridH: number } };
      expect(run.grid.gridH).toBe(14);
      // No checkpoint is left once the run is done.
      expect(fs.existsSync(path.join(out, '.propagate-state'))).toBe(false);
    } finally {
      await engine.close();
    }
  }, 300_000);

  it('goes on from a checkpointed context exactly as an uninterrupted run', () => {
    const scene = renderScene(7, { width: 96, height: 64, frames: 12, lookalikes: false });
    const grid = { gridH: 4, gridW: 6 };
    const feats = scene.rgb.map((f) => colourFeatures(f, 96, 64, 4, 6));
    const labels = gridLabels(scene.masks[0] as Uint8Array, 96, 64, grid, 4);
    const opts = { ...PROPAGATE_DEFAULTS, context: 3, radius: 2 };
    const straight = new LabelPropagator(grid, 15, 4, feats[0] as Float32Array, labels, opts);
    const a = feats.slice(1).map((f) => straight.step(f));
    const first = new LabelPropagator(grid, 15, 4, feats[0] as Float32Array, labels, opts);
    for (let t = 1; t <= 6; t++) first.step(feats[t] as Float32Array);
    const file = path.join(fs.mkdtempSync(path.join(os.tmpdir(), 'flaneur-state-')), 'state');
    writeState(file, { direction: 'forward', next: 7 }, first.snapshot());
    const saved = readState(file, 24, 15, 4);
    expect(saved?.head).toMatchObject({ direction: 'forward', next: 7 });
    const resumed = LabelPropagator.restore(grid, 15, 4, saved?.snapshot as never, opts);
    expect(resumed.contextSize).toBe(4);
    for (let t = 7; t < 12; t++)
      expect(Array.from(resumed.step(feats[t] as Float32Array))).toEqual(Array.from(a[t - 1] as Float32Array));
    fs.rmSync(path.dirname(file), { recursive: true, force: true });
  });
});

describe('flaneur eval davis', () => {
  it('scores a DAVIS-layout folder as the propagate bench does, leaving no project behind', async () => {
    const work = tmpDir();
    process.env.FLANEUR_HOME = path.join(work, 'home');
    const root = await writeDavisFolder(path.join(work, 'davis'), [
      { name: 'seed-31', scene: renderScene(31, { width: 160, height: 96, frames: 8 }) },
      { name: 'seed-32', scene: renderScene(32, { width: 160, height: 96, frames: 8, objects: 2 }) },
    ]);
    const model = writeInitViT(path.join(work, 'vit.safetensors'));
    const bench = await propagationFigures(root, { model, size: 224, reference: false, work });
    const before = new Set(fs.readdirSync(os.tmpdir()));
    const run = await runCli([
      'eval',
      'davis',
      root,
      '--model',
      model,
      '--size',
      '224',
      '--out',
      path.join(work, 'r.json'),
      '--json',
    ]);
    expect(run.stderr).not.toMatch(/Error/);
    expect(run.code).toBe(0);
    const r = run.json<{
      JF: number;
      J: number;
      F: number;
      sequences: { sequence: string; JF: number; objects: unknown[] }[];
    }>();
    expect(r.sequences.map((s) => s.sequence)).toEqual(['seed-31', 'seed-32']);
    expect(r.sequences[1]?.objects).toHaveLength(2);
    expect(Math.abs(r.JF - bench.jf_propagate)).toBeLessThan(1e-4);
    expect(r.sequences[0]?.JF).toBeCloseTo(bench.sequences['seed-31']?.propagate as number, 3);
    expect(JSON.parse(fs.readFileSync(path.join(work, 'r.json'), 'utf8')).JF).toBe(r.JF);
    // The temporary project is gone and forgotten.
    const left = fs.readdirSync(os.tmpdir()).filter((f) => !before.has(f) && f.startsWith('flaneur-davis-'));
    expect(left).toEqual([]);
    const recent = fs.existsSync(path.join(work, 'home', 'recent.json'))
      ? (JSON.parse(fs.readFileSync(path.join(work, 'home', 'recent.json'), 'utf8')) as unknown[])
      : [];
    expect(recent).toEqual([]);
    // Nothing was written into the DAVIS folder.
    expect(fs.readdirSync(root).sort()).toEqual(['Annotations', 'JPEGImages']);
  }, 300_000);
});

describe('flaneur track propagate', () => {
  it('propagates a folder of masks named by frame from the CLI and prints J and F', async () => {
    const work = tmpDir();
    process.env.FLANEUR_HOME = path.join(work, 'home');
    const project = path.join(work, 'p');
    expect((await runCli(['project', 'create', project])).code).toBe(0);
    const scene = renderScene(51, { width: 96, height: 64, frames: 8, objects: 2 });
    const video = await writeSceneVideo(path.join(work, 'clip.mp4'), scene);
    expect((await runCli(['add', video, '--project', project])).code).toBe(0);
    const vit = writeInitViT(path.join(work, 'vit.safetensors'));
    expect((await runCli(['model', 'import', vit, '--project', project])).code).toBe(0);
    const truth = path.join(work, 'truth');
    fs.mkdirSync(truth);
    scene.masks.forEach((m, i) => {
      fs.writeFileSync(path.join(truth, `${String(i).padStart(5, '0')}.png`), instancePng(m, 96, 64));
    });
    const out = path.join(work, 'out');
    const r = await runCli([
      'track',
      'propagate',
      video,
      '--masks',
      truth,
      '--from-frame',
      '3',
      '--out',
      out,
      '--truth',
      truth,
      '--size',
      '224',
      '--context',
      '3',
      '--reidentify',
      '0.1',
      '--project',
      project,
      '--json',
    ]);
    expect(r.stderr).not.toMatch(/Error:/);
    expect(r.code).toBe(0);
    const res = r.json<{ frames: number; objects: number; score: { JF: number; frames: number } }>();
    expect(res).toMatchObject({ frames: 8, objects: 2 });
    // Frame 3 (00002.png) was given: the 7 others are scored.
    expect(res.score.frames).toBe(7);
    expect(fs.readdirSync(out).filter((f) => /^\d{5}\.png$/.test(f))).toHaveLength(8);
    const run = JSON.parse(fs.readFileSync(path.join(out, 'run.json'), 'utf8')) as {
      fromFrame: number;
      params: { context: number; reidentify: number | null };
    };
    expect(run).toMatchObject({ fromFrame: 2, params: { context: 3, reidentify: 0.1 } });
  }, 300_000);
});
