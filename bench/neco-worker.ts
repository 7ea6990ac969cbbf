/**
 * Ours, in its own process: one NeCo step of the setting tools/neco_reference.py --bench times: a ViT-S/16 student
 * and EMA teacher (random init), NeCo head (2048 hidden, 256 out), one image with 2 global crops (224) and 4 local
 * crops (96), 10 crop pairs of 49 aligned patches, references drawn from a full queue of 8192, the diff sort
 * (steepness 100) for student and teacher, loss, backward, AdamW, EMA. The step includes the host part (crops,
 * jitter, RoI matrices, queue draw and push) as the trainer runs it; that part is also reported alone. Wall and
 * process CPU seconds (onnxruntime's threads included).
 *
 *   node --import tsx bench/neco-worker.ts [timed steps, default 2]
 */

import { Rng } from '../native/base/rng.js';
import { necoPairs } from '../native/models/neco.js';
import {
  type Box,
  NecoQueue,
  necoViewInto,
  relativeBoxes,
  roiBatch,
  sampleNecoBoxes,
} from '../native/train/neco-data.js';
import { buildNecoStep, NecoStepRunner, necoParamShapes } from '../native/train/neco-step.js';
import { initialState } from '../native/train/step-runner.js';
import { initParams } from '../native/train/train-dino.js';
import { median } from './reference.js';
import { BENCH_WARMUP, necoBenchConfig, printStep } from './step-common.js';

const timed = Math.max(1, Number(process.argv[2] ?? 2));
const config = necoBenchConfig();
const { vit } = config;
const G = config.globalCrops;
const L = config.localCrops;
const B = config.batch;
const GLOBAL = config.globalSize;
const LOCAL = config.localSize;
const QUEUE = 8192;
const t0 = performance.now();
const graph = buildNecoStep(config);
const runner = await NecoStepRunner.create(graph, config);
const build = (performance.now() - t0) / 1000;
const rng = new Rng(1);
const state = initialState(graph, initParams(necoParamShapes(config), rng));
const pairs = necoPairs(G, L);
const Ng = graph.dims.globalPatches;
const K = config.head.outDim;
// A full queue of unit vectors, as after the first steps of a run.
const queue = new NecoQueue(G, QUEUE, K);
for (const q of queue.rows) {
  for (let r = 0; r < QUEUE; r++) {
    let n = 0;
    for (let j = 0; j < K; j++) {
      const x = rng.next() - 0.5;
      q[r * K + j] = x;
      n += x * x;
    }
    for (let j = 0; j < K; j++) q[r * K + j] = (q[r * K + j] as number) / Math.sqrt(n);
  }
}
queue.entries = QUEUE;
// A 320x240 frame of noise (the tour's frame size).
const W = 320;
const H = 240;
const frame = { width: W, height: H, data: Uint8Array.from({ length: W * H * 3 }, () => rng.int(256)) };
const specs = [
  { size: GLOBAL, scale: [0.25, 1] as [number, number], count: G },
  { size: LOCAL, scale: [0.05, 0.25] as [number, number], count: L },
];
const sizes = [...Array(G).fill(GLOBAL), ...Array(L).fill(LOCAL)] as number[];
const gPlane = 3 * GLOBAL * GLOBAL;
const lPlane = 3 * LOCAL * LOCAL;

const times: number[] = [];
const cpuTimes: number[] = [];
const hostTimes: number[] = [];
const losses: number[] = [];
for (let i = 0; i < BENCH_WARMUP + timed; i++) {
  const s = performance.now();
  const c0 = process.cpuUsage();
  const globals = new Float32Array(G * B * gPlane);
  const locals = new Float32Array(L * B * lPlane);
  const boxes: Box[] = sampleNecoBoxes(W, H, specs, rng);
  boxes.forEach((box, v) => {
    if (v < G) necoViewInto(frame, box, GLOBAL, vit.mean, vit.std, rng, globals, v * gPlane);
    else necoViewInto(frame, box, LOCAL, vit.mean, vit.std, rng, locals, (v - G) * lPlane);
  });
  const roi = roiBatch([relativeBoxes(boxes, sizes, G)], pairs, {
    patch: 16,
    globalGrid: GLOBAL / 16,
    localGrid: LOCAL / 16,
    aligned: 7,
  });
  const plan = queue.plan(rng, B, Ng, pairs, 49);
  const refs = queue.references(plan, pairs, B, Ng);
  const host = performance.now() - s;
  const m = await runner.step(
    state,
    { globals, locals, ...roi, ...refs },
    { lr: 1e-5, lrHead: 1e-4, wd: 0.04, ema: 0.9995 },
  );
  const p0 = performance.now();
  queue.push(plan, m.teacherPatches, B, Ng);
  const push = performance.now() - p0;
  losses.push(m.loss);
  console.error(`neco worker: step ${i} ${((performance.now() - s) / 1000).toFixed(2)} s, loss ${m.loss.toFixed(4)}`);
  if (i >= BENCH_WARMUP) {
    const c = process.cpuUsage(c0);
    cpuTimes.push((c.user + c.system) / 1e6);
    times.push((performance.now() - s) / 1000);
    hostTimes.push((host + push) / 1000);
  }
}
await runner.release();
printStep(times, build, runner, {
  host_s: median(hostTimes),
  s_per_step_mean: times.reduce((a, b) => a + b, 0) / times.length,
  cpu_s_per_step: median(cpuTimes),
  loss: losses[losses.length - 1] as number,
});
