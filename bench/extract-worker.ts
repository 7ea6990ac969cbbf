/**
 * Feature extraction end to end vs the model alone, in its own process:
 *   node --import tsx bench/extract-worker.ts [model.safetensors] [size] [batch]
 * Ingests the synthetic tour (tests/fixtures/synthetic/tour.mp4, 10 fps: 200 frames of 320x240), imports the model
 * (default: the bundled ViT-Ti/16), then times the `features.extract` job (stored frames read, preprocessed, the
 * model, tokens converted and stored) and the model alone: the same session shape and batch on inputs prepared
 * beforehand, as many frames. Prints one JSON line: frames/s of both and their ratio.
 */
import path from 'node:path';
import * as ort from 'onnxruntime-node';
import { loadRegisteredModel } from '../native/features/extract.js';
import { inputShape } from '../native/models/preprocess.js';
import { buildViTOnnx } from '../native/models/vit-onnx.js';
import { ModelSession } from '../native/runtime/session.js';
import { addTour, tempEngine } from './engine.js';
import { median, ROOT } from './reference.js';

const BUNDLED = path.join(ROOT, 'models', 'default', 'flaneur-vit-ti16-dora-vtest.safetensors');
const [file = BUNDLED, sizeArg = '224', batchArg = '8'] = process.argv.slice(2);
const size = Number(sizeArg);
const batch = Number(batchArg);

const { engine, call, close } = await tempEngine('flaneur-bench-extract-');
try {
  const runner = engine.requireProject().runner;
  await addTour({ engine, call });
  const model = (await call('models.import', { path: file, name: 'bench' })) as { id: number };
  const media = (await call('library.list', {})) as {
    items: { frameCount: number; frameWidth: number; frameHeight: number }[];
  };
  const m = media.items[0];
  if (!m) throw new Error('the tour was not ingested');
  const frames = m.frameCount;

  // The model alone: one session at the frames' input shape, batches of random inputs prepared beforehand.
  const { project } = engine.requireProject();
  const { model: vit } = loadRegisteredModel(project, model.id);
  const shape = inputShape(m.frameWidth, m.frameHeight, size, vit.config.patchSize, 'aspect');
  const session = await ModelSession.create(
    buildViTOnnx(vit, { height: shape.height, width: shape.width, outputs: { cls: true, patches: true }, fused: true }),
  );
  const x = new ort.Tensor(
    'float32',
    new Float32Array(batch * 3 * shape.height * shape.width).map((_, i) => Math.sin(i)),
    [batch, 3, shape.height, shape.width],
  );
  await session.run({ pixels: x }, ['cls', 'patches']); // warm-up
  const modelRuns: number[] = [];
  for (let rep = 0; rep < 2; rep++) {
    const t0 = performance.now();
    for (let done = 0; done < frames; done += batch) await session.run({ pixels: x }, ['cls', 'patches']);
    modelRuns.push((Math.ceil(frames / batch) * batch) / ((performance.now() - t0) / 1000));
  }
  await session.release();

  // End to end: the extraction job, once (a second run would reuse the stored features); its session build
  // included, as a user's run has it.
  const t0 = performance.now();
  await call('features.extract', { modelId: model.id, size, batch });
  await runner.idle();
  const extractFps = frames / ((performance.now() - t0) / 1000);
  const modelFps = median(modelRuns);
  console.log(
    JSON.stringify({
      frames,
      input: [shape.height, shape.width],
      batch,
      model_only_fps: modelFps,
      extract_fps: extractFps,
      extract_ratio_vs_model_only: extractFps / modelFps,
      runs_model_fps: modelRuns,
      provider: session.info.provider,
      threads: session.info.threads,
      peak_rss_mb: process.resourceUsage().maxRSS / 1024,
    }),
  );
} finally {
  await close();
}
