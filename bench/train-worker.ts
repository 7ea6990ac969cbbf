/** Ours, in its own process (for its peak RSS): build the ViT-Ti/16 DINO step and time a few steps. */
import { presetConfig } from '../native/models/vit.js';
import { buildDinoStep, dinoParamShapes } from '../native/train/dino-step.js';
import { Rng } from '../native/train/rng.js';
import { initialState, StepRunner } from '../native/train/step-runner.js';
import { initParams } from '../native/train/train-dino.js';

const vit = presetConfig('vit_ti16');
const head = { inDim: 192, hiddenDim: 2048, bottleneckDim: 256, outDim: 4096, layers: 3 };
const t0 = performance.now();
const graph = buildDinoStep({ vit, head, batch: 16, globalSize: 224, globalCrops: 2, localSize: 96, localCrops: 0 });
const runner = await StepRunner.create(graph, { globals: [32, 3, 224, 224], locals: null });
const build = (performance.now() - t0) / 1000;
const rng = new Rng(1);
const state = initialState(graph, initParams(dinoParamShapes({ vit, head }), rng));
const globals = new Float32Array(32 * 3 * 224 * 224).map(() => rng.normal());
const scalars = {
  lr: 1e-4,
  wd: 0.04,
  ema: 0.996,
  center_momentum: 0.9,
  student_temp: 0.1,
  teacher_temp: 0.04,
  max_norm: 3,
};
const times: number[] = [];
for (let i = 0; i < 5; i++) {
  const s = performance.now();
  await runner.step(state, { globals }, scalars);
  if (i > 0) times.push((performance.now() - s) / 1000);
}
console.log(
  JSON.stringify({
    s_per_step: Math.min(...times),
    build_s: build,
    provider: runner.provider,
    peak_rss_mb: process.resourceUsage().maxRSS / 1024,
  }),
);
