import fs from 'node:fs';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { decodeVideo } from '../../../native/media/decode.js';
import { Project } from '../../../native/store/project.js';
import { type EngineProcess, startEngineProcess, waitFor } from '../../helpers/engine-process.js';
import { makeVideo } from '../../helpers/media.js';
import { tmpDir, writeFiles } from '../../helpers/tmp.js';

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
  });
});
