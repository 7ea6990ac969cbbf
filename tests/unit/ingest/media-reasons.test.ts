import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import zlib from 'node:zlib';
import { afterAll, describe, expect, it } from 'vitest';
import { frameGeometry, ingestMediaJob } from '../../../native/ingest/ingest-media.js';
import { JobRunner } from '../../../native/jobs/runner.js';
import { encodePng } from '../../../native/media/png.js';
import { Project } from '../../../native/store/project.js';
import { type EngineProcess, startEngineProcess, waitFor } from '../../helpers/engine-process.js';
import { tmpDir } from '../../helpers/tmp.js';

/** A PNG whose header says width × height, with the pixel data of a 1×1 image (enough for ffprobe to read it). */
function pngClaiming(width: number, height: number): Buffer {
  const png = Buffer.from(encodePng(new Uint8Array([128]), 1, 1, 6, 1));
  png.writeUInt32BE(width, 16);
  png.writeUInt32BE(height, 20);
  png.writeUInt32BE(zlib.crc32(png.subarray(12, 29)) >>> 0, 29);
  return png;
}

// Issue 15 item 8: each media case gets its right reason.
describe('media reasons', () => {
  const dir = tmpDir();
  const project = Project.create(path.join(tmpDir(), 'p'), { appVersion: 'test' });
  const runner = new JobRunner(project, () => {});
  runner.register(ingestMediaJob);
  runner.start();
  afterAll(async () => {
    await runner.close();
    project.close();
  });

  it('caps the long side of extreme aspect ratios instead of asking ffmpeg for a 224×4,480,000 frame', async () => {
    expect(frameGeometry(1, 20000, { mode: 'short-side', size: 224 })).toEqual({ width: 2, height: 3584 });
    expect(frameGeometry(20000, 1, { mode: 'short-side', size: 224 })).toEqual({ width: 3584, height: 2 });
    expect(frameGeometry(640, 480, { mode: 'short-side', size: 224 })).toEqual({ width: 298, height: 224 });
    const folder = path.join(dir, 'extreme');
    fs.mkdirSync(folder);
    fs.writeFileSync(path.join(folder, 'tall.png'), encodePng(new Uint8Array(20000).fill(200), 1, 20000, 6, 1));
    fs.writeFileSync(path.join(folder, 'wide.png'), encodePng(new Uint8Array(20000).fill(60), 20000, 1, 6, 1));
    const job = runner.enqueue('ingest.media', { paths: [folder] });
    await runner.idle();
    const items = project.jobs.items(job.id, { limit: 100 }).items;
    expect(items.map((i) => [path.basename(i.key), i.status, i.error?.code ?? null])).toEqual([
      ['tall.png', 'ok', null],
      ['wide.png', 'ok', null],
    ]);
  });

  it('says an image over 2^28 pixels is too large, a bad name is a bad name, and a FIFO is not a file', async () => {
    const folder = path.join(dir, 'odd');
    fs.mkdirSync(folder);
    fs.writeFileSync(path.join(folder, 'huge.png'), pngClaiming(20000, 20000));
    fs.writeFileSync(path.join(folder, 'fine.png'), encodePng(new Uint8Array(64).fill(9), 8, 8, 6, 1));
    // "bad-\xff.png": not valid UTF-8 (Linux file names are bytes)
    const badName = Buffer.concat([Buffer.from(`${folder}/bad-`), Buffer.from([0xff]), Buffer.from('.png')]);
    const linux = process.platform === 'linux';
    if (linux) fs.writeFileSync(badName, encodePng(new Uint8Array(64).fill(5), 8, 8, 6, 1));
    const fifo = spawnSync('mkfifo', [path.join(folder, 'pipe.mp4')]).status === 0;

    const job = runner.enqueue('ingest.media', { paths: [folder] });
    await runner.idle();
    const byName = new Map(
      project.jobs.items(job.id, { limit: 100 }).items.map((i) => [path.basename(i.key), i] as const),
    );
    expect(byName.get('fine.png')?.status).toBe('ok');
    expect(byName.get('huge.png')?.error).toMatchObject({
      code: 'TOO_LARGE',
      message: expect.stringMatching(
        /huge\.png is 20000×20000 pixels \(400 megapixels\), more than ffmpeg can decode \(268 megapixels\)/,
      ),
    });
    if (linux) {
      expect(byName.get('bad-\uFFFD.png')?.error).toMatchObject({
        code: 'BAD_NAME',
        message: expect.stringMatching(/its name is not valid UTF-8 text.*rename it/),
      });
    }
    if (fifo) {
      expect(byName.get('pipe.mp4')?.error).toMatchObject({
        code: 'NOT_A_FILE',
        message: expect.stringMatching(/is a named pipe \(FIFO\), not a file/),
      });
    }
  });
});

describe('an ffprobe that cannot run', () => {
  let engine: EngineProcess;
  afterAll(async () => {
    await engine?.stop();
  });

  it('fails the import job once with "ffprobe cannot run", marking no file CORRUPT', async () => {
    const dir = tmpDir();
    const fake = path.join(dir, 'ffprobe');
    fs.writeFileSync(fake, 'not a program');
    fs.chmodSync(fake, 0o644);
    engine = await startEngineProcess({ home: tmpDir(), env: { FFPROBE_PATH: fake } });
    await engine.call('project.create', { path: path.join(dir, 'p') });
    const media = path.join(dir, 'media');
    fs.mkdirSync(media);
    for (const n of ['a', 'b', 'c']) {
      fs.writeFileSync(path.join(media, `${n}.png`), encodePng(new Uint8Array(64).fill(n.charCodeAt(0)), 8, 8, 6, 1));
    }
    const job = await engine.call('library.add', { paths: [media] });
    const done = await waitFor(async () => {
      const j = await engine.call('jobs.get', { id: job.id });
      return ['failed', 'done'].includes(j.state) ? j : null;
    }, 30_000);
    expect(done.state).toBe('failed');
    expect(done.error?.message).toMatch(
      /^ffprobe cannot run: .*ffprobe: permission denied \(the file is not executable\)/,
    );
    expect(done.items.failed).toBe(0);
    const items = await engine.call('jobs.items', { id: job.id, limit: 100 });
    expect(items.items.filter((i) => i.error?.code === 'CORRUPT')).toEqual([]);
  }, 60_000);
});
