/**
 * Feature extraction end to end vs the model alone, in its own process:
 *   node --import tsx bench/extract-worker.ts [model.safetensors] [size] [batch] [loops] [--built]
 * Ingests the synthetic tour (tests/fixtures/synthetic/tour.mp4, 10 fps: 200 frames of 320x240; `loops` > 1: the
 * tour played that many times in one file, 200 × loops frames, for the steady state), imports the model
 * (default: the bundled ViT-Ti/16), then times the `features.extract` job (stored frames read, preprocessed, the
 * model, tokens converted and stored; `--built`: in the engine of build/native, as the app runs it) and the model alone: the same session shape and batch on inputs prepared
 * beforehand, as many frames. Prints one JSON line: frames/s of both and their ratio, and where the extraction's
 * CPU goes: CPU ms per frame of the model alone (every thread of this process) and of the job (this process and the
 * engine's job worker process that runs it, with its decode-ahead thread: Linux's /proc), the session build, and the host stages timed alone on this thread afterwards (stored frames read,
 * resize + normalise, the tokens stored; the f16 conversion is the graph's Cast) — CPU seconds, less sensitive to a
 * loaded machine than wall — and the job's timeline (extract-timeline.ts): fixed seconds and steady ms per frame.
 */

import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import * as ort from 'onnxruntime-node';
import { ensureRun, loadRegisteredModel } from '../native/features/extract.js';
import type { ExtractTimelineJson, TimelineBatch, TimelineMark } from '../native/features/extract-timeline.js';
import { prepareBatch } from '../native/features/prepare-ahead.js';
import { findBinaries } from '../native/media/ffmpeg.js';
import { FrameStore } from '../native/media/frame-store.js';
import { inputShape } from '../native/models/preprocess.js';
import { buildViTOnnx } from '../native/models/vit-onnx.js';
import { ModelSession } from '../native/runtime/session.js';
import { addTour, TOUR, tempEngine } from './engine.js';
import { median, ROOT } from './reference.js';

const BUNDLED = path.join(ROOT, 'models', 'default', 'flaneur-vit-ti16-dora-vtest.safetensors');
const argv = process.argv.slice(2);
const built = argv.includes('--built');
const [fileArg, sizeArg = '224', batchArg = '8', loopsArg = '1'] = argv.filter((a) => a !== '--built');
const file = fileArg || BUNDLED;
const size = Number(sizeArg);
const batch = Number(batchArg);
const loops = Number(loopsArg);

/**
 * The job's timeline from the bench's call: seconds at each moment (from the call), the fixed part (the wall time
 * less the frames after the first batch at the steady rate) and the per-frame part, and the job process's CPU ms
 * (all its threads: model, decode-ahead, store) between moments.
 */
function timelineOf(tl: ExtractTimelineJson, epoch0: number): Record<string, unknown> {
  const at = (name: string) => tl.marks.find((m) => m.at === name) as TimelineMark;
  const s = (ms: number) => +(ms / 1000).toFixed(3);
  const [first, ...rest] = tl.batches;
  const sum = (k: keyof TimelineBatch, bs: TimelineBatch[]) => bs.reduce((a, b) => a + b[k], 0);
  const restFrames = sum('frames', rest);
  const steadyMs =
    restFrames > 0 ? (sum('wait_ms', rest) + sum('model_ms', rest) + sum('store_ms', rest)) / restFrames : 0;
  const firstEnd = first ? at('session ready').t + first.wait_ms + first.model_ms + first.store_ms : 0;
  const end = at('job end');
  const cpu = (a: string, b: string) => +(at(b).cpu_ms - at(a).cpu_ms).toFixed(0);
  return {
    at_s: Object.fromEntries(tl.marks.map((m) => [m.at, s(m.t - epoch0)])),
    first_batch: first && {
      frames: first.frames,
      wait_s: s(first.wait_ms),
      model_s: s(first.model_ms),
      store_s: s(first.store_ms),
    },
    first_batch_done_s: s(firstEnd - epoch0),
    steady_ms_per_frame: {
      all: +steadyMs.toFixed(2),
      wait: +(sum('wait_ms', rest) / restFrames).toFixed(2),
      model: +(sum('model_ms', rest) / restFrames).toFixed(2),
      store: +(sum('store_ms', rest) / restFrames).toFixed(2),
    },
    fixed_s: s(end.t - epoch0 - steadyMs * restFrames),
    job_cpu_ms: {
      start_to_session_ready: cpu('job start', 'session ready'),
      session_ready_to_end: cpu('session ready', 'job end'),
    },
  };
}

const { work, engine, call, close } = await tempEngine('flaneur-bench-extract-', { built });
try {
  const runner = engine.requireProject().runner;
  let tour = TOUR;
  if (loops > 1) {
    tour = path.join(work, `tour-x${loops}.mp4`);
    const ff = findBinaries().ffmpeg.path;
    execFileSync(ff, ['-v', 'error', '-y', '-stream_loop', String(loops - 1), '-i', TOUR, '-c', 'copy', tour]);
  }
  await addTour({ engine, call }, tour);
  const model = (await call('models.import', { path: file, name: 'bench' })) as { id: number };
  const media = (await call('library.list', {})) as {
    items: { id: number; frameCount: number; frameWidth: number; frameHeight: number }[];
  };
  const m = media.items[0];
  if (!m) throw new Error('the tour was not ingested');
  const frames = m.frameCount;

  // The model alone: one session at the frames' input shape, batches of random inputs prepared beforehand.
  const { project } = engine.requireProject();
  const { model: vit, sha256 } = loadRegisteredModel(project, model.id);
  const shape = inputShape(m.frameWidth, m.frameHeight, size, vit.config.patchSize, 'aspect');
  const cpuMs = (c: NodeJS.CpuUsage) => (c.user + c.system) / 1000;
  // The job runs in the engine's job worker (a child process): CPU ms of this process and its descendants (Linux).
  const treeCpuMs = (): number => {
    let ms = cpuMs(process.cpuUsage());
    const visit = (pid: number) => {
      let tasks: string[] = [];
      try {
        tasks = fs.readdirSync(`/proc/${pid}/task`);
      } catch {
        return;
      }
      for (const t of tasks)
        for (const c of fs.readFileSync(`/proc/${pid}/task/${t}/children`, 'utf8').split(' ').filter(Boolean)) {
          try {
            const f = fs.readFileSync(`/proc/${c}/stat`, 'utf8').split(') ')[1]?.split(' ') ?? [];
            ms += ((Number(f[11]) || 0) + (Number(f[12]) || 0)) * 10; // utime, stime in 1/100 s
          } catch {
            continue;
          }
          visit(Number(c));
        }
    };
    if (process.platform === 'linux') visit(process.pid);
    return ms;
  };
  // The model alone at its best: ORT's default session (intra-op threads spinning) and the one the job makes
  // (threads sleeping between kernels), both timed, alternating; the faster one is the reference.
  const onnx = buildViTOnnx(vit, {
    height: shape.height,
    width: shape.width,
    outputs: { cls: true, patches: true },
    fused: true,
  });
  const b0 = performance.now();
  const bc0 = process.cpuUsage();
  const sessions = {
    spinning: await ModelSession.create(onnx),
    sleeping: await ModelSession.create(onnx, undefined, { spinning: false }),
  };
  const build = { s: (performance.now() - b0) / 2000, cpu_s: cpuMs(process.cpuUsage(bc0)) / 2000 };
  const session = sessions.spinning;
  const x = new ort.Tensor(
    'float32',
    new Float32Array(batch * 3 * shape.height * shape.width).map((_, i) => Math.sin(i)),
    [batch, 3, shape.height, shape.width],
  );
  type Config = keyof typeof sessions;
  const modelRuns: Record<Config, number[]> = { spinning: [], sleeping: [] };
  const modelCpu: Record<Config, number[]> = { spinning: [], sleeping: [] };
  for (const s of Object.values(sessions)) await s.run({ pixels: x }, ['cls', 'patches']); // warm-up
  for (const config of ['spinning', 'sleeping', 'sleeping', 'spinning'] as const) {
    const s = sessions[config];
    const t0 = performance.now();
    const c0 = process.cpuUsage();
    for (let done = 0; done < frames; done += batch) await s.run({ pixels: x }, ['cls', 'patches']);
    const n = Math.ceil(frames / batch) * batch;
    modelCpu[config].push(cpuMs(process.cpuUsage(c0)) / n);
    modelRuns[config].push(n / ((performance.now() - t0) / 1000));
  }
  for (const s of Object.values(sessions)) await s.release();
  const best: Config = median(modelRuns.spinning) >= median(modelRuns.sleeping) ? 'spinning' : 'sleeping';

  // End to end: the extraction job, once (a second run would reuse the stored features); its session build
  // included, as a user's run has it.
  // The job writes its timeline (extract-timeline.ts); the job worker takes the engine's environment at job start.
  const timelineFile = path.join(work, 'extract-timeline.json');
  process.env.FLANEUR_EXTRACT_TIMELINE = timelineFile;
  const t0 = performance.now();
  const epoch0 = performance.timeOrigin + t0;
  const xc0 = treeCpuMs();
  await call('features.extract', { modelId: model.id, size, batch });
  await runner.idle();
  const extractWall = (performance.now() - t0) / 1000;
  const extractFps = frames / extractWall;
  const extractCpu = (treeCpuMs() - xc0) / frames;
  delete process.env.FLANEUR_EXTRACT_TIMELINE;
  const timeline = timelineOf(JSON.parse(fs.readFileSync(timelineFile, 'utf8')) as ExtractTimelineJson, epoch0);

  // The job's host stages alone, on this thread, per frame: stored frames read, resize + normalise, f16 tokens.
  const store = new FrameStore(project.cacheDir);
  const stage = (f: () => void) => {
    const c0 = process.cpuUsage();
    f();
    return cpuMs(process.cpuUsage(c0)) / frames;
  };
  const images: { width: number; height: number; data: Uint8Array }[] = [];
  const readMs = stage(() => {
    for (let i = 0; i < frames; i++) images.push(store.image(m.id, i, m.frameWidth, m.frameHeight));
  });
  const spec = { shape, mean: vit.config.mean, std: vit.config.std };
  // Into one batch buffer, as the decode-ahead thread fills the buffers the job gives back (the last, short, apart).
  const into = new Float32Array(batch * 3 * shape.height * shape.width);
  const prepMs = stage(() => {
    for (let i = 0; i < frames; i += batch) {
      const some = images.slice(i, i + batch);
      prepareBatch(some, spec, some.length === batch ? into : undefined);
    }
  });
  // The job's stored rows again, batch by batch, into a run of their own (another input size).
  const run = ensureRun(project, model.id, sha256, vit, size);
  const again = ensureRun(project, model.id, sha256, vit, size + vit.config.patchSize);
  const rows = Array.from({ length: frames }, (_, i) => {
    const f = project.features.get(run.id, m.id, i);
    if (!f) throw new Error(`frame ${i} was not stored`);
    return { mediaId: m.id, frameIdx: i, ...f };
  });
  const storeMs = stage(() => {
    for (let i = 0; i < frames; i += batch) project.features.putMany(again.id, rows.slice(i, i + batch));
  });
  const modelFps = median(modelRuns[best]);
  console.log(
    JSON.stringify({
      frames,
      input: [shape.height, shape.width],
      batch,
      model_only_fps: modelFps,
      extract_fps: extractFps,
      extract_ratio_vs_model_only: extractFps / modelFps,
      model_only_config: best,
      runs_model_fps: modelRuns,
      model_only_cpu_ms_per_frame: median(modelCpu[best]),
      extract_cpu_ms_per_frame: extractCpu,
      extract_s: extractWall,
      timeline,
      session_build_s: build.s,
      session_build_cpu_s: build.cpu_s,
      host_stage_cpu_ms_per_frame: { read: readMs, resize_normalise: prepMs, store: storeMs },
      provider: session.info.provider,
      threads: session.info.threads,
      peak_rss_mb: process.resourceUsage().maxRSS / 1024,
    }),
  );
} finally {
  await close();
}
