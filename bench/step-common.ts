/**
 * What the step benchmarks' workers (train-worker.ts, dora-worker.ts, neco-worker.ts) and profile-step.ts share: the
 * ViT-Ti/16 with the DINO head of tools/train_reference.py's bench_models, its initial state, the step's scalars, the
 * NeCo bench's step, and the one JSON line the workers print.
 */

import type { Rng } from '../native/base/rng.js';
import type { DinoHeadConfig } from '../native/models/dino-head.js';
import { presetConfig } from '../native/models/vit.js';
import { dinoParamShapes } from '../native/train/dino-step.js';
import type { NecoStepConfig } from '../native/train/neco-step.js';
import { initialState } from '../native/train/step-runner.js';
import { initParams } from '../native/train/train-dino.js';
import { type Json, median, type Reference } from './reference.js';

export const BENCH_VIT = presetConfig('vit_ti16');
export const BENCH_HEAD: DinoHeadConfig = { inDim: 192, hiddenDim: 2048, bottleneckDim: 256, outDim: 4096, layers: 3 };
/**
 * The NeCo step of `npm run bench -- neco` (tools/neco_reference.py --bench): ViT-S/16, NeCo head 2048-256, one
 * image with 2 global crops (224) and 4 local crops (96), 7 × 7 aligned patches, steepness 100.
 */
export function necoBenchConfig(): NecoStepConfig {
  const vit = presetConfig('vit_s16');
  return {
    vit,
    head: { inDim: vit.dim, hiddenDim: 2048, outDim: 256, layers: 3 },
    batch: 1,
    globalSize: 224,
    globalCrops: 2,
    localSize: 96,
    localCrops: 4,
    aligned: 7,
    steepness: { student: 100, teacher: 100 },
  };
}

/**
 * Untimed steps before the timed ones, on both sides of the step benches (train, dora, neco; the PyTorch references
 * get `--warmup` with it). Three, because with transparent huge pages (the references' `+thp` configurations) the
 * kernel assembles them over the first steps (Flaneur's DINO step with them, quiet: 3.8 / 4.0 s for the 2nd and 3rd
 * steps, then 2.4 s); a long run is the steady state, which is what the benches compare.
 */
export const BENCH_WARMUP = 3;
/** The PyTorch references' arguments for the same warm-up. */
export const REFERENCE_WARMUP_ARGS = ['--warmup', String(BENCH_WARMUP)];

/**
 * What every step bench (train, dora, neco) reports of ours (`oursAround`) against the reference: time a step and its
 * ratio to PyTorch's fastest configuration, peak RSS and its ratio to PyTorch's leanest, the reference's every
 * configuration (its summary), the warm-up, the graph's build, the provider.
 */
export function stepFigures(ours: Json, torch: Reference): Json {
  const r = (x: unknown) => Number(Number(x).toFixed(3));
  return {
    s_per_step: r(ours.s_per_step),
    runs_s: ours.runs_s,
    process_s_per_step: ours.process_s_per_step,
    threads: ours.threads,
    warmup_steps: BENCH_WARMUP,
    torch_s_per_step: r(torch.best.s_per_step),
    ...torch.summary,
    ratio_vs_torch: r(Number(ours.s_per_step) / torch.best.s_per_step),
    peak_rss_mb: r(ours.peak_rss_mb),
    process_peak_rss_mb: ours.process_peak_rss_mb,
    torch_peak_rss_mb: r(torch.leanest.peak_rss_mb),
    rss_ratio_vs_torch: r(Number(ours.peak_rss_mb) / torch.leanest.peak_rss_mb),
    graph_build_s: r(ours.build_s),
    provider: ours.provider,
  };
}

export const BENCH_SCALARS = {
  lr: 1e-4,
  wd: 0.04,
  ema: 0.996,
  center_momentum: 0.9,
  student_temp: 0.1,
  teacher_temp: 0.04,
  max_norm: 3,
};

export function benchState(graph: Parameters<typeof initialState>[0], rng: Rng) {
  return initialState(graph, initParams(dinoParamShapes({ vit: BENCH_VIT, head: BENCH_HEAD }), rng));
}

/**
 * The worker's result line: the median timed step (after the warm-up steps the caller left out), every timed
 * step, the build time, the provider and intra-op threads, peak RSS, and whatever else it measured.
 */
export function printStep(
  times: number[],
  build: number,
  runner: { provider: string; threads: number },
  extra: Record<string, number> = {},
) {
  console.log(
    JSON.stringify({
      s_per_step: median(times),
      runs_s: times.map((t) => Number(t.toFixed(4))),
      ...extra,
      build_s: build,
      provider: runner.provider,
      threads: runner.threads,
      peak_rss_mb: process.resourceUsage().maxRSS / 1024,
    }),
  );
}
