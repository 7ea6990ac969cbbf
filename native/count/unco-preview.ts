/**
 * `train.uncoPreview`: what an UnCo counter learns from, before any training — the collage library of a run's
 * settings (unco-library.ts) and a few Self-Collages drawn from a generator seeded with the run's seed, each with
 * its N and its density target. No job: the engine runs it in its task worker (engine/command-tasks.ts).
 */
import type { UncoPreviewArgs } from '../api/unco.js';
import { Rng } from '../base/rng.js';
import { encodePng } from '../media/png.js';
import type { RuntimeSettings } from '../runtime/session.js';
import type { Project } from '../store/project.js';
import { buildCollage, type Collage } from './collage.js';
import { densityImage, uncoBackbone, uncoCollageOptions } from './train-unco.js';
import { UNCO_SIZE, uncoLibrary } from './unco-library.js';

const dataUrl = (rgb: Uint8Array, size: number) =>
  `data:image/png;base64,${Buffer.from(encodePng(rgb, size, size)).toString('base64')}`;

/** A collage's N, the sum of its density target in objects, and its pictures. */
export function previewCollage(k: Collage) {
  let sum = 0;
  for (const v of k.density) sum += v;
  return {
    png: dataUrl(k.rgb, k.size),
    densityPng: dataUrl(densityImage(k.density, k.size, k.size), k.size),
    count: k.count,
    targetSum: sum / k.scaling,
    distractors: k.objects.filter((o) => !o.target).length,
    exemplars: k.exemplars.map(([x0, y0, x1, y1]): [number, number, number, number] => [x0, y0, x1 - x0, y1 - y0]),
    overlapping: k.overlapping,
  };
}

/** The library of the run's settings and `collages` Self-Collages from `new Rng(seed)`: same settings, same preview. */
export async function previewCollages(project: Project, a: UncoPreviewArgs, runtime: RuntimeSettings) {
  const model = uncoBackbone(project, a.model);
  const { library, frames } = await uncoLibrary(project, a, model.vit, runtime);
  const rng = new Rng(a.seed);
  const options = uncoCollageOptions(a);
  const collages = Array.from({ length: a.collages }, () => previewCollage(buildCollage(library, options, rng)));
  return {
    size: UNCO_SIZE,
    frames,
    objects: library.objects.length,
    types: new Set(library.objects.map((o) => o.type)).size,
    collages,
  };
}
