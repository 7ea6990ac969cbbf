/**
 * `mae_unco` of `npm run bench -- count`: UnCo trained by the app's own objective (native/count/train-unco.ts
 * `UncoObjective`, the `train.unco` job's defaults unless an option changes them) for a fixed budget on Self-Collages
 * built from a synthetic library (tools/synth/count.ts scenes of the tuning seeds: their objects found by the frozen
 * encoder's attention, typed by k-means, the scenes as backgrounds), then counting the held-out scenes (seeds never
 * used for building or tuning, UNCO_HELDOUT_SEEDS) with their one exemplar box (native/count/unco-counter.ts, as
 * Count does); `mae_mean_count`: always answering the counted scenes' mean count. `--unco-eval tuning` counts the
 * tuning scenes instead (what a change may be tuned on). Backbone: the bundled ViT-Ti/16 (frozen), 224 px
 * (14 x 14 patches); the small decoder (embed 64, 4 heads, 2 blocks, 32 channels, density at 28 x 28).
 * Measured figures: bench/results/count-unco.json and bench/README.md.
 */

import { type TrainUncoArgs, TrainUncoArgs as TrainUncoSchema } from '../native/api/unco.js';
import { collageLibrary } from '../native/count/collage-objects.js';
import { UNCO_SIZE, UncoObjective } from '../native/count/train-unco.js';
import { UncoCounter } from '../native/count/unco-counter.js';
import { FeatureExtractor } from '../native/features/extract.js';
import { ExactKnn } from '../native/features/knn.js';
import type { ImportedViT } from '../native/models/import-vit.js';
import { AttentionExtractor } from '../native/track/attention.js';
import { runGenerator } from '../native/train/trainer.js';
import { makeCountScene } from '../tools/synth/count.js';
import { UNCO_HELDOUT_SEEDS, UNCO_TUNING_SEEDS } from './unco-seeds.js';

export interface UncoBenchOptions {
  /** `train.unco` arguments (steps, lr, batch, …); the job's defaults otherwise. */
  args: Partial<TrainUncoArgs>;
  heldOut: number;
  /** Count the tuning scenes instead of the held-out ones. */
  evalOn?: 'heldout' | 'tuning';
}

export async function benchUnco(model: ImportedViT, o: UncoBenchOptions): Promise<Record<string, unknown>> {
  const t0 = performance.now();
  const cpu0 = process.cpuUsage();
  const a = TrainUncoSchema.parse(o.args);
  const runtime = { provider: 'cpu' as const, threads: 2 };
  const scenes = (seeds: readonly number[]) =>
    seeds.map((s) => {
      const sc = makeCountScene(s);
      return { scene: sc, img: { width: sc.width, height: sc.height, data: sc.rgb } };
    });
  const attention = await AttentionExtractor.create(model, UNCO_SIZE, runtime);
  const knn = new ExactKnn(() => runtime);
  const library = await collageLibrary(
    scenes(UNCO_TUNING_SEEDS).map((s) => s.img),
    (img) => attention.run(img),
    knn,
    { types: a.types, seed: a.seed, pixels: a.pixelObjects },
  );
  await attention.release();
  await knn.release();
  const types = new Set(library.objects.map((x) => x.type)).size;
  console.error(
    `count: UnCo library: ${library.objects.length} objects in ${types} types from ${UNCO_TUNING_SEEDS.length} synthetic scenes`,
  );
  const info = { id: 0, name: 'bundled ViT-Ti/16', sha256: '', vit: model };
  const objective = new UncoObjective(a, info, library, UNCO_TUNING_SEEDS.length, 0);
  objective.onPoolProgress = (done) => {
    if (done % 128 === 0 || done === a.pool) console.error(`count: UnCo collage pool: ${done}/${a.pool}`);
  };
  objective.build();
  const tOpen = performance.now();
  const sessions = await objective.open(runtime);
  // Drawing and encoding the held-out collages and the pool (when there is one).
  const openSeconds = (performance.now() - tOpen) / 1000;
  const rng = runGenerator(a.seed);
  const state = objective.initialState(rng);
  const losses: number[] = [];
  const curve: [number, number][] = [];
  try {
    while (state.step < a.steps) {
      const batch = await objective.draw(rng, state, sessions);
      const m = await objective.step(sessions, state, batch);
      losses.push(m.loss);
      if (state.step === 1 || state.step % a.evalEvery === 0 || state.step === a.steps)
        curve.push([state.step, Number((m.progress.heldout_mae as number).toFixed(2))]);
      if (state.step % 25 === 0 || state.step === a.steps)
        console.error(
          `count: UnCo step ${state.step}/${a.steps}: loss ${m.loss.toFixed(4)}, held-out collage MAE ${m.monitor.toFixed(2)} (mean ${(m.progress.heldout_mean_mae as number).toFixed(2)})`,
        );
    }
  } finally {
    await sessions.release();
  }
  const trainSeconds = (performance.now() - t0) / 1000;
  // The scenes counted as Count counts a frame: the whole image squashed to the square input, the exemplar box.
  const counter = await UncoCounter.create({ jobId: 0, name: 'bench' }, objective.config, state.params, runtime);
  const extractor = await FeatureExtractor.create(model, UNCO_SIZE, runtime, 'square');
  const truths: number[] = [];
  const counts: number[] = [];
  const evalSeeds = o.evalOn === 'tuning' ? UNCO_TUNING_SEEDS : UNCO_HELDOUT_SEEDS.slice(0, o.heldOut);
  try {
    for (const { scene, img } of scenes(evalSeeds)) {
      const r = await counter.count(extractor, img, [scene.exemplar]);
      truths.push(scene.count);
      counts.push(r.count);
    }
  } finally {
    await counter.release();
    await extractor.release();
  }
  const mean = truths.reduce((x, y) => x + y, 0) / truths.length;
  const mae = (pred: (i: number) => number) =>
    Number((truths.reduce((s, t, i) => s + Math.abs(pred(i) - t), 0) / truths.length).toFixed(2));
  const tail = losses.slice(-20);
  const c = objective.config;
  const key = o.evalOn === 'tuning' ? 'tuning' : 'unco';
  return {
    [`mae_${key}`]: mae((i) => counts[i] as number),
    [`mae_${key}_mean_count`]: mae(() => mean),
    ...(o.evalOn === 'tuning' ? {} : { mae_mean_count: mae(() => mean) }),
    unco: {
      counted: o.evalOn === 'tuning' ? 'tuning scenes (the library)' : 'held-out scenes',
      budget: {
        steps: a.steps,
        batch: a.batch,
        collages: a.steps * a.batch,
        distinct_collages: a.pool > 0 ? a.pool : a.steps * a.batch,
        pool: a.pool,
        lr: a.lr,
        warmup: a.warmup,
        schedule: 'linear warm-up, cosine to 0',
        wd: a.weightDecay,
        optimizer: 'AdamW',
      },
      backbone: `${model.config.patchSize}px patches, dim ${model.config.dim}, frozen`,
      decoder: { embed: c.embed, depth: c.depth, heads: c.heads, channels: c.upsamplingDim, density: c.grid * c.patch },
      collage: {
        maxCount: a.maxCount,
        total: a.total,
        pasteSize: a.pasteSize,
        rotation: a.rotation,
        scaling: a.scaling,
        pixel_objects: a.pixelObjects,
        library_scenes: UNCO_TUNING_SEEDS.length,
        objects: library.objects.length,
        types,
      },
      heldout_collage_mae: curve,
      scenes: truths.length,
      mean_count: Number(mean.toFixed(2)),
      correlation: Number(correlation(truths, counts).toFixed(3)),
      loss_first: Number((losses[0] ?? 0).toFixed(4)),
      loss_last20: Number((tail.reduce((x, y) => x + y, 0) / Math.max(1, tail.length)).toFixed(4)),
      counts: counts.map((x, i) => [truths[i], Number(x.toFixed(1))]),
      seconds: Number(((performance.now() - t0) / 1000).toFixed(1)),
      train_seconds: Number(trainSeconds.toFixed(1)),
      collage_seconds: Number(openSeconds.toFixed(1)),
      // CPU seconds of this process (both cores count): a loaded machine stretches the wall time, not these much.
      cpu_seconds: Number(((process.cpuUsage(cpu0).user + process.cpuUsage(cpu0).system) / 1e6).toFixed(1)),
    },
  };
}

function correlation(x: readonly number[], y: readonly number[]): number {
  const n = x.length;
  const mx = x.reduce((s, v) => s + v, 0) / n;
  const my = y.reduce((s, v) => s + v, 0) / n;
  let sxy = 0;
  let sxx = 0;
  let syy = 0;
  for (let i = 0; i < n; i++) {
    sxy += ((x[i] as number) - mx) * ((y[i] as number) - my);
    sxx += ((x[i] as number) - mx) ** 2;
    syy += ((y[i] as number) - my) ** 2;
  }
  return sxy / Math.sqrt(sxx * syy || 1);
}
