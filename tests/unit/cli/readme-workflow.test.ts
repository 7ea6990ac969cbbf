/**
 * The README's scripted workflow (the shell block after `<!-- cli-workflow -->`), run verbatim by bash with a
 * `flaneur` on the PATH (this checkout's CLI from source) and HOME set to a folder holding the data it names:
 * the synthetic tour as ~/data/walks/walk.mp4, a ViT-Ti at its initialisation as ~/models/vit.safetensors, two
 * example masks and two truth masks from the tour's ground truth.
 */
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { readNpy } from '../../helpers/cli.js';
import { ROOT } from '../../helpers/engine-process.js';
import { fixturePath } from '../../helpers/fixtures.js';
import { writeInitViT } from '../../helpers/models.js';
import { tmpDir } from '../../helpers/tmp.js';

/** The shell block after the marker, without the list indentation. */
function workflowBlock(): string {
  const readme = fs.readFileSync(path.join(ROOT, 'README.md'), 'utf8');
  const at = readme.indexOf('<!-- cli-workflow -->');
  expect(at).toBeGreaterThan(0);
  const lines = readme.slice(at).split('\n').slice(1);
  expect(lines[0]?.trim()).toBe('```sh');
  const end = lines.findIndex((l, i) => i > 0 && l.trim() === '```');
  return lines
    .slice(1, end)
    .map((l) => l.replace(/^ {2}/, ''))
    .join('\n');
}

describe("the README's CLI workflow", () => {
  it('runs verbatim: ingest, features, bank from masks, segment everything with scores, export', () => {
    const home = tmpDir();
    const mask = (n: number) => fixturePath('synthetic', 'masks', `${String(n).padStart(4, '0')}.png`);
    fs.mkdirSync(path.join(home, 'data', 'walks'), { recursive: true });
    fs.copyFileSync(fixturePath('synthetic', 'tour.mp4'), path.join(home, 'data', 'walks', 'walk.mp4'));
    fs.mkdirSync(path.join(home, 'models'));
    writeInitViT(path.join(home, 'models', 'vit.safetensors'));
    // Sampled at 1 fps, frame N of walk.mp4 is source frame 10 (N - 1), which has a ground-truth mask.
    const examples = path.join(home, 'data', 'examples');
    fs.mkdirSync(examples);
    fs.copyFileSync(mask(40), path.join(examples, 'walk.mp4@5.png'));
    fs.copyFileSync(mask(120), path.join(examples, 'walk.mp4@13.png'));
    fs.writeFileSync(path.join(examples, 'classes.txt'), 'background\ndisc\nbox\nkite\n');
    const truth = path.join(home, 'data', 'truth');
    fs.mkdirSync(truth);
    fs.copyFileSync(mask(80), path.join(truth, 'walk.mp4@9.png'));
    fs.copyFileSync(mask(160), path.join(truth, 'walk.mp4@17.png'));
    const bin = path.join(home, 'bin');
    fs.mkdirSync(bin);
    fs.writeFileSync(
      path.join(bin, 'flaneur'),
      `#!/bin/sh\nexec "${process.execPath}" --import tsx "${path.join(ROOT, 'native', 'cli-main.ts')}" "$@"\n`,
      { mode: 0o755 },
    );
    const env: NodeJS.ProcessEnv = { ...process.env, HOME: home, PATH: `${bin}:${process.env.PATH ?? ''}` };
    delete env.FLANEUR_HOME;
    delete env.FLANEUR_PROJECT;

    const r = spawnSync('bash', ['-euo', 'pipefail', '-c', workflowBlock()], { cwd: ROOT, env, encoding: 'utf8' });
    expect(r.stderr).not.toMatch(/flaneur: /);
    expect(r.status).toBe(0);
    // Jobs report progress on stderr; stdout holds the results.
    expect(r.stderr).toMatch(/segmenting \d+\/20 frames/);
    expect(r.stdout).not.toMatch(/segmenting/);

    // Every one of the 20 frames segmented at the source's 320x240, with COCO, and the two truth frames scored.
    const masks = fs.readdirSync(path.join(home, 'out', 'segments', 'masks'));
    expect(masks).toHaveLength(20);
    const coco = JSON.parse(fs.readFileSync(path.join(home, 'out', 'segments', 'coco.json'), 'utf8')) as {
      images: { width: number; height: number }[];
    };
    expect(coco.images).toHaveLength(20);
    expect(coco.images[0]).toMatchObject({ width: 320, height: 240 });
    expect(r.stdout).toMatch(/IoU over 2 frame\(s\) with truth/);
    expect(r.stdout).toMatch(/mIoU\s+0\.\d{4}/);
    // Features of every frame with a manifest; the patch grid follows the 298x224 frames' aspect.
    const manifest = JSON.parse(fs.readFileSync(path.join(home, 'out', 'features', 'manifest.json'), 'utf8')) as {
      frames: { files: string[]; grid: [number, number] }[];
    };
    expect(manifest.frames).toHaveLength(20);
    const first = manifest.frames[0];
    const patches = readNpy(path.join(home, 'out', 'features', first?.files[1] ?? ''));
    expect(patches.shape).toEqual([...(first?.grid ?? []), 192]);
    expect(first?.grid[0]).toBe(14);
  }, 300_000);
});
