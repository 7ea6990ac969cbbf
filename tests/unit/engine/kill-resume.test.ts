import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { Project } from '../../../native/store/project.js';
import { type EngineProcess, startEngineProcess, waitFor } from '../../helpers/engine-process.js';
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
});
