/**
 * Ingest of a long 720p H.264 video at 1 fps into 224 px frames (catalog, frame store, thumbnail and all) vs a
 * plain `ffmpeg -i in -vf fps=1,scale=224:224 -pix_fmt rgb24 -f rawvideo -` on the same file, in the same run.
 * A 60-minute video (the 10-minute one six times, stream-copied) shows whether memory stays flat.
 */
import { execFileSync, spawn } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { findBinaries } from '../native/media/ffmpeg.js';
import { machine, median, oursWorker, ROOT } from './reference.js';

function makeVideos(dir: string, minutes: number): { ten: string; sixty: string } {
  const ff = findBinaries().ffmpeg.path;
  const ten = path.join(dir, `walk-${minutes}min-720p30.mp4`);
  if (!fs.existsSync(ten)) {
    console.error(`ingest: encoding a ${minutes}-minute 1280x720 30 fps H.264 test video (once; cached in ${dir})…`);
    execFileSync(ff, [
      '-v',
      'error',
      '-y',
      '-f',
      'lavfi',
      '-i',
      `testsrc2=size=1280x720:rate=30:duration=${minutes * 60}`,
      '-c:v',
      'libx264',
      '-preset',
      'ultrafast',
      '-crf',
      '28',
      '-g',
      '60',
      '-pix_fmt',
      'yuv420p',
      `${ten}.tmp.mp4`,
    ]);
    fs.renameSync(`${ten}.tmp.mp4`, ten);
  }
  const sixty = path.join(dir, `walk-${minutes * 6}min-720p30.mp4`);
  if (!fs.existsSync(sixty)) {
    const list = path.join(dir, 'concat.txt');
    fs.writeFileSync(list, Array.from({ length: 6 }, () => `file '${ten}'`).join('\n'));
    execFileSync(ff, ['-v', 'error', '-y', '-f', 'concat', '-safe', '0', '-i', list, '-c', 'copy', `${sixty}.tmp.mp4`]);
    fs.renameSync(`${sixty}.tmp.mp4`, sixty);
  }
  return { ten, sixty };
}

function plainFfmpeg(video: string): Promise<{ s: number; frames: number }> {
  const t0 = performance.now();
  const child = spawn(
    findBinaries().ffmpeg.path,
    ['-v', 'error', '-i', video, '-vf', 'fps=1,scale=224:224', '-pix_fmt', 'rgb24', '-f', 'rawvideo', '-'],
    {
      stdio: ['ignore', 'pipe', 'inherit'],
    },
  );
  let bytes = 0;
  child.stdout.on('data', (d: Buffer) => {
    bytes += d.length;
  });
  return new Promise((resolve, reject) => {
    child.on('close', (code) => {
      if (code !== 0) reject(new Error(`ffmpeg exited with ${code}`));
      else resolve({ s: (performance.now() - t0) / 1000, frames: bytes / (224 * 224 * 3) });
    });
  });
}

function ours(video: string, dir: string): { state: string; s: number; frames: number; peak_rss_mb: number } {
  return oursWorker('ingest-worker.ts', [video, dir]) as {
    state: string;
    s: number;
    frames: number;
    peak_rss_mb: number;
  };
}

/**
 * Feature extraction of the ingested synthetic tour end to end (the `features.extract` job: stored frames read,
 * preprocessed, the model, tokens stored) against the model alone on inputs prepared beforehand, same session
 * shape and batch, at its best of ORT's default session and one whose threads sleep between kernels (as the job's)
 * (bench/extract-worker.ts, its own process): the tour's 200 frames (`extract_*`, the issue's figure), then the tour
 * looped 3 times in one file, 600 frames (`extract_600_*`: fixed costs spread over 3 times the frames, closer to the
 * steady state). Each is run `reps` times, each time in a fresh process, engine and project, the model alone timed
 * beside the job in the same process; the ratio is the median of those runs' ratios (`*_ratio_runs`) and the other
 * figures are the median run's. Beside each: where the job's wall time went (timeline) and CPU ms per frame.
 */
function extraction(): Record<string, unknown> {
  const r = (x: unknown) => Number(Number(x).toFixed(3));
  // The job runs in the built engine, as `npm start` and the CLI run it (bench/engine.ts `built`).
  execFileSync(
    process.execPath,
    [path.join(ROOT, 'node_modules', 'typescript', 'bin', 'tsc'), '-p', 'tsconfig.build.json'],
    { cwd: ROOT, stdio: ['ignore', 2, 2] },
  );
  const one = (loops: number, prefix: string, reps: number) => {
    const all = Array.from({ length: reps }, () => {
      const res = oursWorker('extract-worker.ts', ['', '224', '8', String(loops), '--built']);
      console.error(
        `ingest: extraction (${res.frames} frames) ${Number(res.extract_fps).toFixed(2)} frames/s, model alone ${Number(res.model_only_fps).toFixed(2)} frames/s`,
      );
      return res;
    });
    const ratios = all.map((x) => Number(x.extract_ratio_vs_model_only));
    const res = all.find((x) => Number(x.extract_ratio_vs_model_only) === median(ratios)) ?? all[0] ?? {};
    return {
      [`${prefix}_ratio_vs_model_only`]: r(res.extract_ratio_vs_model_only),
      [`${prefix}_ratio_runs`]: ratios.map(r),
      [`${prefix}_fps`]: r(res.extract_fps),
      [`${prefix}_fps_runs`]: all.map((x) => r(x.extract_fps)),
      [`${prefix}_model_only_fps`]: r(res.model_only_fps),
      [`${prefix}_model_only_fps_runs`]: all.map((x) => r(x.model_only_fps)),
      [`${prefix}_model_only_config`]: res.model_only_config,
      [`${prefix}_model_only_runs_fps`]: res.runs_model_fps,
      [`${prefix}_frames`]: res.frames,
      [`${prefix}_input`]: res.input,
      [`${prefix}_batch`]: res.batch,
      [`${prefix}_threads`]: res.threads,
      [`${prefix}_engine`]: 'build/native',
      [`${prefix}_cpu_ms_per_frame`]: r(res.extract_cpu_ms_per_frame),
      [`${prefix}_model_only_cpu_ms_per_frame`]: r(res.model_only_cpu_ms_per_frame),
      [`${prefix}_timeline`]: res.timeline,
      [`${prefix}_host_stage_cpu_ms_per_frame`]: res.host_stage_cpu_ms_per_frame,
    };
  };
  return { ...one(1, 'extract', 5), ...one(3, 'extract_600', 3) };
}

/** `npm run bench -- ingest [minutes] [--extract-only]` */
export async function benchIngest(args: string[]): Promise<Record<string, unknown>> {
  if (args.includes('--extract-only')) return { ...extraction(), ...machine() };
  const minutes = Number(args.find((a) => !a.startsWith('--')) ?? 10);
  const cache = path.join(os.tmpdir(), 'flaneur-bench-ingest');
  fs.mkdirSync(cache, { recursive: true });
  const { ten, sixty } = makeVideos(cache, minutes);
  const work = fs.mkdtempSync(path.join(os.tmpdir(), 'flaneur-bench-ingest-run-'));
  try {
    const ref = await plainFfmpeg(ten);
    console.error(`ingest: ffmpeg alone ${ref.s.toFixed(2)} s, ${ref.frames} frames`);
    const a = ours(ten, work);
    console.error(`ingest: ours ${a.s.toFixed(2)} s, ${a.frames} frames, peak RSS ${a.peak_rss_mb.toFixed(0)} MB`);
    const b = ours(sixty, work);
    console.error(
      `ingest: ours (${minutes * 6} min) ${b.s.toFixed(2)} s, ${b.frames} frames, peak RSS ${b.peak_rss_mb.toFixed(0)} MB`,
    );
    const r = (x: number) => Number(x.toFixed(3));
    return {
      video_s: minutes * 60,
      fps: 1,
      frames: a.frames,
      frames_ffmpeg: ref.frames,
      s_ours: r(a.s),
      s_ffmpeg: r(ref.s),
      ratio_vs_ffmpeg: r(ref.s / a.s),
      peak_rss_mb_10min: r(a.peak_rss_mb),
      peak_rss_mb_60min: r(b.peak_rss_mb),
      rss_ratio_60_vs_10: r(b.peak_rss_mb / a.peak_rss_mb),
      frames_60min: b.frames,
      s_ours_60min: r(b.s),
      ...extraction(),
      ...machine(),
    };
  } finally {
    fs.rmSync(work, { recursive: true, force: true });
  }
}
