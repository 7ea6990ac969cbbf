/**
 * Ours, in its own process: one Dora training step of ViT-Ti/16 at 224 px on one clip of 8 frames, 3 objects, no
 * local crops: the batch (shared crop, per-frame jitter/grayscale/blur, the current teacher's one pass on the
 * views for its attention and logits, discovery, tracking, masking) and then the step graph (student on 24 masked
 * views, Dora loss, backward, clipping, AdamW, EMA). Times the whole step, the batch part and its teacher pass.
 */

import { Rng } from '../native/base/rng.js';
import { buildDinoStep } from '../native/train/dino-step.js';
import { doraBatch, TeacherAttention } from '../native/train/dora-clips.js';
import { StepRunner } from '../native/train/step-runner.js';
import { median } from './reference.js';
import { BENCH_HEAD, BENCH_SCALARS, BENCH_VIT, BENCH_WARMUP, benchState, printStep } from './step-common.js';

const F = 8;
const K = 3;
const vit = BENCH_VIT;
const t0 = performance.now();
const graph = buildDinoStep({
  vit,
  head: BENCH_HEAD,
  batch: F,
  globalSize: 224,
  globalCrops: K,
  localSize: 96,
  localCrops: 0,
  dora: true,
});
const runner = await StepRunner.create(graph, { globals: [K * F, 3, 224, 224], locals: null });
const attention = await TeacherAttention.create(vit, 224, undefined, BENCH_HEAD);
const build = (performance.now() - t0) / 1000;
const rng = new Rng(1);
const state = benchState(graph, rng);
// A 40-frame 320×240 "video" of noise.
const video = Array.from({ length: 40 }, () => Uint8Array.from({ length: 320 * 240 * 3 }, () => rng.int(256)));
const source = {
  frames: video.length,
  read: (i: number) => ({ width: 320, height: 240, data: video[i] as Uint8Array }),
};
const times: number[] = [];
const batchTimes: number[] = [];
const teacherTimes: number[] = [];
for (let i = 0; i < BENCH_WARMUP + 3; i++) {
  const s = performance.now();
  let teacher = 0;
  const b = await doraBatch(
    [source],
    1,
    224,
    { size: 96, scale: [0.05, 0.4], count: 0 },
    { framesPerClip: F, stride: 2, objects: K, epsilon: 0.05, iterations: 30, grayscaleP: 0.2, blurP: 0.1 },
    { mean: vit.mean, std: vit.std, patch: 16, heads: vit.heads },
    rng,
    async (views, count) => {
      const a = performance.now();
      const pass = await attention.run(views, count, state.teacher, graph.params);
      teacher = (performance.now() - a) / 1000;
      return pass;
    },
  );
  const mid = performance.now();
  await runner.step(
    state,
    { globals: b.masked, ...(b.teacherLogits ? { teacherLogits: b.teacherLogits } : {}) },
    BENCH_SCALARS,
  );
  if (i >= BENCH_WARMUP) {
    times.push((performance.now() - s) / 1000);
    batchTimes.push((mid - s) / 1000);
    teacherTimes.push(teacher);
  }
}
// The batch part's teacher pass alone (the rest of batch_s is the host's: views, discovery, tracking, masking).
printStep(times, build, runner, {
  batch_s: median(batchTimes),
  teacher_pass_s: median(teacherTimes),
  warmup_steps: BENCH_WARMUP,
});
