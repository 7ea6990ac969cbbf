/**
 * ViT-S/16 at 224 px (and 224x400): our graph (built from the same weights, with ONNX Runtime's fused kernels) vs
 * the same architecture exported by torch.onnx, both in onnxruntime-node with the same session options (all cores;
 * the thread count is in the JSON), in this process, interleaved, median of several rounds. Needs Debian's python3-torch to export
 * the reference once (tools/export_vit_onnx.py); the files are cached in the temp folder.
 */
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import * as ort from 'onnxruntime-node';
import { importViTFile } from '../native/models/import-vit.js';
import { buildViTOnnx } from '../native/models/vit-onnx.js';
import { machine, median, ROOT, TORCH_PYTHON } from './reference.js';

/** The torch.onnx export of the reference at `h`x`w` (the same random weights at every size: seed 7). */
function ensureReference(dir: string, preset: string, h: number, w: number): string {
  const file = path.join(dir, h === 224 && w === 224 ? `${preset}.torch.onnx` : `${preset}.${h}x${w}.torch.onnx`);
  if (fs.existsSync(file)) return file;
  console.error(`vit: exporting the torch.onnx reference at ${h}x${w} into ${dir} (python3-torch)…`);
  try {
    execFileSync(
      TORCH_PYTHON,
      [path.join(ROOT, 'tools', 'export_vit_onnx.py'), dir, '--preset', preset, '--size', `${h}x${w}`],
      { stdio: ['ignore', 'ignore', 'inherit'] },
    );
    return file;
  } catch (err) {
    throw new Error(
      `The vit benchmark needs Debian's python3-torch and python3-onnx (apt-get install python3-torch python3-onnx libopenblas0-pthread): ${(err as Error).message}`,
    );
  }
}

async function throughput(
  session: ort.InferenceSession,
  batch: number,
  seconds: number,
  h: number,
  w: number,
): Promise<number> {
  const x = new ort.Tensor(
    'float32',
    new Float32Array(batch * 3 * h * w).map((_, i) => Math.sin(i)),
    [batch, 3, h, w],
  );
  await session.run({ pixels: x }); // warm-up
  let n = 0;
  const t0 = performance.now();
  const c0 = process.cpuUsage();
  while (performance.now() - t0 < seconds * 1000) {
    await session.run({ pixels: x });
    n += batch;
  }
  const c = process.cpuUsage(c0);
  cpuMs.push((c.user + c.system) / 1000 / n);
  return n / ((performance.now() - t0) / 1000);
}

/** CPU milliseconds per image of each `throughput` call, in call order (read beside the wall figures: less
 * sensitive to other programs on the machine, though onnxruntime's spinning threads count in it too). */
let cpuMs: number[] = [];

interface SizeResult {
  /** Median CPU ms per image at batch 16. */
  cpuOurs16: number;
  cpuTorch16: number;
  b1: number;
  b16: number;
  torch1: number;
  torch16: number;
  rounds: Record<string, number[]>;
  maxDiff: number;
  buildMs: number;
  bytes: number;
}

/** Ours (fused or plain) against the torch.onnx export at one input size: median of `rounds` interleaved rounds. */
async function benchSize(
  model: ReturnType<typeof importViTFile>,
  reference: string,
  h: number,
  w: number,
  o: { seconds: number; rounds: number; fused: boolean; batch1: boolean; options: ort.InferenceSession.SessionOptions },
): Promise<SizeResult> {
  const t0 = performance.now();
  const ours = buildViTOnnx(model, { height: h, width: w, outputs: { cls: true }, fused: o.fused });
  const buildMs = performance.now() - t0;
  const oursSession = await ort.InferenceSession.create(ours, o.options);
  const torchSession = await ort.InferenceSession.create(reference, o.options);
  // Same numbers from both graphs?
  const probe = new ort.Tensor(
    'float32',
    new Float32Array(2 * 3 * h * w).map((_, i) => Math.cos(i * 0.37)),
    [2, 3, h, w],
  );
  const a = (await oursSession.run({ pixels: probe })).cls?.data as Float32Array;
  const b = (await torchSession.run({ pixels: probe })).cls?.data as Float32Array;
  let maxDiff = 0;
  for (let i = 0; i < a.length; i++) maxDiff = Math.max(maxDiff, Math.abs((a[i] as number) - (b[i] as number)));
  // Interleaved so drift on a shared machine hits both; the median of the rounds.
  const rounds: Record<string, number[]> = { ours1: [], torch1: [], ours16: [], torch16: [] };
  const cpu: Record<string, number[]> = { ours16: [], torch16: [] };
  for (let round = 0; round < o.rounds; round++) {
    if (o.batch1) {
      rounds.ours1?.push(await throughput(oursSession, 1, o.seconds, h, w));
      rounds.torch1?.push(await throughput(torchSession, 1, o.seconds, h, w));
    }
    cpuMs = [];
    rounds.ours16?.push(await throughput(oursSession, 16, o.seconds, h, w));
    rounds.torch16?.push(await throughput(torchSession, 16, o.seconds, h, w));
    cpu.ours16?.push(cpuMs[0] as number);
    cpu.torch16?.push(cpuMs[1] as number);
    console.error(
      `vit ${h}x${w}: round ${round + 1}: ${Object.entries(rounds)
        .map(([k, v]) => `${k} ${v.at(-1)?.toFixed(2) ?? '-'}`)
        .join(', ')} img/s (load ${os.loadavg()[0]?.toFixed(1)})`,
    );
  }
  await oursSession.release();
  await torchSession.release();
  const med = (k: string) => ((rounds[k]?.length ?? 0) > 0 ? median(rounds[k] as number[]) : Number.NaN);
  return {
    cpuOurs16: median(cpu.ours16 as number[]),
    cpuTorch16: median(cpu.torch16 as number[]),
    b1: med('ours1'),
    b16: med('ours16'),
    torch1: med('torch1'),
    torch16: med('torch16'),
    rounds,
    maxDiff,
    buildMs,
    bytes: ours.length,
  };
}

/**
 *   npm run bench -- vit [preset] [seconds] [--rounds N] [--plain] [--no-wide] [--no-b1]
 *
 * ViT-S/16 at 224x224 (batch 1 and 16) and 224x400 (batch 16); `--plain` builds our graph without ONNX Runtime's
 * fused kernels (the unfused graph, for comparison).
 */
export async function benchVit(args: string[]): Promise<Record<string, unknown>> {
  const positional = args.filter((a, i) => !a.startsWith('--') && args[i - 1] !== '--rounds');
  const preset = positional[0] ?? 'vit_s16';
  const seconds = Number(positional[1] ?? 4);
  const ri = args.indexOf('--rounds');
  const rounds = ri >= 0 ? Number(args[ri + 1]) : 3;
  const fused = !args.includes('--plain');
  const dir = path.join(os.tmpdir(), 'flaneur-bench-vit');
  const threads = os.availableParallelism();
  const options: ort.InferenceSession.SessionOptions = {
    executionProviders: ['cpu'],
    intraOpNumThreads: threads,
    interOpNumThreads: 1,
    graphOptimizationLevel: 'all',
  };
  const square = ensureReference(dir, preset, 224, 224);
  const wideRef = args.includes('--no-wide') ? null : ensureReference(dir, preset, 224, 400);
  const model = importViTFile(path.join(dir, `${preset}.official.safetensors`));
  const o = { seconds, rounds, fused, options };
  const s = await benchSize(model, square, 224, 224, { ...o, batch1: !args.includes('--no-b1') });
  const wide = wideRef ? await benchSize(model, wideRef, 224, 400, { ...o, batch1: false }) : null;
  const r = (x: number) => Number(x.toFixed(3));
  return {
    model: preset,
    input: 224,
    fused_kernels: fused,
    threads,
    torch_onnx_threads: threads,
    rounds,
    seconds_per_measure: seconds,
    graph_build_ms: r(s.buildMs),
    onnx_bytes_ours: s.bytes,
    max_abs_diff_cls_vs_torch_onnx: s.maxDiff,
    imgs_per_s_b1: r(s.b1),
    imgs_per_s_b16: r(s.b16),
    torch_onnx_imgs_per_s_b1: r(s.torch1),
    torch_onnx_imgs_per_s_b16: r(s.torch16),
    ratio_vs_torch_onnx: r(s.b16 / s.torch16),
    ratio_vs_torch_onnx_b1: r(s.b1 / s.torch1),
    cpu_ms_per_img_b16: r(s.cpuOurs16),
    torch_onnx_cpu_ms_per_img_b16: r(s.cpuTorch16),
    cpu_ratio_vs_torch_onnx: r(s.cpuTorch16 / s.cpuOurs16),
    rounds_imgs_per_s: s.rounds,
    ...(wide
      ? {
          imgs_per_s_b16_224x400: r(wide.b16),
          torch_onnx_imgs_per_s_b16_224x400: r(wide.torch16),
          ratio_vs_torch_onnx_224x400: r(wide.b16 / wide.torch16),
          cpu_ratio_vs_torch_onnx_224x400: r(wide.cpuTorch16 / wide.cpuOurs16),
          max_abs_diff_cls_vs_torch_onnx_224x400: wide.maxDiff,
          rounds_imgs_per_s_224x400: wide.rounds,
        }
      : {}),
    ...machine(),
  };
}
