import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { CommandArgs } from '../../../native/api/contract.js';
import { makeCountScene } from '../../../tools/synth/count.js';
import { dispatchEngine } from '../../helpers/dispatch.js';
import { videoFromImages } from '../../helpers/media.js';
import { writeTinyViT } from '../../helpers/models.js';
import { tmpDir } from '../../helpers/tmp.js';
import { UNCO_TINY_COLLAGES, writeCountScenes } from '../../helpers/unco.js';

const work = tmpDir();
const backbone = writeTinyViT(5, 'unco-backbone.safetensors');
const scenes = Array.from({ length: 24 }, (_, i) => makeCountScene(60 + i, { size: 160 }));
const images = writeCountScenes(work, [60, 61, 62, 63]).map((x) => x.file);
const video = videoFromImages(path.join(work, 'scenes.mp4'), scenes);

const PREVIEW = { ...UNCO_TINY_COLLAGES, collages: 3 } satisfies CommandArgs<'train.uncoPreview'>;

async function project(name: string) {
  const { engine, call } = dispatchEngine();
  await call('project.create', { path: path.join(work, name) });
  await call('library.add', { paths: images });
  await call('library.add', { paths: [video], sampling: { policy: 'every', n: 1 } });
  const runner = engine.requireProject().runner;
  await runner.idle();
  const model = await call('models.import', { path: backbone, name: 'tiny backbone' });
  const items = (await call('library.list', {})).items;
  const clip = items.find((m) => m.kind === 'video');
  if (!clip) throw new Error('the video was not added');
  return { engine, call, runner, model, stills: items.filter((m) => m.kind === 'image').map((m) => m.id), clip };
}

/** Width and height of a PNG data URL (its IHDR chunk). */
function pngSize(url: string): [number, number] {
  const b = Buffer.from(url.slice(url.indexOf(',') + 1), 'base64');
  return [b.readUInt32BE(16), b.readUInt32BE(20)];
}

type Env = Awaited<ReturnType<typeof project>>;

describe('the UnCo collage preview', { timeout: 600_000 }, () => {
  let env: Env;
  beforeAll(async () => {
    env = await project('preview');
  }, 600_000);
  afterAll(() => env.engine.close());

  it('builds the same collages for the same seed, each with N equal to its density target sum', async () => {
    const args = { ...PREVIEW, model: env.model.id, media: env.stills };
    const a = await env.call('train.uncoPreview', args);
    const b = await env.call('train.uncoPreview', args);
    expect(b).toEqual(a);
    expect(a).toMatchObject({ size: 224, frames: 4 });
    expect(a.objects).toBeGreaterThanOrEqual(2);
    expect(a.collages).toHaveLength(3);
    for (const k of a.collages) {
      expect(k.count).toBeGreaterThanOrEqual(1);
      expect(k.count).toBeLessThanOrEqual(PREVIEW.maxCount);
      expect(k.targetSum).toBeCloseTo(k.count, 3);
      expect(k.count + k.distractors).toBeLessThanOrEqual(PREVIEW.total);
      expect(k.exemplars.length).toBe(Math.min(3, k.count));
      for (const [x, y, w, h] of k.exemplars) {
        expect(Math.min(x, y)).toBeGreaterThanOrEqual(0);
        expect(Math.max(x + w, y + h)).toBeLessThanOrEqual(224);
      }
      expect(pngSize(k.png)).toEqual([224, 224]);
      expect(pngSize(k.densityPng)).toEqual([224, 224]);
    }
    const other = await env.call('train.uncoPreview', { ...args, seed: 4 });
    expect(other.collages.map((k) => k.png)).not.toEqual(a.collages.map((k) => k.png));
  });

  it('says what is wrong when there is no model to find objects with', async () => {
    await expect(env.call('train.uncoPreview', { ...PREVIEW, model: 999 })).rejects.toThrow(/Choose the model/);
  });
});

const TRAIN = {
  ...UNCO_TINY_COLLAGES,
  steps: 2,
  batch: 2,
  evalEvery: 2,
  evalCollages: 2,
  previewEvery: 0,
} satisfies CommandArgs<'train.unco'>;

describe('counting a video with a trained counter (the count.uncoVideo job)', { timeout: 600_000 }, () => {
  let env: Env;
  let counter: number;
  let boxes: [number, number, number, number][];
  let reference: { frameIdx: number; count: number }[];

  async function countVideo(e: Env, jobId: number) {
    return e.call('count.uncoVideo', { jobId, mediaId: e.clip.id, boxes, exemplarFrameIdx: 0 });
  }

  beforeAll(async () => {
    env = await project('video');
    const job = await env.call('train.unco', { ...TRAIN, model: env.model.id, media: env.stills });
    await env.runner.idle();
    expect((await env.call('jobs.get', { id: job.id })).state).toBe('done');
    counter = job.id;
    const k = (env.clip.frameWidth ?? 0) / 160;
    const [x, y, w, h] = scenes[0]?.exemplar ?? [0, 0, 1, 1];
    boxes = [[x * k, y * k, w * k, h * k]];
    const run = await countVideo(env, counter);
    await env.runner.idle();
    const done = await env.call('jobs.get', { id: run.id });
    expect(done.error?.message ?? done.state).toBe('done');
    reference = (await env.call('count.results', { jobId: run.id })).map(({ frameIdx, count }) => ({
      frameIdx,
      count,
    }));
  }, 600_000);
  afterAll(() => env.engine.close());

  it('stores one count per frame, the count.unco of that frame with the exemplars of the first', async () => {
    expect(env.clip.frameCount).toBe(scenes.length);
    expect(reference.map((r) => r.frameIdx)).toEqual([...Array(scenes.length).keys()]);
    for (const f of [0, 5, scenes.length - 1]) {
      const one = await env.call('count.unco', {
        jobId: counter,
        mediaId: env.clip.id,
        frameIdx: f,
        boxes,
        exemplarFrameIdx: 0,
      });
      expect(reference[f]?.count).toBeCloseTo(one.count, 4);
    }
  });

  it('resumes a cancelled job with exactly the counts of an uninterrupted one', async () => {
    const run = await countVideo(env, counter);
    for (;;) {
      const j = await env.call('jobs.get', { id: run.id });
      if (j.progress.done >= 1 || (j.state !== 'running' && j.state !== 'queued')) break;
      await new Promise((r) => setTimeout(r, 5));
    }
    await env.call('jobs.cancel', { id: run.id });
    await env.runner.idle();
    expect((await env.call('jobs.get', { id: run.id })).state).toBe('cancelled');
    expect((await env.call('count.results', { jobId: run.id })).length).toBeLessThan(scenes.length);
    await env.call('jobs.resume', { id: run.id });
    await env.runner.idle();
    expect((await env.call('jobs.get', { id: run.id })).state).toBe('done');
    const got = (await env.call('count.results', { jobId: run.id })).map(({ frameIdx, count }) => ({
      frameIdx,
      count,
    }));
    expect(got).toEqual(reference);
  });

  it('refuses a counter that does not exist and a one-shot counter without an exemplar, before queueing', async () => {
    await expect(countVideo(env, 999)).rejects.toThrow(/No trained counter from job 999/);
    await expect(
      env.call('count.uncoVideo', { jobId: counter, mediaId: env.clip.id, exemplarFrameIdx: 0 }),
    ).rejects.toThrow(/exemplar/);
  });
});
