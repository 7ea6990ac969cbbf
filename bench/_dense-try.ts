import { countDense, countWithExemplars } from '/work/wt/resolution/native/count/count.js';
import { FeatureExtractor } from '/work/wt/resolution/native/features/extract.js';
import { presetConfig, vitParamShapes } from '/work/wt/resolution/native/models/vit.js';
import { Rng } from '/work/wt/resolution/native/train/rng.js';
import { initParams } from '/work/wt/resolution/native/train/train-dino.js';
import { makeDenseCountScene } from '/work/wt/resolution/tools/synth/count.js';
import { importViTFile } from '/work/wt/resolution/native/models/import-vit.js';
const model = process.argv[2] === 'bundled' ? importViTFile('/work/wt/resolution/models/default/flaneur-vit-ti16-dora-vtest.safetensors', { heads: 3 }) : (() => { const cfg = presetConfig(process.argv[2] ?? 'vit_s16'); return { config: cfg, weights: initParams(vitParamShapes(cfg), new Rng(3)), scheme: 'official' as const, sourceDtype: 'F32', ignored: [] }; })();
const ex = await FeatureExtractor.create(model, 224);
for (const spec of [{ count: 1000, radius: 7 }, { count: 200, radius: 14 }]) {
  let t = performance.now();
  const s = makeDenseCountScene(2003, spec);
  console.log('scene', ((performance.now() - t) / 1000).toFixed(1), 's, count', s.count, 'exemplar', s.exemplar);
  t = performance.now();
  const r = await countDense(ex, { width: s.width, height: s.height, data: s.rgb }, [s.exemplar]);
  console.log('dense', r.count, JSON.stringify(r.scale), ((performance.now() - t) / 1000).toFixed(1), 's');
}
await ex.release();
