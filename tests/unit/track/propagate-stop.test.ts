/**
 * The propagation job stopped mid-run: its worker process killed (the engine queues it again and a new worker goes
 * on from the checkpointed context), or cancelled and resumed; either way every frame's mask is byte for byte what
 * an uninterrupted run writes. And propagation started from a Dora run's objects, cancelled and resumed too.
 */
import fs from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { CommandArgs } from '../../../native/api/contract.js';
import { instanceMask } from '../../../native/track/export.js';
import { instancePng, readInstanceMask } from '../../../native/track/propagate-job.js';
import { renderScene, writeSceneVideo } from '../../../tools/synth/propagate.js';
import { dispatchEngine } from '../../helpers/dispatch.js';
import { type EngineProcess, jobWorkerPids, startEngineProcess, waitFor } from '../../helpers/engine-process.js';
import { writeInitViT } from '../../helpers/models.js';
import { tmpDir } from '../../helpers/tmp.js';

const W = 160;
const H = 96;
const FRAMES = 60;
/** The start frame: 51 frames forward, 8 backward; the context is checkpointed every 10 frames. */
const START = 8;
const ADD: Omit<CommandArgs<'library.add'>, 'paths'> = {
  // Every frame of the 10 fps video in the library, so a Dora run has the start frame itself.
  sampling: { policy: 'fps', fps: 10 },
  frameSize: { mode: 'short-side', size: 96 },
};

/** Every file of a run's folder that a finished run leaves (PNGs, MOT boxes), by name. */
function outputs(dir: string): Map<string, Buffer> {
  const files = fs
    .readdirSync(dir)
    .filter((f) => /^\d{5}\.png$/.test(f) || f === 'mot.txt')
    .sort();
  return new Map(files.map((f) => [f, fs.readFileSync(path.join(dir, f))]));
}

function expectSameOutputs(dir: string, reference: Map<string, Buffer>): void {
  const got = outputs(dir);
  expect([...got.keys()]).toEqual([...reference.keys()]);
  for (const [name, bytes] of reference) expect(got.get(name)?.equals(bytes), name).toBe(true);
  // The checkpoint is gone once the run is done.
  expect(fs.existsSync(path.join(dir, '.propagate-state'))).toBe(false);
}

describe('a propagation job stopped mid-run', () => {
  const work = tmpDir();
  const home = tmpDir();
  const engines: EngineProcess[] = [];
  let video = '';
  let vit = '';
  let startMask = '';
  let reference = new Map<string, Buffer>();
  const args = (modelId: number, mediaId: number, outDir: string): CommandArgs<'track.propagate'> => ({
    modelId,
    mediaId,
    start: { mask: startMask },
    fromFrame: START,
    size: 224,
    outDir,
  });

  beforeAll(async () => {
    const scene = renderScene(31, { width: W, height: H, frames: FRAMES });
    video = await writeSceneVideo(path.join(work, 'scene.mp4'), scene);
    vit = writeInitViT(path.join(work, 'vit.safetensors'));
    startMask = path.join(work, 'start.png');
    fs.writeFileSync(startMask, instancePng(scene.masks[START] as Uint8Array, W, H));
    // The uninterrupted run.
    const { engine, call } = dispatchEngine();
    try {
      await call('project.create', { path: path.join(work, 'ref') });
      await call('library.add', { paths: [video], ...ADD });
      await engine.requireProject().runner.idle();
      const media = (await call('library.list', {})).items[0];
      const model = await call('models.import', { path: vit });
      const out = path.join(work, 'ref-out');
      const job = await call('track.propagate', args(model.id, media?.id as number, out));
      await engine.requireProject().runner.idle();
      expect((await call('jobs.get', { id: job.id })).state).toBe('done');
      reference = outputs(out);
    } finally {
      await engine.close();
    }
    expect(reference.size).toBe(FRAMES + 1);
  }, 300_000);

  afterAll(async () => {
    for (const e of engines) await e.stop('SIGKILL');
  });

  it('goes on from its checkpoint after its worker process is killed, every frame as an uninterrupted run writes it', async () => {
    const engine = await startEngineProcess({ home });
    engines.push(engine);
    await engine.call('project.create', { path: path.join(work, 'killed') });
    await engine.call('library.add', { paths: [video], ...ADD });
    await waitFor(async () => (await engine.call('library.list', {})).items[0]?.status === 'done', 60_000);
    const media = (await engine.call('library.list', {})).items[0];
    const model = await engine.call('models.import', { path: vit });
    const out = path.join(work, 'killed-out');
    const job = await engine.call('track.propagate', args(model.id, media?.id as number, out));
    // Past the first checkpoint (10 frames) and well before the forward pass ends (51 frames).
    await waitFor(async () => {
      const j = await engine.call('jobs.get', { id: job.id });
      return j.state === 'running' && j.progress.done >= 13 ? j : null;
    }, 120_000);
    const [pid, ...others] = jobWorkerPids(engine.pid);
    expect(pid).toBeDefined();
    expect(others).toEqual([]);
    const killedAt = Date.now();
    process.kill(pid as number, 'SIGKILL');
    const state = fs.readFileSync(path.join(out, '.propagate-state'));
    expect(state.length).toBeGreaterThan(0);

    const done = await waitFor(async () => {
      const j = await engine.call('jobs.get', { id: job.id });
      return j.state === 'done' || j.state === 'failed' ? j : null;
    }, 240_000);
    expect(done.error?.message ?? done.state).toBe('done');
    expect(done.attempt).toBe(2);
    expectSameOutputs(out, reference);
    // The frames before the checkpoint were not propagated again: their files are the first worker's.
    for (let i = START + 1; i <= START + 10; i++)
      expect(fs.statSync(path.join(out, `${String(i).padStart(5, '0')}.png`)).mtimeMs).toBeLessThanOrEqual(killedAt);
    await engine.stop();
  }, 400_000);

  it('stops when cancelled and, resumed, finishes with every frame as an uninterrupted run writes it', async () => {
    const { engine, call } = dispatchEngine();
    try {
      await call('project.create', { path: path.join(work, 'cancelled') });
      await call('library.add', { paths: [video], ...ADD });
      const runner = engine.requireProject().runner;
      await runner.idle();
      const media = (await call('library.list', {})).items[0];
      const model = await call('models.import', { path: vit });
      const out = path.join(work, 'cancelled-out');
      const job = await call('track.propagate', args(model.id, media?.id as number, out));
      await expect
        .poll(async () => (await call('jobs.get', { id: job.id })).progress.done, { timeout: 120_000, interval: 20 })
        .toBeGreaterThanOrEqual(12);
      await call('jobs.cancel', { id: job.id });
      await runner.idle();
      const cancelled = await call('jobs.get', { id: job.id });
      expect(cancelled.state).toBe('cancelled');
      // It stopped part way: not every frame is written, the checkpoint is kept for a resume.
      const written = fs.readdirSync(out).filter((f) => /^\d{5}\.png$/.test(f)).length;
      expect(written).toBeLessThan(FRAMES);
      expect(fs.existsSync(path.join(out, '.propagate-state'))).toBe(true);
      expect(fs.existsSync(path.join(out, 'coco.json'))).toBe(false);

      await call('jobs.resume', { id: job.id });
      await runner.idle();
      const done = await call('jobs.get', { id: job.id });
      expect(done.error?.message ?? done.state).toBe('done');
      expectSameOutputs(out, reference);
    } finally {
      await engine.close();
    }
  }, 400_000);
});

describe("propagation started from a Dora run's objects", () => {
  it('follows the chosen objects from their Dora masks on the start frame, and a cancelled run resumes to the same masks', async () => {
    const work = tmpDir();
    const scene = renderScene(33, { width: W, height: H, frames: 24 });
    const video = await writeSceneVideo(path.join(work, 'scene.mp4'), scene);
    const { engine, call } = dispatchEngine();
    try {
      await call('project.create', { path: path.join(work, 'p') });
      await call('library.add', { paths: [video], ...ADD });
      const runner = engine.requireProject().runner;
      await runner.idle();
      const mediaId = (await call('library.list', {})).items[0]?.id as number;
      const model = await call('models.import', { path: writeInitViT(path.join(work, 'vit.safetensors')) });
      const track = await call('track.start', { modelId: model.id, mediaId, objects: 3, size: 224 });
      await runner.idle();
      expect((await call('jobs.get', { id: track.id })).state).toBe('done');
      const [run] = await call('track.runs', { mediaId });
      if (!run) throw new Error('no track run');
      // Dora's masks of the start frame: the objects asked for, each with its Dora id.
      const start = 6;
      const dora = await call('track.frame', { runId: run.id, frameIdx: start });
      const chosen = dora.objects.filter((o) => o.object !== 1 && o.mask.some((v) => v > 0));
      expect(chosen.length).toBeGreaterThan(0);
      const want = chosen.map((o) => o.object);
      const expected = instanceMask(
        chosen.map((o) => ({ object: o.object, mask: Uint8Array.from(o.mask) })),
        dora.grid,
        W,
        H,
      );
      const propagate = (outDir: string): CommandArgs<'track.propagate'> => ({
        modelId: model.id,
        mediaId,
        start: { trackRun: run.id, objects: want },
        fromFrame: start,
        size: 224,
        outDir,
      });

      const out = path.join(work, 'out');
      const job = await call('track.propagate', propagate(out));
      await runner.idle();
      const done = await call('jobs.get', { id: job.id });
      expect(done.error?.message ?? done.state).toBe('done');
      const startIds = await readInstanceMask(path.join(out, `0000${start}.png`), W, H);
      expect(Buffer.from(startIds).equals(Buffer.from(expected))).toBe(true);
      // Every frame of the video written, with only the chosen objects' ids, and the objects followed to the end.
      const pngs = fs.readdirSync(out).filter((f) => /^\d{5}\.png$/.test(f));
      expect(pngs).toHaveLength(24);
      const seen = new Set<number>();
      for (const f of pngs) for (const v of await readInstanceMask(path.join(out, f), W, H)) seen.add(v);
      seen.delete(0);
      expect([...seen].every((v) => want.includes(v))).toBe(true);
      expect(seen.size).toBeGreaterThan(0);
      const manifest = JSON.parse(fs.readFileSync(path.join(out, 'run.json'), 'utf8')) as { objects: number };
      expect(manifest.objects).toBe(Math.max(...want));
      const reference = outputs(out);

      // Cancelled mid-run and resumed: the same masks.
      const out2 = path.join(work, 'out2');
      const job2 = await call('track.propagate', propagate(out2));
      await expect
        .poll(async () => (await call('jobs.get', { id: job2.id })).progress.done, { timeout: 120_000, interval: 20 })
        .toBeGreaterThanOrEqual(11);
      await call('jobs.cancel', { id: job2.id });
      await runner.idle();
      expect((await call('jobs.get', { id: job2.id })).state).toBe('cancelled');
      await call('jobs.resume', { id: job2.id });
      await runner.idle();
      expect((await call('jobs.get', { id: job2.id })).state).toBe('done');
      expectSameOutputs(out2, reference);

      // A run of another item, or none: refused with a sentence.
      const bad = await call('track.propagate', { ...propagate(path.join(work, 'bad')), start: { trackRun: 99 } });
      await runner.idle();
      const failed = await call('jobs.get', { id: bad.id });
      expect(failed.state).toBe('failed');
      expect(failed.error?.message).toBe('No track run 99 of this item.');
    } finally {
      await engine.close();
    }
  }, 600_000);
});
