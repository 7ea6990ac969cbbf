/**
 * `flaneur train --objective unco` trains a counter from a few images (the project's default model as the frozen
 * backbone) and `flaneur count IMAGE --counter JOB` counts with it: the density map's sum; `train export --objective
 * unco` writes the folder for torchrun (collages, backbone, program; tests/unit/count/unco-export.test.ts runs it).
 */
import fs from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { encodePng } from '../../../native/media/png.js';
import { makeCountScene } from '../../../tools/synth/count.js';
import { projectCli, runCli } from '../../helpers/cli.js';
import { writeTinyViT } from '../../helpers/models.js';
import { tmpDir } from '../../helpers/tmp.js';

describe('flaneur train --objective unco, count --counter', { timeout: 600_000 }, () => {
  it('trains a counter on the default model and counts an image with it', async () => {
    const work = tmpDir();
    const project = path.join(work, 'p');
    const cli = projectCli(project);
    const files = [1, 2, 3].map((i) => {
      const scene = makeCountScene(90 + i, { size: 160 });
      const file = path.join(work, `scene-${i}.png`);
      fs.writeFileSync(file, encodePng(scene.rgb, scene.width, scene.height));
      return { file, scene };
    });
    expect((await runCli(['project', 'create', project])).code).toBe(0);
    await cli('add', ...files.map((f) => f.file));
    await cli('model', 'import', writeTinyViT(8));
    const trained = await cli('train', '--objective', 'unco', '--steps', '2', '--batch', '2');
    expect(trained).toMatchObject({ state: 'done', counter: { shots: 1, steps: 2 } });
    const job = (trained as { id: number }).id;
    const first = files[0] as (typeof files)[number];
    const counted = (await cli(
      'count',
      first.file,
      '--counter',
      String(job),
      '--box',
      first.scene.exemplar.join(','),
    )) as {
      method: string;
      count: number;
      density: number[];
      side: number;
    };
    expect(counted.method).toBe('unco');
    expect(counted.density).toHaveLength(counted.side * counted.side);
    expect(counted.count).toBeCloseTo(
      Math.max(
        0,
        counted.density.reduce((a, v) => a + v, 0),
      ),
      3,
    );
    const exported = await runCli([
      'train',
      'export',
      path.join(work, 'out'),
      '--objective',
      'unco',
      '--pool',
      '4',
      '--project',
      project,
    ]);
    expect(exported.stderr).not.toMatch(/^error/m);
    expect(exported.code).toBe(0);
    expect(exported.stdout).toMatch(/torchrun --standalone --nproc_per_node=N train_unco\.py --config unco\.json/);
    for (const f of ['unco.json', 'train_unco.py', 'backbone.safetensors', 'collages/train.rgb'])
      expect(fs.existsSync(path.join(work, 'out', f))).toBe(true);
  });
});
