/**
 * Ours, in its own process: one Dora training step of ViT-Ti/16 at 224 px on one clip of 8 frames, 3 objects, no
 * local crops: the batch (shared crop, per-frame jitter/grayscale/blur, the current teacher's attention on the
 * views, discovery, tracking, masking) and then the step graph (teacher, student on 24 masked views, Dora loss,
 * backward, clipping, AdamW, EMA). Times the whole step and the batch part separately.
 */
import { presetConfig, vitParamShapes } from '../native/models/vit.js';
import { buildDinoStep, dinoParamShapes } from '../native/train/dino-step.js';
import { doraBatch, TeacherAttention } from '../native/train/dora-clips.js';
import { Rng } from '../native/train/rng.js';
import { initialState, StepRunner } from '../native/train/step-runner.js';
import { initParams } from '../native/train/train-dino.js';

const F = 8;
const K = 3;
const vit = presetConfig('vit_ti16');
const head = { inDim: 192, hiddenDim: 2048, bottleneckDim: 256, outDim: 4096, layers: 3 };
const t0 = performance.now();
const graph = buildDinoStep({
  vit,
  head,
  batch: F,
  globalSize: 224,
  globalCrops: K,
  localSize: 96,
  localCrops: 0,
  dora: true,
});
const runner = await StepRunner.create(graph, { globals: [K * F, 3, 224, 224], locals: null });
const attention = await TeacherAttention.create(vit, 224);
const build = (performance.now() - t0) / 1000;
const rng = new Rng(1);
const state = initialState(graph, initParams(dinoParamShapes({ vit, head }), rng));
const backbone = vitParamShapes(vit);
// A 40-frame 320×240 "video" of noise.
const video = Array.from({ length: 40 }, () => Uint8Array.from({ length: 320 * 240 * 3 }, () => rng.int(256)));
const source = {
  frames: video.length,
  read: (i: number) => ({ width: 320, height: 240, data: video[i] as Uint8Array }),
};
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
const batchTimes: number[] = [];
for (let i = 0; i < 4; i++) {
  const s = performance.now();
  const b = await doraBatch(
    [source],
    1,
    224,
    { size: 96, scale: [0.05, 0.4], count: 0 },
    { framesPerClip: F, stride: 2, objects: K, epsilon: 0.05, iterations: 30, grayscaleP: 0.2, blurP: 0.1 },
    { mean: vit.mean, std: vit.std, patch: 16, heads: vit.heads },
    rng,
    (views, count) => attention.run(views, count, state.teacher, backbone),
  );
  const mid = performance.now();
  await runner.step(state, { globals: b.masked, teacherViews: b.teacherViews }, scalars);
  if (i > 0) {
    times.push((performance.now() - s) / 1000);
    batchTimes.push((mid - s) / 1000);
  }
}
console.log(
  JSON.stringify({
    s_per_step: Math.min(...times),
    batch_s: Math.min(...batchTimes),
    build_s: build,
    provider: runner.provider,
    peak_rss_mb: process.resourceUsage().maxRSS / 1024,
  }),
);
