import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { dispatchEngine } from '../../helpers/dispatch.js';
import { makeImage } from '../../helpers/media.js';
import { writeInitViT } from '../../helpers/models.js';
import { tmpDir } from '../../helpers/tmp.js';

/** What the views need to say a result is out of date after media was added or removed. */
describe('out-of-date results', () => {
  const work = tmpDir();
  const { engine, call } = dispatchEngine();
  afterAll(() => engine.close());
  const idle = () => engine.requireProject().runner.idle();
  const image = (name: string, source: string) => makeImage(path.join(work, name), source);

  it('features, a map and a bank report what changed since they were made, and updating catches up', async () => {
    await call('project.create', { path: path.join(work, 'p') });
    await call('library.add', {
      paths: [
        image('a.png', 'testsrc2=size=64x48'),
        image('b.png', 'mandelbrot=size=64x48'),
        image('c.png', 'smptebars=size=64x48'),
      ],
    });
    await idle();
    const model = await call('models.import', { path: writeInitViT(path.join(work, 'vit.safetensors')) });
    await call('features.extract', { modelId: model.id, size: 32 });
    await idle();
    const [run] = await call('features.runs', {});
    expect(run).toMatchObject({ frames: 3, libraryFrames: 3 });
    const mapJob = await call('map.build', { runId: run?.id ?? 0, method: 'pca' });
    await idle();
    // A finished map job reads as complete (not "0 / 1 steps").
    const { progress } = await call('jobs.get', { id: mapJob.id });
    expect(progress.total).not.toBeNull();
    expect(progress.done).toBe(progress.total);
    const items = (await call('library.list', {})).items;
    const a = items.find((m) => m.name === 'a.png');
    const bank = await call('segment.clusterBank', {
      runId: run?.id ?? 0,
      name: 'clusters',
      clusters: 2,
      frames: [{ mediaId: a?.id ?? 0, frameIdx: 0 }],
    });
    expect((await call('map.list', {}))[0]).toMatchObject({ points: 3, sourceFrames: 3 });
    expect((await call('segment.banks', {})).find((b) => b.id === bank.id)?.missingMedia).toBe(0);

    // A new image: the features miss a frame; the map still matches its source until the features catch up.
    await call('library.add', { paths: [image('d.png', 'rgbtestsrc=size=64x48')] });
    await idle();
    expect((await call('features.runs', {}))[0]).toMatchObject({ frames: 3, libraryFrames: 4 });
    await call('features.extract', { modelId: model.id, size: 32 });
    await idle();
    expect((await call('features.runs', {}))[0]).toMatchObject({ frames: 4, libraryFrames: 4 });
    expect((await call('map.list', {}))[0]).toMatchObject({ points: 3, sourceFrames: 4 });

    // An image removed: the bank built from it says so.
    await call('library.remove', { id: a?.id ?? 0 });
    expect((await call('features.runs', {}))[0]).toMatchObject({ frames: 3, libraryFrames: 3 });
    expect((await call('segment.banks', {})).find((b) => b.id === bank.id)?.missingMedia).toBe(1);
  });
});
