/**
 * Counting on synthetic scenes with known counts (tools/synth/count.ts: 2 to 60 targets of varied sizes, with
 * distractors of other categories): MAE and RMSE of exemplar counting (one exemplar box), automatic counting and
 * the colour-threshold baseline, with features of a ViT-S/16 at initialisation (no pretrained weights exist here).
 *
 * Dense scenes (`--dense N`, 3 by default; 0 skips them): 2000×1500 images with 200, 500 and 1000 small targets
 * (radius 14, 10 and 7 px ±20 %, a tenth as many distractors). `mae_dense_exemplar`: the exemplar-chosen scale with
 * tiles (countDense, the default of count.exemplar); `mae_dense_baseline`: the method before it (the whole image
 * squashed to 224 and 448 px squares, maps averaged); `mae_dense_colour`: the colour threshold; `max_count_dense`:
 * the largest count returned. Encoder for both: the bundled default model (ViT-Ti/16 Dora; `--dense-model FILE`),
 * trained features and a quarter of ViT-S/16's cost: at the default scale a 1000-object scene is 70 tiles of 448 px
 * (about a minute on 2 loaded cores), so 3 scenes keep the benchmark to a few minutes.
 *
 * Sparse scenes (held-out seeds COUNT_SEEDS.sparse): `mae_auto` is the one-size automatic counter
 * (countAutomatically, the ViT-S/16 above at 448 px); `mae_auto_product` what count.auto runs on them (countAutoDense
 * with the bundled default model at 224 px, as the Count view and `flaneur count --auto`), and on coins.png
 * (`coins_count_auto_product`).
 *
 * Automatic counting on the same dense scenes (held-out seeds, bench/count-seeds.ts): `mae_dense_auto` at every
 * scale (countAutoDense, what count.auto does), `mae_dense_auto_before` the automatic counter before it (the whole
 * image at 448 px), `max_count_auto` the largest automatic count (the 1000-object scene's is `count_auto_1000`).
 * Distractor scenes (`--distractor N`, 16 by default): 512 px scenes with 2–3 kinds of look-alikes
 * (makeDistractorCountScene), one exemplar box: `mae_distractor_exemplar` with the threshold from the peaks'
 * similarity statistics (the default), `mae_distractor_before` without it, `mae_distractor_negative` with one
 * negative box on one distractor of each kind.
 */

import path from 'node:path';
import { Rng } from '../native/base/rng.js';
import { countAutoDense, countAutomatically } from '../native/count/auto.js';
import { countByColour, countDense, countWithExemplars } from '../native/count/count.js';
import { DEFAULT_MODEL_DIR } from '../native/engine/engine.js';
import { FeatureExtractor } from '../native/features/extract.js';
import { ExactKnn } from '../native/features/knn.js';
import { decodeImage } from '../native/media/image.js';
import { importViTFile } from '../native/models/import-vit.js';
import { presetConfig, vitParamShapes } from '../native/models/vit.js';
import { initParams } from '../native/train/train-dino.js';
import { makeCountScene, makeDenseCountScene, makeDistractorCountScene } from '../tools/synth/count.js';
import { COUNT_SEEDS } from './count-seeds.js';
import { benchUnco } from './unco.js';

const ROOT = path.resolve(import.meta.dirname, '..');

/** Dense scenes: (targets, radius in px), from fewer larger objects to many small ones. */
const DENSE = [
  { count: 200, radius: 14 },
  { count: 500, radius: 10 },
  { count: 1000, radius: 7 },
];

export async function benchCount(args: string[]): Promise<Record<string, unknown>> {
  const flag = (name: string, fallback: number) =>
    args.includes(name) ? Number(args[args.indexOf(name) + 1]) : fallback;
  const dense = flag('--dense', DENSE.length);
  // The first dense scene to count (scenes denseFrom..dense-1: the heavy ones can run in processes of their own).
  const denseFrom = flag('--dense-from', 0);
  const distractorScenes = flag('--distractor', COUNT_SEEDS.distractor.heldOut.length);
  // UnCo (bench/unco.ts): the train.unco job's defaults unless given; --unco-steps 0 skips it.
  const uncoSteps = flag('--unco-steps', -1);
  const uncoScenes = flag('--unco-scenes', 30);
  const uncoOptions = {
    args: {
      ...(uncoSteps > 0 ? { steps: uncoSteps } : {}),
      ...(args.includes('--unco-lr') ? { lr: flag('--unco-lr', 0) } : {}),
      ...(args.includes('--unco-batch') ? { batch: flag('--unco-batch', 0) } : {}),
      ...(args.includes('--unco-pool') ? { pool: flag('--unco-pool', 0) } : {}),
      ...(args.includes('--unco-types') ? { types: flag('--unco-types', 0) } : {}),
      ...(args.includes('--unco-warmup') ? { warmup: flag('--unco-warmup', 0) } : {}),
      ...(args.includes('--unco-scaling') ? { scaling: flag('--unco-scaling', 0) } : {}),
      ...(args.includes('--unco-patch-objects') ? { pixelObjects: false } : {}),
    },
    heldOut: uncoScenes,
    evalOn: args.includes('--unco-tuning') ? ('tuning' as const) : ('heldout' as const),
  };
  const denseModelFile = args.includes('--dense-model')
    ? path.resolve(String(args[args.indexOf('--dense-model') + 1]))
    : path.join(DEFAULT_MODEL_DIR, 'flaneur-vit-ti16-dora-vtest.safetensors');
  const positional = args.filter((a, i) => !a.startsWith('--') && !args[i - 1]?.startsWith('--'));
  const images = Number(positional[0] ?? 30);
  // The first sparse scene to count (scenes sparseFrom..images-1: parts can run in processes of their own).
  const sparseFrom = flag('--sparse-from', 0);
  if (args.includes('--unco-only')) return benchUnco(importViTFile(denseModelFile), uncoOptions);
  const cfg = presetConfig('vit_s16');
  const model = { config: cfg, weights: initParams(vitParamShapes(cfg), new Rng(3)) };
  const scales = [224, 448];
  const extractors = await Promise.all(
    scales.map((s) => FeatureExtractor.create({ ...model, scheme: 'official', sourceDtype: 'F32', ignored: [] }, s)),
  );
  const knn = new ExactKnn();
  const err = {
    exemplar: [] as number[],
    auto: [] as number[],
    autoProduct: [] as number[],
    baseline: [] as number[],
    dense: [] as number[],
    denseBaseline: [] as number[],
    denseColour: [] as number[],
    denseAuto: [] as number[],
    denseAutoBefore: [] as number[],
    distractor: [] as number[],
    distractorBefore: [] as number[],
    distractorNegative: [] as number[],
  };
  const autoCounts: number[] = [];
  const distractorRows: Record<string, unknown>[] = [];
  const denseCounts: number[] = [];
  const denseScale: Record<string, number | number[]>[] = [];
  let tExemplar = 0;
  let coinsCount = -1;
  // What count.auto runs (countAutoDense with the bundled default model at 224 px), on the same sparse scenes.
  const product = await FeatureExtractor.create(importViTFile(denseModelFile), 224);
  const productCounts: number[] = [];
  let coinsAuto = -1;
  try {
    for (let i = sparseFrom; i < images; i++) {
      const seed = COUNT_SEEDS.sparse.heldOut[i % COUNT_SEEDS.sparse.heldOut.length] as number;
      const scene = makeCountScene(seed + Math.floor(i / COUNT_SEEDS.sparse.heldOut.length) * 100);
      const img = { width: scene.width, height: scene.height, data: scene.rgb };
      const t0 = performance.now();
      const ex = await countWithExemplars(extractors, img, [scene.exemplar]);
      tExemplar += performance.now() - t0;
      const auto = await countAutomatically(extractors[1] as FeatureExtractor, knn, img);
      const autoProduct = await countAutoDense(product, knn, img);
      const base = countByColour(img, scene.exemplar);
      err.exemplar.push(ex.count - scene.count);
      err.auto.push(auto.count - scene.count);
      err.autoProduct.push(autoProduct.count - scene.count);
      productCounts.push(autoProduct.count);
      err.baseline.push(base.count - scene.count);
      console.error(
        `count: scene ${i}: truth ${scene.count}, exemplar ${ex.count}, auto ${auto.count}, auto (product) ${autoProduct.count} (x${autoProduct.scale.factor.toFixed(2)}), colour ${base.count}`,
      );
    }
    // scikit-image's coins.png (24 coins) with one exemplar box around one coin.
    const coins = await decodeImage(path.join(ROOT, 'tests', 'fixtures', 'count', 'coins.png'));
    coinsCount = (await countWithExemplars(extractors, coins, [[83, 106, 40, 40]])).count;
    coinsAuto = (await countAutoDense(product, knn, coins)).count;
    console.error(`count: coins.png (24 coins): ${coinsCount} with one exemplar, ${coinsAuto} automatically`);
    // Dense scenes: the exemplar-chosen scale and tiles vs the fixed square sizes of before, same encoder.
    if (dense > 0 || distractorScenes > 0) {
      console.error(
        `count: ${dense} dense scene(s) of 2000x1500 (200, 500, 1000 objects of radius 14, 10, 7 px): up to 70 tiles of 448 px each at the exemplar's scale, about a minute per scene on 2 loaded cores (--dense N to change)`,
      );
      const denseModel = importViTFile(denseModelFile);
      const byScale = await FeatureExtractor.create(denseModel, 224);
      const at448 = await FeatureExtractor.create(denseModel, 448);
      const square = await Promise.all(scales.map((s) => FeatureExtractor.create(denseModel, s, undefined, 'square')));
      try {
        for (let i = denseFrom; i < dense; i++) {
          const spec = DENSE[i % DENSE.length] as (typeof DENSE)[number];
          const seed = COUNT_SEEDS.dense.heldOut[i % COUNT_SEEDS.dense.heldOut.length] as number;
          const scene = makeDenseCountScene(seed + Math.floor(i / COUNT_SEEDS.dense.heldOut.length) * 100, spec);
          const img = { width: scene.width, height: scene.height, data: scene.rgb };
          const t0 = performance.now();
          const r = await countDense(byScale, img, [scene.exemplar]);
          const s = (performance.now() - t0) / 1000;
          const base = await countWithExemplars(square, img, [scene.exemplar]);
          const colour = countByColour(img, scene.exemplar);
          const ta = performance.now();
          const auto = await countAutoDense(byScale, knn, img);
          const sa = (performance.now() - ta) / 1000;
          const autoBefore = await countAutomatically(at448, knn, img);
          err.denseAuto.push(auto.count - scene.count);
          err.denseAutoBefore.push(autoBefore.count - scene.count);
          autoCounts.push(auto.count);
          err.dense.push(r.count - scene.count);
          err.denseBaseline.push(base.count - scene.count);
          err.denseColour.push(colour.count - scene.count);
          denseCounts.push(r.count);
          denseScale.push({
            scene: i,
            seed,
            objects: spec.count,
            truth: scene.count,
            radius: spec.radius,
            exemplar_px: scene.exemplar[2],
            count: r.count,
            baseline: base.count,
            colour: colour.count,
            factor: Number(r.scale.factor.toFixed(2)),
            exemplar_patches: Number(r.scale.exemplarPatches.toFixed(2)),
            tiles: r.scale.tiles,
            seconds: Number(s.toFixed(1)),
            auto: auto.count,
            auto_before: autoBefore.count,
            auto_factor: Number(auto.scale.factor.toFixed(2)),
            auto_tiles: auto.trials.reduce((a, t) => a + t.tiles, 0),
            auto_blobs: auto.trials.map((t) => t.blobs),
            auto_seconds: Number(sa.toFixed(1)),
          });
          console.error(
            `count: dense scene ${i}: truth ${scene.count} (radius ${spec.radius}), exemplar-scale ${r.count} (x${r.scale.factor.toFixed(2)}, ${r.scale.tiles} tiles, ${s.toFixed(1)} s), fixed sizes ${base.count}, colour ${colour.count}; automatic ${auto.count} (x${auto.scale.factor.toFixed(2)}, blobs by size ${auto.trials.map((t) => t.blobs).join('/')}, ${sa.toFixed(1)} s), automatic before ${autoBefore.count}`,
          );
        }
        for (let i = 0; i < distractorScenes; i++) {
          const seed = COUNT_SEEDS.distractor.heldOut[i % COUNT_SEEDS.distractor.heldOut.length] as number;
          const scene = makeDistractorCountScene(seed);
          const img = { width: scene.width, height: scene.height, data: scene.rgb };
          const withStats = await countDense(byScale, img, [scene.exemplar]);
          const before = await countDense(byScale, img, [scene.exemplar], { rejectDistractors: false });
          const negative = await countDense(byScale, img, [scene.exemplar], {
            negatives: scene.kinds.map((k) => k.box),
          });
          err.distractor.push(withStats.count - scene.count);
          err.distractorBefore.push(before.count - scene.count);
          err.distractorNegative.push(negative.count - scene.count);
          distractorRows.push({
            seed,
            truth: scene.count,
            distractors: scene.kinds.map((k) => `${k.count} ${k.kind}`).join(', '),
            count: withStats.count,
            before: before.count,
            negative: negative.count,
            raised: withStats.stats?.raised ?? false,
            separation: Number((withStats.stats?.separation ?? 0).toFixed(2)),
          });
          console.error(
            `count: distractor scene ${seed}: truth ${scene.count} among ${scene.distractors} look-alikes (${scene.kinds.map((k) => k.kind).join(', ')}): ${withStats.count} (before ${before.count}, with negatives ${negative.count})`,
          );
        }
      } finally {
        await byScale.release();
        await at448.release();
        for (const e of square) await e.release();
      }
    }
  } finally {
    await product.release();
    for (const e of extractors) await e.release();
    await knn.release();
  }
  const unco = uncoSteps !== 0 ? await benchUnco(importViTFile(denseModelFile), uncoOptions) : {};
  const mae = (e: number[]) => Number((e.reduce((a, b) => a + Math.abs(b), 0) / e.length).toFixed(2));
  const rmse = (e: number[]) => Number(Math.sqrt(e.reduce((a, b) => a + b * b, 0) / e.length).toFixed(2));
  return {
    images: images - sparseFrom,
    scales,
    model: 'vit_s16 at initialisation',
    s_per_image: Number((tExemplar / 1000 / Math.max(1, images - sparseFrom)).toFixed(3)),
    mae_exemplar: mae(err.exemplar),
    rmse_exemplar: rmse(err.exemplar),
    mae_auto: mae(err.auto),
    rmse_auto: rmse(err.auto),
    ...(images > sparseFrom
      ? {
          sparse_seeds: COUNT_SEEDS.sparse.heldOut.slice(sparseFrom, images),
          mae_auto_product: mae(err.autoProduct),
          rmse_auto_product: rmse(err.autoProduct),
          max_count_auto_product: Math.max(...productCounts),
          auto_product_counts: productCounts,
        }
      : {}),
    mae_baseline: mae(err.baseline),
    rmse_baseline: rmse(err.baseline),
    coins_truth: 24,
    coins_count_exemplar: coinsCount,
    coins_count_auto_product: coinsAuto,
    ...(dense > denseFrom
      ? {
          dense_scenes: dense - denseFrom,
          dense_image: '2000x1500',
          dense_model: path.basename(denseModelFile),
          mae_dense_exemplar: mae(err.dense),
          mae_dense_baseline: mae(err.denseBaseline),
          mae_dense_colour: mae(err.denseColour),
          max_count_dense: Math.max(...denseCounts),
          mae_dense_auto: mae(err.denseAuto),
          mae_dense_auto_before: mae(err.denseAutoBefore),
          max_count_auto: Math.max(...autoCounts),
          ...Object.fromEntries(
            denseScale
              .filter((r) => r.objects === 1000)
              .flatMap((r) => [
                ['count_auto_1000', r.auto],
                ['truth_1000', r.truth],
              ]),
          ),
          dense_seeds: COUNT_SEEDS.dense.heldOut.slice(denseFrom, dense),
          dense: denseScale,
        }
      : {}),
    ...(distractorScenes > 0
      ? {
          distractor_scenes: distractorScenes,
          distractor_image: '512x512',
          distractor_seeds: COUNT_SEEDS.distractor.heldOut.slice(0, distractorScenes),
          mae_distractor_exemplar: mae(err.distractor),
          mae_distractor_before: mae(err.distractorBefore),
          mae_distractor_negative: mae(err.distractorNegative),
          distractor: distractorRows,
        }
      : {}),
    ...unco,
  };
}
