/**
 * The GPU benchmark's measurements, in a process started with the Vulkan driver chosen by bench/gpu.ts: ViT-S/16
 * inference (batch 16) on WebGPU and on the CPU provider, a DINO ViT-Ti/16 step (batch 32 = 2 global crops of 16)
 * on both, a Dora ViT-S/16 step on WebGPU (the teacher's pass for masks and logits, discovery, tracking, masking,
 * then the step graph), the bytes that cross host<->device per training step with the state kept on the GPU and
 * with it copied through host memory, and the nodes of these graphs that the runtime put on the CPU provider.
 *
 * argv[2]: JSON of the sizes (bench/gpu.ts: the full sizes, or the quick ones for a software adapter).
 */

import { Rng } from '../native/base/rng.js';
import type { DinoHeadConfig } from '../native/models/dino-head.js';
import { presetConfig, type ViTConfig, vitParamShapes } from '../native/models/vit.js';
import { buildViTOnnx } from '../native/models/vit-onnx.js';
import { profilePlacement } from '../native/runtime/placement.js';
import { probeProviders } from '../native/runtime/providers.js';
import { ModelSession, ort, type RuntimeSettings } from '../native/runtime/session.js';
import { adapterLine } from '../native/runtime/webgpu-probe.js';
import { buildDinoStep, type DinoStepGraph, dinoParamShapes } from '../native/train/dino-step.js';
import { doraBatch, TeacherAttention } from '../native/train/dora-clips.js';
import { initialState, StepRunner } from '../native/train/step-runner.js';
import { initParams } from '../native/train/train-dino.js';
import { BENCH_SCALARS } from './step-common.js';

export interface GpuBenchSizes {
  /** The inference model and its input size (batch 16). */
  vitPreset: 'vit_s16' | 'vit_ti16';
  vitInput: number;
  /** The DINO step's backbone (ViT-Ti/16, `dinoDepth` blocks), head and crop size (batch 32). */
  dinoDepth: number;
  dinoInput: number;
  head: DinoHeadConfig;
  /** The Dora step's backbone (`doraDepth` blocks), view size, clip length and objects. */
  doraPreset: 'vit_s16' | 'vit_ti16';
  doraDepth: number;
  doraInput: number;
  doraFrames: number;
  doraObjects: number;
  /** Timed repetitions after one warm-up (the fastest is kept). */
  repeats: number;
}

const sizes = JSON.parse(process.argv[2] ?? '{}') as GpuBenchSizes;
const WEBGPU: RuntimeSettings = { provider: 'webgpu', threads: null };
const CPU: RuntimeSettings = { provider: 'cpu', threads: null };
const log = (s: string) => console.error(`gpu: ${s}`);
const fallbackNodes: Record<string, number> = {};
const shapeNodes: Record<string, number> = {};

async function fastest(repeats: number, fn: () => Promise<void>): Promise<number> {
  await fn(); // warm-up (shader compilation, first allocations)
  let best = Number.POSITIVE_INFINITY;
  for (let i = 0; i < repeats; i++) {
    const t0 = performance.now();
    await fn();
    best = Math.min(best, (performance.now() - t0) / 1000);
  }
  return best;
}

async function placement(name: string, onnx: Uint8Array, feeds: Record<string, ort.Tensor>): Promise<void> {
  const p = await profilePlacement(onnx, feeds, 'webgpu');
  fallbackNodes[name] = p.cpuNodes.length;
  shapeNodes[name] = p.shapeNodes.length;
  if (p.cpuNodes.length)
    log(`${name}: on the CPU provider: ${p.cpuNodes.map((n) => `${n.name} (${n.op})`).join(', ')}`);
}

async function vitThroughput(): Promise<{ webgpu: number; cpu: number }> {
  const config = presetConfig(sizes.vitPreset);
  const s = sizes.vitInput;
  const onnx = buildViTOnnx(
    { config, weights: initParams(vitParamShapes(config), new Rng(1)) },
    { height: s, width: s, batch: 16, outputs: { cls: true, patches: true } },
  );
  const rng = new Rng(2);
  const feeds = {
    pixels: new ort.Tensor(
      'float32',
      Float32Array.from({ length: 16 * 3 * s * s }, () => rng.normal()),
      [16, 3, s, s],
    ),
  };
  const out: Record<string, number> = {};
  for (const [name, settings] of [
    ['webgpu', WEBGPU],
    ['cpu', CPU],
  ] as const) {
    const session = await ModelSession.create(onnx, settings);
    if (session.info.provider !== name)
      throw new Error(`the ViT session runs on ${session.info.provider}, not ${name}`);
    const t = await fastest(sizes.repeats, async () => {
      await session.run(feeds);
    });
    await session.release();
    out[name] = 16 / t;
    log(`${sizes.vitPreset} ${s} px batch 16 on ${name}: ${(16 / t).toFixed(2)} img/s`);
  }
  await placement('vit', onnx, feeds);
  return { webgpu: out.webgpu as number, cpu: out.cpu as number };
}

/** The initial state of a step graph: parameters drawn as the trainer does. */
function benchState(graph: DinoStepGraph, vit: ViTConfig, rng: Rng) {
  return initialState(graph, initParams(dinoParamShapes({ vit, head: { ...sizes.head, inDim: vit.dim } }), rng));
}

const dinoVit: ViTConfig = { ...presetConfig('vit_ti16'), depth: sizes.dinoDepth };

function dinoGraph(): DinoStepGraph {
  return buildDinoStep({
    vit: dinoVit,
    head: { ...sizes.head, inDim: dinoVit.dim },
    batch: 16,
    globalSize: sizes.dinoInput,
    globalCrops: 2,
    localSize: 96,
    localCrops: 0,
  });
}

async function dinoStep(): Promise<{
  webgpu: number;
  cpu: number;
  onDevice: { hostToDevice: number; deviceToHost: number };
  viaHost: { hostToDevice: number; deviceToHost: number };
}> {
  const graph = dinoGraph();
  const s = sizes.dinoInput;
  const shapes = { globals: [32, 3, s, s], locals: null };
  const rng = new Rng(3);
  const globals = Float32Array.from({ length: 32 * 3 * s * s }, () => rng.normal());
  const time: Record<string, number> = {};
  const transfers: Record<string, { hostToDevice: number; deviceToHost: number }> = {};
  for (const [name, settings, keep] of [
    ['webgpu', WEBGPU, true],
    ['webgpu-via-host', WEBGPU, false],
    ['cpu', CPU, false],
  ] as const) {
    const runner = await StepRunner.create(graph, shapes, settings, undefined, keep);
    const state = benchState(graph, dinoVit, new Rng(4));
    const step = async () => {
      await runner.step(state, { globals }, BENCH_SCALARS);
    };
    if (name === 'webgpu-via-host') {
      // Only the bytes: one step with the state copied through host memory both ways, as before.
      await step();
      transfers[name] = runner.lastTransfer as { hostToDevice: number; deviceToHost: number };
      await runner.release();
      log(`DINO step with the state through the host: ${JSON.stringify(transfers[name])} bytes`);
      continue;
    }
    const t = await fastest(sizes.repeats, step);
    if (runner.lastTransfer) transfers[name] = runner.lastTransfer;
    if (name === 'webgpu') {
      log(`DINO step with the state kept on the GPU: ${JSON.stringify(runner.lastTransfer)} bytes`);
      const feeds = runner.stepFeeds(benchState(graph, dinoVit, new Rng(4)), { globals }, BENCH_SCALARS);
      await placement('dino_step', graph.onnx, feeds);
    }
    await runner.release();
    time[name] = t;
    log(`DINO ViT-Ti/16 (${dinoVit.depth} blocks) step, batch 32 at ${s} px, on ${name}: ${t.toFixed(2)} s/step`);
  }
  return {
    webgpu: time.webgpu as number,
    cpu: time.cpu as number,
    onDevice: transfers.webgpu as { hostToDevice: number; deviceToHost: number },
    viaHost: transfers['webgpu-via-host'] as { hostToDevice: number; deviceToHost: number },
  };
}

async function doraStep(): Promise<number> {
  const vit: ViTConfig = { ...presetConfig(sizes.doraPreset), depth: sizes.doraDepth };
  const head = { ...sizes.head, inDim: vit.dim };
  const F = sizes.doraFrames;
  const K = sizes.doraObjects;
  const s = sizes.doraInput;
  const graph = buildDinoStep({
    vit,
    head,
    batch: F,
    globalSize: s,
    globalCrops: K,
    localSize: 96,
    localCrops: 0,
    dora: true,
  });
  const runner = await StepRunner.create(graph, { globals: [K * F, 3, s, s], locals: null }, WEBGPU);
  const attention = await TeacherAttention.create(vit, s, WEBGPU, head);
  const rng = new Rng(5);
  const state = benchState(graph, vit, rng);
  // A 2-fps-like "video" of noise, twice the clip's span.
  const w = Math.round((s * 4) / 3);
  const video = Array.from({ length: 4 * F + 8 }, () => Uint8Array.from({ length: w * s * 3 }, () => rng.int(256)));
  const source = { frames: video.length, read: (i: number) => ({ width: w, height: s, data: video[i] as Uint8Array }) };
  let teacherLogits: Float32Array | undefined;
  const t = await fastest(sizes.repeats, async () => {
    const b = await doraBatch(
      [source],
      1,
      s,
      { size: 96, scale: [0.05, 0.4], count: 0 },
      { framesPerClip: F, stride: 2, objects: K, epsilon: 0.05, iterations: 30, grayscaleP: 0.2, blurP: 0.1 },
      { mean: vit.mean, std: vit.std, patch: vit.patchSize, heads: vit.heads },
      rng,
      (views, count) => attention.run(views, count, runner.teacherWeights(state), graph.params),
    );
    teacherLogits = b.teacherLogits;
    await runner.step(
      state,
      { globals: b.masked, ...(b.teacherLogits ? { teacherLogits: b.teacherLogits } : {}) },
      BENCH_SCALARS,
    );
  });
  log(
    `Dora ${sizes.doraPreset} (${vit.depth} blocks) step, ${F} frames x ${K} objects at ${s} px, on ${runner.provider}: ${t.toFixed(2)} s/step`,
  );
  const feeds = runner.stepFeeds(
    benchState(graph, vit, new Rng(5)),
    {
      globals: Float32Array.from({ length: K * F * 3 * s * s }, () => rng.normal()),
      ...(teacherLogits ? { teacherLogits } : {}),
    },
    BENCH_SCALARS,
  );
  // Profiled while the runner holds its state (the feeds' state tensors live in its GPU memory).
  await placement('dora_step', graph.onnx, feeds);
  await runner.release();
  await attention.release();
  return t;
}

const webgpu = (await probeProviders()).find((p) => p.name === 'webgpu');
if (!webgpu?.available) {
  console.log(JSON.stringify({ error: `No WebGPU adapter: ${webgpu?.reason ?? 'unknown'}` }));
  process.exit(0);
}
log(`adapter: ${webgpu.adapter ? adapterLine(webgpu.adapter) : 'unnamed'}`);
const vitR = await vitThroughput();
const dino = await dinoStep();
const dora = await doraStep();
const mb = (t: { hostToDevice: number; deviceToHost: number }) => (t.hostToDevice + t.deviceToHost) / 2 ** 20;
const r = (x: number, d = 3) => Number(x.toPrecision(d));
console.log(
  JSON.stringify({
    adapter: webgpu.adapter ? adapterLine(webgpu.adapter) : null,
    software: webgpu.adapter?.software ?? null,
    vit_s16_b16_imgs_per_s_webgpu: r(vitR.webgpu),
    vit_s16_b16_imgs_per_s_cpu: r(vitR.cpu),
    dino_ti16_b32_s_per_step_webgpu: r(dino.webgpu),
    dino_ti16_b32_s_per_step_cpu: r(dino.cpu),
    dora_s16_64f_s_per_step_webgpu: r(dora),
    host_device_mb_per_step: r(mb(dino.onDevice)),
    host_device_mb_per_step_state_through_host: r(mb(dino.viaHost)),
    host_device_bytes_per_step: dino.onDevice,
    host_device_bytes_per_step_state_through_host: dino.viaHost,
    cpu_fallback_nodes: Object.values(fallbackNodes).reduce((a, n) => a + n, 0),
    cpu_fallback_nodes_by_graph: fallbackNodes,
    int64_shape_nodes_on_cpu_by_graph: shapeNodes,
  }),
);
