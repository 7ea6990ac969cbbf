/**
 * `flaneur count` with negative exemplars and a region of interest, on a scene with look-alike distractors
 * (makeDistractorCountScene, a tuning seed): a `--negative` box on each kind of look-alike lowers the count, `--roi`
 * counts only inside the polygon (points in the source's pixels), and a malformed region is a usage error.
 */
import fs from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { polygon } from '../../../native/cli/commands/count.js';
import { DEFAULT_MODEL_DIR } from '../../../native/engine/engine.js';
import { encodePng } from '../../../native/media/png.js';
import { makeDistractorCountScene } from '../../../tools/synth/count.js';
import { runCli } from '../../helpers/cli.js';
import { tmpDir } from '../../helpers/tmp.js';

type Counted = { count: number; points: { x: number; y: number }[] };

describe('flaneur count --negative and --roi', () => {
  it('reads a region as x,y pairs in typed pixels and scales it to the stored frame', () => {
    expect(polygon('0,0,10,0,10,20', { sx: 0.5, sy: 0.25 })).toEqual([
      [0, 0],
      [5, 0],
      [5, 5],
    ]);
    expect(polygon(undefined, { sx: 1, sy: 1 })).toBeUndefined();
    expect(() => polygon('0,0,10,0', { sx: 1, sy: 1 })).toThrow(/at least 3/);
    expect(() => polygon('0,0,10,0,10', { sx: 1, sy: 1 })).toThrow(/x,y pairs/);
  });

  it('counts fewer with negative boxes on the look-alikes, and only inside the region', {
    timeout: 900_000,
  }, async () => {
    const work = tmpDir();
    const scene = makeDistractorCountScene(6006);
    const file = path.join(work, 'lookalikes.png');
    fs.writeFileSync(file, encodePng(scene.rgb, scene.width, scene.height));
    const p = ['--project', path.join(work, 'p')];
    expect((await runCli(['project', 'create', path.join(work, 'p')])).code).toBe(0);
    const imported = await runCli([
      'model',
      'import',
      path.join(DEFAULT_MODEL_DIR, 'flaneur-vit-ti16-dora-vtest.safetensors'),
      ...p,
    ]);
    expect(imported.code, imported.stderr).toBe(0);
    const count = async (...extra: string[]) => {
      const r = await runCli(['count', file, '--box', scene.exemplar.join(','), ...extra, ...p, '--json']);
      expect(r.code, r.stderr).toBe(0);
      return r.json<Counted>();
    };
    const plain = await count();
    const negatives = scene.kinds.flatMap((k) => ['--negative', k.box.join(',')]);
    const withNegatives = await count(...negatives);
    expect(withNegatives.count).toBeLessThan(plain.count);
    const half = scene.width / 2;
    const inside = await count(...negatives, '--roi', `0,0,${half},0,${half},${scene.height},0,${scene.height}`);
    expect(inside.count).toBeLessThanOrEqual(withNegatives.count);
    for (const q of inside.points) expect(q.x).toBeLessThanOrEqual(half + 1);

    const bad = await runCli(['count', file, '--box', scene.exemplar.join(','), '--roi', '1,2,3', ...p]);
    expect(bad.code).not.toBe(0);
    expect(bad.stderr).toMatch(/--roi takes the corners of a polygon/);
    const autoNeg = await runCli(['count', file, '--auto', '--negative', '1,1,5,5', ...p]);
    expect(autoNeg.stderr).toMatch(/--negative goes with --box/);
  });
});
