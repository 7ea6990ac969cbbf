import fs from 'node:fs';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { dispatchEngine } from '../../helpers/dispatch.js';
import { tmpDir } from '../../helpers/tmp.js';

describe('a path that does not exist', () => {
  const work = tmpDir();
  const { engine, d, call } = dispatchEngine();
  afterAll(() => engine.close());

  it('is refused by library.add before any job starts, naming the path and the field', async () => {
    await call('project.create', { path: path.join(work, 'p') });
    const missing = path.join(work, 'no-such-folder');
    const r = await d.dispatch('library.add', { paths: [missing] });
    expect(r.ok).toBe(false);
    if (r.ok) return;
    expect(r.error).toMatchObject({ code: 'NOT_FOUND', field: 'paths' });
    expect(r.error.message).toContain(missing);
    expect(r.error.message).toMatch(/Check the path/);
    expect(await call('jobs.list', {})).toEqual([]);
  });

  it('is refused with the others when only some of the given paths exist', async () => {
    const real = path.join(work, 'photos');
    fs.mkdirSync(real);
    const r = await d.dispatch('library.add', { paths: [real, path.join(work, 'gone.mp4')] });
    expect(r.ok || r.error.message).toMatch(/gone\.mp4/);
    expect(await call('jobs.list', {})).toEqual([]);
  });

  it('is refused by ingest.hashFolder on its root field', async () => {
    const r = await d.dispatch('ingest.hashFolder', { root: path.join(work, 'nowhere') });
    expect(r.ok ? null : r.error).toMatchObject({ code: 'NOT_FOUND', field: 'root' });
  });
});
