/**
 * The `features.fungi` job: FUNGI vectors for the catalog's frames under a run keyed by provenance (model SHA-256,
 * size, objectives, settings, seed, code version). The SimCLR negative batch is drawn (seeded) from the frames and
 * stored with the run before extraction, so a resumed or extended run uses the same batch; vectors are stored per
 * frame (f16) and committed per batch; at the end PCA (to `pcaDim`) is fitted on the run's vectors.
 */
import type { z } from 'zod';
import { FungiArgs } from '../api/contract.js';
import { loadRegisteredModel, toF16 } from '../features/extract.js';
import { f16RowsToF32 } from '../features/knn.js';
import { fitPca, packPca } from '../features/pca.js';
import type { JobHandler } from '../jobs/types.js';
import { FrameStore } from '../media/frame-store.js';
import type { Project } from '../store/project.js';
import { chooseSeeded, FungiExtractor } from './extractor.js';
import { FUNGI_DEFAULTS, FUNGI_OBJECTIVES, type FungiSettings } from './graph.js';
import { frameSeed } from './views.js';

export const FUNGI_CODE_VERSION = 'fungi-1';
/** Vectors the PCA is fitted on at most (a seeded sample beyond that). */
const PCA_SAMPLE = 20000;

type Args = z.output<typeof FungiArgs>;

export function fungiSettings(a: Pick<Args, 'kl' | 'dino' | 'simclr'>): FungiSettings {
  return {
    kl: { ...FUNGI_DEFAULTS.kl, ...a.kl },
    dino: { ...FUNGI_DEFAULTS.dino, ...a.dino },
    simclr: { ...FUNGI_DEFAULTS.simclr, ...a.simclr },
  };
}

/** Fits and stores the run's PCA on (a seeded sample of) its vectors. */
export async function fitRunPca(project: Project, runId: number, pcaDim: number, seed: number): Promise<void> {
  const run = project.fungi.run(runId);
  if (!run) return;
  let rows = project.fungi.all(runId);
  if (rows.length < 2) return;
  if (rows.length > PCA_SAMPLE) rows = chooseSeeded(rows, PCA_SAMPLE, seed + 5);
  const data = new Float32Array(rows.length * run.dim);
  rows.forEach((r, i) => {
    data.set(f16RowsToF32(r.vec), i * run.dim);
  });
  const k = Math.min(pcaDim, run.dim, rows.length);
  const pca = await fitPca(data, run.dim, k);
  project.fungi.setPca(runId, packPca(pca), pca.k, rows.length);
}

export const fungiJob: JobHandler<Args, { mediaId: number }> = {
  kind: 'features.fungi',
  args: FungiArgs,
  title: (a) => `FUNGI features (${a.objectives.join(', ')}) with model #${a.modelId} at ${a.size} px`,
  async run(ctx) {
    const { project, args: a } = ctx;
    const { model, sha256 } = loadRegisteredModel(project, a.modelId);
    const settings = fungiSettings(a);
    const objectives = FUNGI_OBJECTIVES.filter((o) => a.objectives.includes(o));
    const extractor = await FungiExtractor.create(model, {
      size: a.size,
      objectives,
      settings,
      seed: a.seed,
      viewBudget: a.viewBudget,
      runtime: ctx.runtime,
    });
    const store = new FrameStore(project.cacheDir);
    try {
      const run = project.fungi.ensureRun({
        modelId: a.modelId,
        modelSha256: sha256,
        settings: { size: a.size, objectives, seed: a.seed, ...settings },
        dim: extractor.dim,
        codeVersion: FUNGI_CODE_VERSION,
      });
      const media = (a.media ?? project.media.list({ status: 'done', limit: 100000 }).items.map((m) => m.id))
        .map((id) => project.media.get(id))
        .filter((m): m is NonNullable<typeof m> => Boolean(m && m.status === 'done' && m.frameWidth && m.frameHeight));
      if (extractor.needsNegatives) {
        let latents = project.fungi.negatives(run.id);
        if (!latents) {
          ctx.phase('negatives', { total: settings.simclr.negatives, unit: 'frames' });
          const frames = media.flatMap((m) => Array.from({ length: m.frameCount }, (_, f) => ({ m, f })));
          const chosen = chooseSeeded(frames, settings.simclr.negatives, a.seed + 3);
          latents = await extractor.computeNegatives(
            chosen.map((c) => store.image(c.m.id, c.f, c.m.frameWidth as number, c.m.frameHeight as number)),
          );
          project.fungi.setNegatives(
            run.id,
            chosen.map((c) => ({ mediaId: c.m.id, frameIdx: c.f })),
            latents,
          );
        }
        extractor.setNegatives(latents);
      }
      const todo = media.map((m) => ({ m, done: project.fungi.doneFrames(run.id, m.id) }));
      const total = todo.reduce((acc, t) => acc + t.m.frameCount, 0);
      let done = todo.reduce((acc, t) => acc + t.done.size, 0);
      ctx.phase(`gradients on ${extractor.provider}`, { total, unit: 'frames', done });
      const batch = 8;
      for (const { m, done: have } of todo) {
        const frames = [...Array(m.frameCount).keys()].filter((i) => !have.has(i));
        for (let i = 0; i < frames.length; i += batch) {
          ctx.throwIfAborted();
          const idx = frames.slice(i, i + batch);
          const vecs = await extractor.run(
            idx.map((f) => ({
              img: store.image(m.id, f, m.frameWidth as number, m.frameHeight as number),
              seed: frameSeed(a.seed, m.id, f),
            })),
          );
          project.fungi.putMany(
            run.id,
            vecs.map((v, k) => ({ mediaId: m.id, frameIdx: idx[k] as number, vec: toF16(v) })),
          );
          done += idx.length;
          ctx.progress(done, total, { run: run.id });
        }
        ctx.commit([{ key: String(m.id), status: 'ok', result: { runId: run.id, frames: m.frameCount } }], {
          mediaId: m.id,
        });
      }
      ctx.phase('pca', { total: 1, unit: 'fits' });
      await fitRunPca(project, run.id, a.pcaDim, a.seed);
      ctx.progress(1, 1);
    } finally {
      await extractor.release();
    }
  },
};
