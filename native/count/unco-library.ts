/**
 * The Self-Collage library of an UnCo run (`train.unco`, `train.uncoPreview`): evenly spaced frames of the chosen
 * media, their objects found without labels by the frozen backbone's attention (collage-objects.ts) and typed by
 * k-means, the frames as backgrounds.
 */
import { FlaneurError } from '../api/errors.js';
import type { TrainUncoArgs } from '../api/unco.js';
import { ExactKnn } from '../features/knn.js';
import { FrameStore } from '../media/frame-store.js';
import type { ImportedViT } from '../models/import-vit.js';
import type { RgbLike } from '../models/preprocess.js';
import type { RuntimeSettings } from '../runtime/session.js';
import type { Project } from '../store/project.js';
import { AttentionExtractor } from '../track/attention.js';
import type { CollageLibrary } from './collage.js';
import { collageLibrary } from './collage-objects.js';

/** The input side of collages and of counting (the official img_size). */
export const UNCO_SIZE = 224;

type LibraryArgs = Pick<TrainUncoArgs, 'media' | 'libraryFrames' | 'types' | 'seed' | 'pixelObjects'>;

/** Up to `n` sampled frames of the chosen media, evenly spaced, as images. */
function libraryFrames(project: Project, a: LibraryArgs): RgbLike[] {
  const store = new FrameStore(project.cacheDir);
  const all: { media: number; idx: number; w: number; h: number }[] = [];
  for (const id of a.media ?? project.media.list({ status: 'done', limit: 100000 }).items.map((m) => m.id)) {
    const m = project.media.get(id);
    if (m?.status !== 'done' || !m.frameWidth || !m.frameHeight) continue;
    for (let i = 0; i < m.frameCount; i++) all.push({ media: m.id, idx: i, w: m.frameWidth, h: m.frameHeight });
  }
  if (all.length === 0)
    throw new FlaneurError('INVALID_ARGUMENT', 'No frames to build collages from: add images or videos first.', {
      field: 'media',
    });
  const n = Math.min(a.libraryFrames, all.length);
  return Array.from({ length: n }, (_, i) => {
    const f = all[Math.floor((i * all.length) / n)] as (typeof all)[number];
    return store.image(f.media, f.idx, f.w, f.h);
  });
}

/**
 * The collage library of a run's arguments with the backbone `vit`: `onFrames` is told how many frames are read
 * before the attention runs over them (a job's phase). Fails with a sentence when fewer than two objects are found.
 */
export async function uncoLibrary(
  project: Project,
  a: LibraryArgs,
  vit: ImportedViT,
  runtime: RuntimeSettings,
  onFrames: (frames: number) => void = () => undefined,
): Promise<{ library: CollageLibrary; frames: number }> {
  const images = libraryFrames(project, a);
  onFrames(images.length);
  const attention = await AttentionExtractor.create(vit, UNCO_SIZE, runtime);
  const knn = new ExactKnn(() => runtime);
  let library: CollageLibrary;
  try {
    library = await collageLibrary(images, (img) => attention.run(img), knn, {
      types: a.types,
      seed: a.seed,
      pixels: a.pixelObjects,
    });
  } finally {
    await attention.release();
    await knn.release();
  }
  if (library.objects.length < 2)
    throw new FlaneurError(
      'INVALID_ARGUMENT',
      `Only ${library.objects.length} object${library.objects.length === 1 ? '' : 's'} found in ${images.length} frames: collages need more. Add frames that show objects, or raise the library frames.`,
      { field: 'media' },
    );
  return { library, frames: images.length };
}
