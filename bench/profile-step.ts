/**
 * One training step of a step benchmark in an ONNX Runtime session of its own, for a per-kernel profile:
 *
 *   node --import tsx bench/profile-step.ts [--objective dino|dora|neco] [steps] [--profile PREFIX]
 *
 * dino: the DINO step of `npm run bench -- train` (ViT-Ti/16, batch 32 at 224 px as 2 × 16 globals); dora: the step
 * graph of `npm run bench -- dora` (ViT-Ti/16, 3 objects × 8 masked frames, the teacher's logits as an input); neco:
 * the step graph of `npm run bench -- neco` (ViT-S/16, 2 globals + 4 locals, 10 pairs of 49 aligned patches,
 * references from the queue). Batch inputs are noise (the step's cost does not depend on them); the session is
 * configured as the step runners' (no CPU memory arena). Prints each step's wall and CPU seconds, its minor page faults
 * (load-independent: memory freshly mapped and touched) and the peak RSS;
 * with --profile, ONNX Runtime's JSON profile (PREFIX_<date>.json, written by endProfiling) for
 * tools/ort_profile_summary.py. Run it in the environment to study (e.g. the job workers': MALLOC_MMAP_THRESHOLD_,
 * GLIBC_TUNABLES); T=threads (default: all cores).
 */
import os from 'node:os';
import * as ort from 'onnxruntime-node';
import { Rng } from '../native/base/rng.js';
import { necoPairs } from '../native/models/neco.js';
import { buildDinoStep } from '../native/train/dino-step.js';
import { relativeBoxes, roiBatch, sampleNecoBoxes } from '../native/train/neco-data.js';
import { buildNecoStep, necoParamShapes } from '../native/train/neco-step.js';
import { initialState, type TrainState } from '../native/train/step-runner.js';
import { initParams } from '../native/train/train-dino.js';
import { BENCH_HEAD, BENCH_SCALARS, BENCH_VIT, benchState, necoBenchConfig } from './step-common.js';

const args = process.argv.slice(2);
const flag = (name: string) => {
  const at = args.indexOf(name);
  return at >= 0 ? args[at + 1] : undefined;
};
const objective = flag('--objective') ?? 'dino';
const prefix = flag('--profile');
const steps = Number(args.find((a, i) => !args[i - 1]?.startsWith('--') && /^\d+$/.test(a)) ?? 4);
const threads = Number(process.env.T ?? os.availableParallelism());
const rng = new Rng(1);
const noise = (n: number) => new Float32Array(n).map(() => rng.normal());

/** The step graph, its initial state and its batch inputs (by input name) for the objective. */
function setup(): {
  onnx: Uint8Array;
  params: Map<string, number[]>;
  state: TrainState;
  batch: Record<string, ort.Tensor>;
} {
  const t = (a: Float32Array, shape: number[]) => new ort.Tensor('float32', a, shape);
  if (objective === 'dino' || objective === 'dora') {
    const dora = objective === 'dora';
    // Dora: one clip of 8 frames, 3 objects (the student's 3 × 8 masked views; the teacher's logits as an input).
    const [batch, crops] = dora ? [8, 3] : [16, 2];
    const graph = buildDinoStep({
      vit: BENCH_VIT,
      head: BENCH_HEAD,
      batch,
      globalSize: 224,
      globalCrops: crops,
      localSize: 96,
      localCrops: 0,
      ...(dora ? { dora: true } : {}),
    });
    const state = benchState(graph, rng);
    const feeds: Record<string, ort.Tensor> = {
      center: t(state.center, [1, state.center.length]),
      globals: t(noise(batch * crops * 3 * 224 * 224), [batch * crops, 3, 224, 224]),
    };
    if (dora) feeds.teacher_logits = t(noise(batch * BENCH_HEAD.outDim), [batch, BENCH_HEAD.outDim]);
    const scalars: Record<string, number> = { ...BENCH_SCALARS, bc1: 0.1, bc2: 0.001 };
    for (const n of graph.scalars) feeds[n] = t(Float32Array.of(scalars[n] ?? 0), []);
    return { onnx: graph.onnx, params: graph.params, state, batch: feeds };
  }
  if (objective !== 'neco') throw new Error(`--objective: dino, dora or neco, not ${objective}`);
  const c = necoBenchConfig();
  const graph = buildNecoStep(c);
  const state = initialState(graph, initParams(necoParamShapes(c), rng));
  const pairs = necoPairs(c.globalCrops, c.localCrops);
  const boxes = sampleNecoBoxes(
    320,
    240,
    [
      { size: 224, scale: [0.25, 1], count: c.globalCrops },
      { size: 96, scale: [0.05, 0.25], count: c.localCrops },
    ],
    rng,
  );
  const sizes = [224, 224, 96, 96, 96, 96];
  const roi = roiBatch([relativeBoxes(boxes, sizes, c.globalCrops)], pairs, {
    patch: 16,
    globalGrid: 14,
    localGrid: 6,
    aligned: 7,
  });
  const d = graph.dims;
  const refs = d.pairs * d.aligned;
  const feeds: Record<string, ort.Tensor> = {
    globals: t(noise(2 * 3 * 224 * 224), [2, 3, 224, 224]),
    locals: t(noise(4 * 3 * 96 * 96), [4, 3, 96, 96]),
    roi_teacher: t(roi.roiTeacher, [d.pairs, 1, d.aligned, d.globalPatches]),
    roi_student_global: t(roi.roiStudentGlobal, [d.globalPairs, 1, d.aligned, d.globalPatches]),
    roi_student_local: t(roi.roiStudentLocal, [d.localPairs, 1, d.aligned, d.localPatches]),
    ref_queue: t(noise(refs * c.head.outDim), [refs, c.head.outDim]),
    // Half this step's teacher patches, half queue rows (as in a running queue).
    ref_index: new ort.Tensor(
      'int64',
      BigInt64Array.from({ length: refs }, (_, r) =>
        BigInt(r % 2 ? 2 * d.globalPatches + r : rng.int(2 * d.globalPatches)),
      ),
      [refs],
    ),
  };
  const scalars: Record<string, number> = { lr: 1e-5, lr_head: 1e-4, wd: 0.04, ema: 0.9995, bc1: 0.1, bc2: 0.001 };
  for (const n of graph.scalars) feeds[n] = t(Float32Array.of(scalars[n] ?? 0), []);
  return { onnx: graph.onnx, params: graph.params, state, batch: feeds };
}

const { onnx, params, state, batch } = setup();
const options: ort.InferenceSession.SessionOptions = {
  executionProviders: ['cpu'],
  intraOpNumThreads: threads,
  interOpNumThreads: 1,
  graphOptimizationLevel: 'all',
  enableCpuMemArena: false, // as the step runners' sessions
  ...(prefix ? { enableProfiling: true, profileFilePrefix: prefix } : {}),
};
const session = await ort.InferenceSession.create(onnx, options);
const feeds: Record<string, ort.Tensor> = { ...batch };
const inputs = new Set(session.inputNames);
for (const [n, shape] of params) {
  const put = (key: string, data: Float32Array | undefined) => {
    if (inputs.has(key) && data) feeds[key] = new ort.Tensor('float32', data, shape);
  };
  put(`p/${n}`, state.params.get(n));
  put(`t/${n}`, state.teacher.get(n));
  put(`m/${n}`, state.m.get(n));
  put(`v/${n}`, state.v.get(n));
}
const runs: { s: number; cpu_s: number; minor_faults: number }[] = [];
for (let i = 0; i < steps; i++) {
  const t0 = performance.now();
  const c0 = process.cpuUsage();
  const f0 = process.resourceUsage().minorPageFault;
  await session.run(feeds);
  const c = process.cpuUsage(c0);
  const faults = process.resourceUsage().minorPageFault - f0;
  runs.push({ s: (performance.now() - t0) / 1000, cpu_s: (c.user + c.system) / 1e6, minor_faults: faults });
}
const file = prefix ? (session as unknown as { endProfiling(): string | undefined }).endProfiling() : undefined;
console.log(
  JSON.stringify({
    objective,
    threads,
    runs,
    peak_rss_mb: process.resourceUsage().maxRSS / 1024,
    loadavg: os.loadavg(),
    profile: file,
  }),
);
