/** A tiny UnCo setting for tests: synthetic counting scenes as PNG files and the collage arguments that fit them. */
import fs from 'node:fs';
import path from 'node:path';
import { encodePng } from '../../native/media/png.js';
import { makeCountScene } from '../../tools/synth/count.js';

/** Scenes of `seeds` (tools/synth/count.ts, `size` px) written as scene-1.png, scene-2.png… under `dir`. */
export function writeCountScenes(dir: string, seeds: readonly number[], size = 160) {
  return seeds.map((seed, i) => {
    const scene = makeCountScene(seed, { size });
    const file = path.join(dir, `scene-${i + 1}.png`);
    fs.writeFileSync(file, encodePng(scene.rgb, scene.width, scene.height));
    return { file, scene };
  });
}

/** Collages that four such scenes can fill: a small library, few types, up to 12 targets among 14 objects. */
export const UNCO_TINY_COLLAGES = {
  libraryFrames: 4,
  types: 3,
  maxCount: 12,
  total: 14,
  pasteSize: [14, 40] as [number, number],
  seed: 3,
};
