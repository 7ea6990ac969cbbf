/** Ours, in its own process (for its peak RSS): build the ViT-Ti/16 DINO step and time a few steps. */

import { Rng } from '../native/base/rng.js';
import { buildDinoStep } from '../native/train/dino-step.js';
import { StepRunner } from '../native/train/step-runner.js';
import { BENCH_HEAD, BENCH_SCALARS, BENCH_VIT, BENCH_WARMUP, benchState, printStep } from './step-common.js';

const t0 = performance.now();
const graph = buildDinoStep({
  vit: BENCH_VIT,
  head: BENCH_HEAD,
  batch: 16,
  globalSize: 224,
  globalCrops: 2,
  localSize: 96,
  localCrops: 0,
});
const runner = await StepRunner.create(graph, { globals: [32, 3, 224, 224], locals: null });
const build = (performance.now() - t0) / 1000;
const rng = new Rng(1);
const state = benchState(graph, rng);
const globals = new Float32Array(32 * 3 * 224 * 224).map(() => rng.normal());
const times: number[] = [];
// `node --import tsx bench/train-worker.ts [steps]`: BENCH_WARMUP warm-up steps + the timed ones (default 4).
const steps = BENCH_WARMUP + Math.max(1, Number(process.argv[2] ?? 4));
for (let i = 0; i < steps; i++) {
  const s = performance.now();
  await runner.step(state, { globals }, BENCH_SCALARS);
  if (i >= BENCH_WARMUP) times.push((performance.now() - s) / 1000);
}
printStep(times, build, runner, { warmup_steps: BENCH_WARMUP });
