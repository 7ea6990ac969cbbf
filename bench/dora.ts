/**
 * One Dora training step (ViT-Ti/16, 224 px, one clip of 8 frames, 3 objects, head 2048-256-4096): ours
 * (bench/dora-worker.ts: batch with the teacher's attention, discovery, tracking, masking, then the step graph on
 * onnxruntime-node) vs PyTorch 1.13 (tools/train_reference.py --dora-bench), same machine, same run. The PyTorch
 * step takes q, k and attention from the teacher's own forward and does no augmentation; ours runs a separate
 * attention pass and augments, so the ratio is an upper bound on the step-graph gap.
 */
import { execFileSync } from 'node:child_process';
import os from 'node:os';
import path from 'node:path';

const ROOT = path.resolve(import.meta.dirname, '..');

function run(cmd: string, args: string[]): Record<string, number | string> {
  const out = execFileSync(cmd, args, { cwd: ROOT, encoding: 'utf8', stdio: ['ignore', 'pipe', 'inherit'] });
  return JSON.parse(out.trim().split('\n').pop() as string);
}

export async function benchDora(): Promise<Record<string, unknown>> {
  const ours = run(process.execPath, ['--import', 'tsx', path.join(ROOT, 'bench', 'dora-worker.ts')]);
  console.error(
    `dora: ours ${Number(ours.s_per_step).toFixed(2)} s/step (batch part ${Number(ours.batch_s).toFixed(2)} s)`,
  );
  const torchRun = (threads: number) =>
    run('/usr/bin/python3', [
      path.join(ROOT, 'tools', 'train_reference.py'),
      '--dora-bench',
      '--threads',
      String(threads),
    ]);
  const t1 = torchRun(1);
  const tn = torchRun(os.availableParallelism());
  const torch = Number(t1.s_per_step) < Number(tn.s_per_step) ? t1 : tn;
  console.error(
    `dora: torch 1 thread ${Number(t1.s_per_step).toFixed(2)} s/step, ${tn.threads} threads ${Number(tn.s_per_step).toFixed(2)} s/step`,
  );
  const r = (x: unknown) => Number(Number(x).toFixed(3));
  return {
    model: 'vit_ti16',
    frames_per_clip: 8,
    objects: 3,
    input: 224,
    s_per_step: r(ours.s_per_step),
    batch_s: r(ours.batch_s),
    torch_s_per_step: r(torch.s_per_step),
    torch_threads: torch.threads,
    ratio_vs_torch: r(Number(ours.s_per_step) / Number(torch.s_per_step)),
    peak_rss_mb: r(ours.peak_rss_mb),
    torch_peak_rss_mb: r(torch.peak_rss_mb),
    graph_build_s: r(ours.build_s),
    provider: ours.provider,
  };
}
