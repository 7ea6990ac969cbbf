/**
 * Counting on synthetic scenes with known counts (tools/synth/count.ts: 2 to 60 targets of varied sizes, with
 * distractors of other categories): MAE and RMSE of exemplar counting (one exemplar box), automatic counting and
 * the colour-threshold baseline, with features of a ViT-S/16 at initialisation (no pretrained weights exist here).
 */

import path from 'node:path';
import { countAutomatically } from '../native/count/auto.js';
import { countByColour, countWithExemplars } from '../native/count/count.js';
import { FeatureExtractor } from '../native/features/extract.js';
import { ExactKnn } from '../native/features/knn.js';
import { decodeImage } from '../native/media/image.js';
import { presetConfig, vitParamShapes } from '../native/models/vit.js';
import { Rng } from '../native/train/rng.js';
import { initParams } from '../native/train/train-dino.js';
import { makeCountScene } from '../tools/synth/count.js';

const ROOT = path.resolve(import.meta.dirname, '..');

export async function benchCount(args: string[]): Promise<Record<string, unknown>> {
  const images = Number(args[0] ?? 30);
  const cfg = presetConfig('vit_s16');
  const model = { config: cfg, weights: initParams(vitParamShapes(cfg), new Rng(3)) };
  const scales = [224, 448];
  const extractors = await Promise.all(
    scales.map((s) => FeatureExtractor.create({ ...model, scheme: 'official', sourceDtype: 'F32', ignored: [] }, s)),
  );
  const knn = new ExactKnn();
  const err = { exemplar: [] as number[], auto: [] as number[], baseline: [] as number[] };
  let tExemplar = 0;
  let coinsCount = -1;
  try {
    for (let i = 0; i < images; i++) {
      const scene = makeCountScene(1000 + i);
      const img = { width: scene.width, height: scene.height, data: scene.rgb };
      const t0 = performance.now();
      const ex = await countWithExemplars(extractors, img, [scene.exemplar]);
      tExemplar += performance.now() - t0;
      const auto = await countAutomatically(extractors[1] as FeatureExtractor, knn, img);
      const base = countByColour(img, scene.exemplar);
      err.exemplar.push(ex.count - scene.count);
      err.auto.push(auto.count - scene.count);
      err.baseline.push(base.count - scene.count);
      console.error(
        `count: scene ${i}: truth ${scene.count}, exemplar ${ex.count}, auto ${auto.count}, colour ${base.count}`,
      );
    }
    // scikit-image's coins.png (24 coins) with one exemplar box around one coin.
    const coins = await decodeImage(path.join(ROOT, 'tests', 'fixtures', 'count', 'coins.png'));
    coinsCount = (await countWithExemplars(extractors, coins, [[83, 106, 40, 40]])).count;
    console.error(`count: coins.png (24 coins): ${coinsCount} with one exemplar`);
  } finally {
    for (const e of extractors) await e.release();
    await knn.release();
  }
  const mae = (e: number[]) => Number((e.reduce((a, b) => a + Math.abs(b), 0) / e.length).toFixed(2));
  const rmse = (e: number[]) => Number(Math.sqrt(e.reduce((a, b) => a + b * b, 0) / e.length).toFixed(2));
  return {
    images,
    scales,
    model: 'vit_s16 at initialisation',
    s_per_image: Number((tExemplar / 1000 / images).toFixed(3)),
    mae_exemplar: mae(err.exemplar),
    rmse_exemplar: rmse(err.exemplar),
    mae_auto: mae(err.auto),
    rmse_auto: rmse(err.auto),
    mae_baseline: mae(err.baseline),
    rmse_baseline: rmse(err.baseline),
    coins_truth: 24,
    coins_count_exemplar: coinsCount,
  };
}
