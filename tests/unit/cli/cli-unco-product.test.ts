/**
 * The UnCo product in the CLI: `flaneur train --objective unco --preview DIR` writes a few Self-Collages of the
 * settings (PNGs and counts.json, N equal to each density target's sum; the same seed, the same files) without
 * training, and `flaneur count video ITEM --counter JOB` follows the count.uncoVideo job to a CSV of every frame.
 */
import fs from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { makeCountScene } from '../../../tools/synth/count.js';
import { projectCli, runCli } from '../../helpers/cli.js';
import { videoFromImages } from '../../helpers/media.js';
import { writeTinyViT } from '../../helpers/models.js';
import { tmpDir } from '../../helpers/tmp.js';
import { writeCountScenes } from '../../helpers/unco.js';

interface PreviewJson {
  seed: number;
  objects: number;
  collages: { collage: string; density: string; count: number; targetSum: number }[];
}

describe('flaneur train --objective unco --preview, count video --counter', { timeout: 600_000 }, () => {
  it('previews collages without training, then counts every frame of a video with a trained counter', async () => {
    const work = tmpDir();
    const project = path.join(work, 'p');
    const cli = projectCli(project);
    const scenes = Array.from({ length: 6 }, (_, i) => makeCountScene(90 + i, { size: 160 }));
    const files = writeCountScenes(work, [90, 91, 92]).map((x) => x.file);
    expect((await runCli(['project', 'create', project])).code).toBe(0);
    await cli('add', ...files);
    await cli('model', 'import', writeTinyViT(8));

    const preview = async (dir: string) => {
      await cli('train', '--objective', 'unco', '--preview', dir, '--seed', '7', '--collages', '2');
      return JSON.parse(fs.readFileSync(path.join(dir, 'counts.json'), 'utf8')) as PreviewJson;
    };
    const a = await preview(path.join(work, 'preview-a'));
    expect(a.seed).toBe(7);
    expect(a.collages).toHaveLength(2);
    for (const k of a.collages) {
      expect(k.targetSum).toBeCloseTo(k.count, 3);
      const png = fs.readFileSync(path.join(work, 'preview-a', k.collage));
      expect([png.readUInt32BE(16), png.readUInt32BE(20)]).toEqual([224, 224]);
      expect(fs.existsSync(path.join(work, 'preview-a', k.density))).toBe(true);
    }
    const b = await preview(path.join(work, 'preview-b'));
    expect(b).toEqual(a);
    expect(fs.readFileSync(path.join(work, 'preview-b', 'collage-1.png'))).toEqual(
      fs.readFileSync(path.join(work, 'preview-a', 'collage-1.png')),
    );
    // No training happened: no job besides the ingest and the model import.
    expect(((await cli('jobs', 'list')) as unknown as { kind: string }[]).some((j) => j.kind === 'train.unco')).toBe(
      false,
    );

    const trained = (await cli('train', '--objective', 'unco', '--steps', '1', '--batch', '2')) as { id: number };
    const video = videoFromImages(path.join(work, 'scenes.mp4'), scenes);
    await cli('add', video, '--every', '1');
    const out = path.join(work, 'counts.csv');
    // Without a counter, the similarity method needs its exemplar.
    const unboxed = await runCli(['count', 'video', video, '--out', out, '--project', project]);
    expect(unboxed.code).toBe(2);
    expect(unboxed.stderr).toMatch(/count video: missing --box/);
    const counted = (await cli(
      'count',
      'video',
      video,
      '--counter',
      String(trained.id),
      '--box',
      (scenes[0]?.exemplar ?? []).join(','),
      '--out',
      out,
    )) as { job: { kind: string; state: string }; frames: number };
    expect(counted.job).toMatchObject({ kind: 'count.uncoVideo', state: 'done' });
    expect(counted.frames).toBe(scenes.length);
    const lines = fs.readFileSync(out, 'utf8').trim().split('\n');
    expect(lines[0]).toBe('media_id,frame,time_s,count');
    expect(lines.slice(1).map((l) => Number(l.split(',')[1]))).toEqual([1, 2, 3, 4, 5, 6]);
  });
});
