import fs from 'node:fs';
import path from 'node:path';
import { beforeAll, describe, expect, it, vi } from 'vitest';
import type { Sampling } from '../../../native/api/contract.js';
import { ingestMediaJob } from '../../../native/ingest/ingest-media.js';
import { JobRunner } from '../../../native/jobs/runner.js';
import { decodeVideo } from '../../../native/media/decode.js';
import { FrameStore, FrameWriter } from '../../../native/media/frame-store.js';
import { Project } from '../../../native/store/project.js';
import { fixturePath } from '../../helpers/fixtures.js';
import { makeOrientedJpeg, makeVideo } from '../../helpers/media.js';
import { tmpDir } from '../../helpers/tmp.js';

function setup(name: string) {
  const project = Project.create(path.join(tmpDir(), name), { appVersion: 'test' });
  const runner = new JobRunner(project, () => {});
  runner.register(ingestMediaJob);
  runner.start();
  const add = async (args: Record<string, unknown>) => {
    const job = runner.enqueue('ingest.media', args);
    await runner.idle();
    return { job: project.jobs.get(job.id), items: project.jobs.items(job.id, { limit: 1000 }).items };
  };
  return { project, runner, add };
}

describe('ingest', () => {
  const media = tmpDir();
  const clip = path.join(media, 'clip.mp4');
  beforeAll(() => {
    makeVideo(clip, { seconds: 12, fps: 25, gop: 50 });
  });

  it('records every unreadable item with its reason while the rest of the batch ingests', async () => {
    const dir = path.join(media, 'batch');
    fs.mkdirSync(path.join(dir, 'sub'), { recursive: true });
    fs.copyFileSync(clip, path.join(dir, 'good.mp4'));
    fs.writeFileSync(path.join(dir, 'truncated.mp4'), fs.readFileSync(clip).subarray(0, 60_000));
    fs.writeFileSync(path.join(dir, 'zero.mp4'), '');
    fs.writeFileSync(path.join(dir, 'notes.mp4'), 'these are my notes, not a video');
    fs.copyFileSync(fixturePath('media', 'Megamind_bugy.avi'), path.join(dir, 'Megamind_bugy.avi'));
    fs.copyFileSync(clip, path.join(dir, 'sub', 'copy of good.mp4'));
    makeOrientedJpeg(path.join(dir, 'sub', 'café ✓ 日本.jpg'), 64, 32, 1);
    // A PNG named .jpg: the extension lies, the content decides.
    makeOrientedJpeg(path.join(dir, 'sub', 'tmp.jpg'), 32, 32, 1);
    fs.renameSync(path.join(dir, 'sub', 'tmp.jpg'), path.join(dir, 'sub', 'actually-a-jpeg.png'));
    fs.symlinkSync(dir, path.join(dir, 'sub', 'loop'));

    const { project, add } = setup('robust');
    const { job, items } = await add({
      paths: [dir, path.join(media, 'missing.mp4')],
      sampling: { policy: 'fps', fps: 2 },
    });
    expect(job?.state).toBe('done');
    const byName = Object.fromEntries(items.map((i) => [path.basename(i.key), i]));
    expect(byName['good.mp4']).toMatchObject({ status: 'ok', error: null });
    expect(byName['truncated.mp4']?.error?.code).toMatch(/CORRUPT/);
    expect(byName['zero.mp4']).toMatchObject({ status: 'failed', error: { code: 'ZERO_LENGTH' } });
    expect(byName['notes.mp4']).toMatchObject({ status: 'failed', error: { code: 'NOT_MEDIA' } });
    expect(byName['missing.mp4']).toMatchObject({ status: 'failed', error: { code: 'NOT_FOUND' } });
    expect(byName.loop).toMatchObject({ status: 'skipped', error: { code: 'SYMLINK_LOOP' } });
    expect(byName['copy of good.mp4']).toMatchObject({ status: 'skipped', error: { code: 'DUPLICATE' } });
    expect(byName['café ✓ 日本.jpg']).toMatchObject({ status: 'ok' });
    expect(byName['actually-a-jpeg.png']).toMatchObject({ status: 'ok' });
    // The damaged AVI: this ffmpeg conceals its errors and decodes all 9 s; whatever it reports is kept.
    expect(byName['Megamind_bugy.avi']?.status).toBe('ok');

    const good = project.media.byPath(path.join(dir, 'good.mp4'));
    expect(good).toMatchObject({ status: 'done', kind: 'video', frameCount: 24, frameWidth: 298, frameHeight: 224 });
    const truncated = project.media.byPath(path.join(dir, 'truncated.mp4'));
    expect(truncated?.problem?.message ?? '').toMatch(/truncated|damaged|stopped early|no frame/);
    expect(project.media.list({ withProblem: true }).total).toBeGreaterThanOrEqual(3);
    project.close();
  });

  it.each<[string, Sampling, (pts: number[]) => void]>([
    ['uniform rate', { policy: 'fps', fps: 2 }, (p) => expect(p).toEqual(Array.from({ length: 24 }, (_, i) => i / 2))],
    ['every Nth frame', { policy: 'every', n: 50 }, (p) => expect(p).toEqual([0, 2, 4, 6, 8, 10])],
    ['keyframes only', { policy: 'keyframes' }, (p) => expect(p).toEqual([0, 2, 4, 6, 8, 10])],
    ['scene changes', { policy: 'scene', threshold: 0.3 }, (p) => expect(p[0]).toBe(0)],
  ])('samples by %s, with exact timestamps, and records the policy', async (_name, sampling, check) => {
    const { project, add } = setup(`sampling-${sampling.policy}`);
    await add({ paths: [clip], sampling });
    const row = project.media.byPath(clip);
    expect(row?.sampling).toEqual(sampling);
    check(project.media.frames(row?.id ?? 0).map((f) => f.pts));
    project.close();
  });

  it('is idempotent: adding the same files again changes nothing', async () => {
    const { project, add } = setup('again');
    await add({ paths: [clip] });
    const before = project.media.byPath(clip);
    const { items } = await add({ paths: [clip] });
    expect(items[0]).toMatchObject({ status: 'skipped', error: { code: 'ALREADY_ADDED' } });
    expect(project.media.byPath(clip)).toEqual(before);
    expect(project.media.list().total).toBe(1);
    project.close();
  });

  it('applies EXIF orientation to stills', async () => {
    const file = makeOrientedJpeg(path.join(media, 'rotated.jpg'), 64, 32, 6);
    const { project, add } = setup('exif');
    await add({ paths: [file], frameSize: { mode: 'short-side', size: 32 } });
    const row = project.media.byPath(file);
    expect(row).toMatchObject({ frameWidth: 32, frameHeight: 64 });
    // Stored red|blue left-to-right; rotated 90 degrees clockwise for display: red on top, blue below.
    const rgb = new FrameStore(project.cacheDir).read(row?.id ?? 0, 0, 32 * 64 * 3);
    const px = (x: number, y: number) => Array.from(rgb.subarray((y * 32 + x) * 3, (y * 32 + x) * 3 + 3));
    expect(px(16, 8)[0]).toBeGreaterThan(200);
    expect(px(16, 56)[2]).toBeGreaterThan(200);
    project.close();
  });

  it('resumes a cancelled video at the frame it reached, with no duplicate or missing frame', async () => {
    const long = makeVideo(path.join(media, 'long.mp4'), { seconds: 40, fps: 25, width: 640, height: 360, gop: 25 });
    const sampling: Sampling = { policy: 'fps', fps: 5 };
    const reference: number[] = [];
    for await (const f of decodeVideo(long, { sampling, width: 64, height: 36 })) reference.push(f.pts);

    const { project, runner } = setup('resume');
    const job = runner.enqueue('ingest.media', {
      paths: [long],
      sampling,
      frameSize: { mode: 'short-side', size: 36 },
    });
    while ((project.media.byPath(long)?.frameCount ?? 0) < 40) await new Promise((r) => setTimeout(r, 5));
    runner.cancel(job.id);
    await runner.idle();
    const partial = project.media.byPath(long)?.frameCount ?? 0;
    expect(project.jobs.get(job.id)?.state).toBe('cancelled');
    expect(partial).toBeGreaterThanOrEqual(40);
    expect(partial).toBeLessThan(reference.length);
    // The item says it stopped and waits for the resume.
    expect(project.media.byPath(long)?.status).toBe('pending');
    expect(project.media.byPath(long)?.problem?.code).toBe('STOPPED');

    runner.resume(job.id);
    await runner.idle();
    const row = project.media.byPath(long);
    expect(row?.status).toBe('done');
    const pts = project.media.frames(row?.id ?? 0, 0, 10000).map((f) => f.pts);
    expect(pts).toEqual(reference);
    expect(fs.statSync(new FrameStore(project.cacheDir).file(row?.id ?? 0)).size).toBe(reference.length * 64 * 36 * 3);
    project.close();
  });

  it('stops on a full disk with DISK_FULL, keeps the frames written before it, and resumes to the exact frames', async () => {
    const video = makeVideo(path.join(media, 'full.mp4'), { seconds: 20, fps: 25, width: 320, height: 240, gop: 25 });
    const sampling: Sampling = { policy: 'fps', fps: 5 };
    const reference: number[] = [];
    for await (const f of decodeVideo(video, { sampling, width: 48, height: 36 })) reference.push(f.pts);

    // The disk fills up after 30 frames: the frame writer gets the kernel's own ENOSPC (from /dev/full).
    const original = FrameWriter.prototype.append;
    let written = 0;
    vi.spyOn(FrameWriter.prototype, 'append').mockImplementation(function (this: FrameWriter, data: Uint8Array) {
      if (written >= 30) fs.writeFileSync('/dev/full', data);
      written++;
      original.call(this, data);
    });
    const { project, runner } = setup('disk-full');
    const job = runner.enqueue('ingest.media', {
      paths: [video],
      sampling,
      frameSize: { mode: 'short-side', size: 36 },
    });
    await runner.idle();
    vi.restoreAllMocks();
    const failed = project.jobs.get(job.id);
    expect(failed?.state).toBe('failed');
    expect(failed?.error?.code).toBe('DISK_FULL');
    expect(failed?.error?.message).toMatch(/^The disk is full\. Free some space, then resume/);
    const row = project.media.byPath(video);
    // Not taken for a damaged video: waiting for the resume with the reason, the committed frames kept.
    expect(row?.status).toBe('pending');
    expect(row?.problem?.code).toBe('DISK_FULL');
    expect(row?.frameCount).toBeGreaterThan(0);
    expect(row?.frameCount).toBeLessThanOrEqual(30);

    // Space is back: resume.
    runner.resume(job.id);
    await runner.idle();
    expect(project.jobs.get(job.id)?.state).toBe('done');
    const done = project.media.byPath(video);
    expect(done?.status).toBe('done');
    expect(done?.problem ?? null).toBeNull();
    expect(project.media.frames(done?.id ?? 0, 0, 10000).map((f) => f.pts)).toEqual(reference);
    expect(fs.statSync(new FrameStore(project.cacheDir).file(done?.id ?? 0)).size).toBe(reference.length * 48 * 36 * 3);
    project.close();
  });
});
