import fs from 'node:fs';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import type { CommandArgs } from '../../../native/api/contract.js';
import { Engine } from '../../../native/engine/engine.js';
import { createEngineDispatcher } from '../../../native/engine/handlers.js';
import { decodeVideo } from '../../../native/media/decode.js';
import { Project } from '../../../native/store/project.js';
import { type EngineProcess, startEngineProcess, waitFor } from '../../helpers/engine-process.js';
import { fixturePath } from '../../helpers/fixtures.js';
import { makeVideo } from '../../helpers/media.js';
import { tmpDir, writeFiles } from '../../helpers/tmp.js';
import { NECO_TINY, TINY_TRAIN } from '../../helpers/train.js';

const FILES = 1500;

describe('a killed engine', () => {
  const home = tmpDir();
  const work = tmpDir();
  const projectDir = path.join(work, 'project');
  const dataDir = path.join(work, 'data');
  const engines: EngineProcess[] = [];
  afterAll(async () => {
    for (const e of engines) await e.stop('SIGKILL');
  });

  it('resumes its job from the checkpoint after restart, without repeating finished items', async () => {
    writeFiles(dataDir, FILES, 256 * 1024);
    const first = await startEngineProcess({ home });
    engines.push(first);
    await first.call('project.create', { path: projectDir });
    const job = await first.call('ingest.hashFolder', { root: dataDir });

    await waitFor(async () => {
      const j = await first.call('jobs.get', { id: job.id });
      return j.items.ok >= 200 && j.state === 'running';
    });
    first.child.kill('SIGKILL');
    await first.stop();

    // What the dead engine committed, read straight from the project database.
    const look = Project.open(projectDir);
    const dead = look.jobs.get(job.id);
    const committedBefore = dead?.items.ok ?? 0;
    look.close();
    expect(dead?.state).toBe('running'); // nobody had the chance to say otherwise
    expect(committedBefore).toBeGreaterThanOrEqual(200);
    expect(committedBefore).toBeLessThan(FILES);

    const second = await startEngineProcess({ home, project: projectDir });
    engines.push(second);
    const done = await waitFor(async () => {
      const j = await second.call('jobs.get', { id: job.id });
      return j.state === 'done' ? j : null;
    }, 60_000);
    expect(done.attempt).toBe(2);
    expect(done.items).toEqual({ ok: FILES, failed: 0, skipped: 0 });

    const items = await second.call('jobs.items', { id: job.id, limit: 1000, offset: 0 });
    const rest = await second.call('jobs.items', { id: job.id, limit: 1000, offset: 1000 });
    const all = [...items.items, ...rest.items];
    expect(new Set(all.map((i) => i.key)).size).toBe(FILES);
    // Items finished before the kill keep attempt 1: the resumed run did not hash them again.
    expect(all.filter((i) => i.attempt === 1).length).toBe(committedBefore);
    expect(all.filter((i) => i.attempt === 2).length).toBe(FILES - committedBefore);
    await second.stop();
  });

  it('resumes an interrupted video ingest at the frame it reached, with no duplicate frames', async () => {
    const video = makeVideo(path.join(work, 'walk.mp4'), { seconds: 60, fps: 25, width: 640, height: 360, gop: 50 });
    const sampling = { policy: 'fps', fps: 10 } as const;
    const reference: number[] = [];
    for await (const f of decodeVideo(video, { sampling, width: 64, height: 36 })) reference.push(f.pts);
    const ingestProject = path.join(work, 'ingest-project');

    const first = await startEngineProcess({ home });
    engines.push(first);
    await first.call('project.create', { path: ingestProject });
    await first.call('library.add', { paths: [video], sampling, frameSize: { mode: 'short-side', size: 36 } });
    await waitFor(async () => {
      const list = await first.call('library.list', {});
      return (list.items[0]?.frameCount ?? 0) >= 60;
    });
    first.child.kill('SIGKILL');
    await first.stop();

    const look = Project.open(ingestProject);
    const before = look.media.byPath(video)?.frameCount ?? 0;
    look.close();
    expect(before).toBeGreaterThanOrEqual(60);
    expect(before).toBeLessThan(reference.length);

    const second = await startEngineProcess({ home, project: ingestProject });
    engines.push(second);
    const media = await waitFor(async () => {
      const m = (await second.call('library.list', {})).items[0];
      return m?.status === 'done' ? m : null;
    }, 60_000);
    expect(media.frameCount).toBe(reference.length);
    const frames = await second.call('library.frames', { id: media.id });
    expect(frames.frames.map((f) => f.pts)).toEqual(reference);
    expect(frames.frames.map((f) => f.index)).toEqual(reference.map((_, i) => i));
    expect(fs.statSync(path.join(ingestProject, 'cache', 'frames', `${media.id}.rgb`)).size).toBe(
      reference.length * 64 * 36 * 3,
    );
    await second.stop();
  }, 120_000);

  // NeCo's step (49 x 49 soft sorts per crop pair) is slower: a shorter run, killed earlier.
  for (const [method, extra, steps, killAt] of [
    ['DINO', {}, 30, 12],
    ['Dora', { batch: 4, dora: { framesPerClip: 2, stride: 3, objects: 2 } }, 30, 12],
    ['NeCo', { batch: 1, neco: NECO_TINY }, 12, 6],
  ] as const)
    it(`resumes a killed ${method} training job from its checkpoint with a continuous, identical loss curve`, async () => {
      const args = { ...TINY_TRAIN, ...extra, steps, checkpointEvery: 5 };
      const frames: CommandArgs<'library.add'> = {
        paths: [fixturePath('synthetic', 'tour.mp4')],
        sampling: { policy: 'fps', fps: 2 },
        frameSize: { mode: 'short-side', size: 48 },
      };

      // The uninterrupted run, in this process.
      const ref = new Engine({ home: tmpDir() });
      const refCall = createEngineDispatcher(ref);
      const call = async (c: string, a: unknown) => {
        const r = await refCall.dispatch(c, a);
        if (!r.ok) throw new Error(r.error.message);
        return r.result as never;
      };
      await call('project.create', { path: path.join(work, `train-ref-${method}`) });
      await call('library.add', frames);
      await ref.requireProject().runner.idle();
      const refJob = (await call('train.start', args)) as { id: number };
      await ref.requireProject().runner.idle();
      const reference = ((await call('train.log', { jobId: refJob.id })) as { loss: number }[]).map((r) => r.loss);
      await ref.close();

      const trainProject = path.join(work, `train-project-${method}`);
      const first = await startEngineProcess({ home });
      engines.push(first);
      await first.call('project.create', { path: trainProject });
      await first.call('library.add', frames);
      await waitFor(async () => (await first.call('library.list', {})).items[0]?.status === 'done');
      const job = await first.call('train.start', args);
      await waitFor(async () => (await first.call('train.log', { jobId: job.id })).length >= killAt, 60_000);
      first.child.kill('SIGKILL');
      await first.stop();

      const second = await startEngineProcess({ home, project: trainProject });
      engines.push(second);
      const done = await waitFor(async () => {
        const j = await second.call('jobs.get', { id: job.id });
        return j.state === 'done' || j.state === 'failed' ? j : null;
      }, 120_000);
      expect(done.error?.message ?? done.state).toBe('done');
      expect(done.attempt).toBe(2);
      const log = await second.call('train.log', { jobId: job.id });
      expect(log.map((r) => r.step)).toEqual(Array.from({ length: steps }, (_, i) => i + 1));
      expect(log.map((r) => r.loss)).toEqual(reference);
      await second.stop();
    }, 300_000);
});
