/**
 * One DINO-style training step of ViT-Ti/16 (dim 192, 12 blocks, 3 heads) at 224 px, batch 32 (2 global crops of
 * 16 images), DINO head 2048-256-4096: teacher forward, student forward, loss, backward, global-norm clipping,
 * AdamW, EMA — ours (one ONNX graph on onnxruntime-node) vs PyTorch 1.13 (tools/train_reference.py --bench), same
 * machine, same run. Peak RSS of ours is measured in its own process.
 */
import { execFileSync } from 'node:child_process';
import os from 'node:os';
import path from 'node:path';

const ROOT = path.resolve(import.meta.dirname, '..');

function torchStep(threads: number): { s_per_step: number; peak_rss_mb: number; threads: number } {
  const out = execFileSync(
    '/usr/bin/python3',
    [path.join(ROOT, 'tools', 'train_reference.py'), '--bench', '--threads', String(threads)],
    {
      encoding: 'utf8',
      stdio: ['ignore', 'pipe', 'inherit'],
    },
  );
  return JSON.parse(out.trim().split('\n').pop() as string);
}

function oursStep(): { s_per_step: number; peak_rss_mb: number; build_s: number; provider: string } {
  const out = execFileSync(process.execPath, ['--import', 'tsx', path.join(ROOT, 'bench', 'train-worker.ts')], {
    cwd: ROOT,
    encoding: 'utf8',
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  return JSON.parse(out.trim().split('\n').pop() as string);
}

export async function benchTrain(): Promise<Record<string, unknown>> {
  const ours = oursStep();
  console.error(
    `train: ours ${ours.s_per_step.toFixed(2)} s/step (${ours.provider}), peak RSS ${ours.peak_rss_mb.toFixed(0)} MB`,
  );
  // PyTorch is timed with 1 thread and with all cores; the faster is the reference (on 2 cores OpenBLAS and
  // OpenMP threads can oversubscribe).
  const t1 = torchStep(1);
  const tn = torchStep(os.availableParallelism());
  const torch = t1.s_per_step < tn.s_per_step ? t1 : tn;
  console.error(
    `train: torch 1 thread ${t1.s_per_step.toFixed(2)} s/step, ${tn.threads} threads ${tn.s_per_step.toFixed(2)} s/step`,
  );
  const r = (x: number) => Number(x.toFixed(3));
  return {
    model: 'vit_ti16',
    batch: 32,
    input: 224,
    s_per_step: r(ours.s_per_step),
    torch_s_per_step: r(torch.s_per_step),
    torch_threads: torch.threads,
    ratio_vs_torch: r(ours.s_per_step / torch.s_per_step),
    peak_rss_mb: r(ours.peak_rss_mb),
    torch_peak_rss_mb: r(torch.peak_rss_mb),
    graph_build_s: r(ours.build_s),
  };
}
