/**
 * The DINO step of `npm run bench -- train` (ViT-Ti/16, batch 32 at 224 px) in an ONNX Runtime session of its own,
 * for a per-kernel profile: `node --import tsx bench/profile-dino.ts [steps] [--profile PREFIX]` prints each step's
 * wall and CPU seconds, its minor page faults (load-independent: memory freshly mapped and touched) and the peak RSS; with --profile, ONNX Runtime's JSON profile (PREFIX_<date>.json, written by
 * endProfiling) for tools/ort_profile_summary.py. Run it in the environment to study (e.g. the job workers':
 * MALLOC_MMAP_THRESHOLD_, GLIBC_TUNABLES); T=threads (default: all cores).
 */
import os from 'node:os';
import * as ort from 'onnxruntime-node';
import { Rng } from '../native/base/rng.js';
import { buildDinoStep } from '../native/train/dino-step.js';
import { BENCH_HEAD, BENCH_SCALARS, BENCH_VIT, benchState } from './step-common.js';

const args = process.argv.slice(2);
const at = args.indexOf('--profile');
const prefix = at >= 0 ? args[at + 1] : undefined;
const steps = Number(args.find((a, i) => (at < 0 || i !== at + 1) && /^\d+$/.test(a)) ?? 4);
const threads = Number(process.env.T ?? os.availableParallelism());
const graph = buildDinoStep({
  vit: BENCH_VIT,
  head: BENCH_HEAD,
  batch: 16,
  globalSize: 224,
  globalCrops: 2,
  localSize: 96,
  localCrops: 0,
});
const rng = new Rng(1);
const state = benchState(graph, rng);
const options: ort.InferenceSession.SessionOptions = {
  executionProviders: ['cpu'],
  intraOpNumThreads: threads,
  interOpNumThreads: 1,
  graphOptimizationLevel: 'all',
  enableCpuMemArena: false, // as StepRunner's sessions
  ...(prefix ? { enableProfiling: true, profileFilePrefix: prefix } : {}),
};
const session = await ort.InferenceSession.create(graph.onnx, options);
const t = (a: Float32Array, shape: number[]) => new ort.Tensor('float32', a, shape);
const feeds: Record<string, ort.Tensor> = { center: t(state.center, [1, state.center.length]) };
for (const [n, shape] of graph.params) {
  feeds[`p/${n}`] = t(state.params.get(n) as Float32Array, shape);
  feeds[`t/${n}`] = t(state.teacher.get(n) as Float32Array, shape);
}
for (const n of graph.trainable) {
  const shape = graph.params.get(n) as number[];
  feeds[`m/${n}`] = t(state.m.get(n) as Float32Array, shape);
  feeds[`v/${n}`] = t(state.v.get(n) as Float32Array, shape);
}
const scalars: Record<string, number> = { ...BENCH_SCALARS, bc1: 0.1, bc2: 0.001 };
for (const n of graph.scalars) feeds[n] = t(Float32Array.of(scalars[n] ?? 0), []);
feeds.globals = t(
  new Float32Array(32 * 3 * 224 * 224).map(() => rng.normal()),
  [32, 3, 224, 224],
);
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
console.log(JSON.stringify({ threads, runs, peak_rss_mb: process.resourceUsage().maxRSS / 1024, profile: file }));
