/**
 * One DINO-style training step of ViT-Ti/16 (dim 192, 12 blocks, 3 heads) at 224 px, batch 32 (2 global crops of
 * 16 images), DINO head 2048-256-4096: teacher forward, student forward, loss, backward, global-norm clipping,
 * AdamW, EMA — ours (one ONNX graph on onnxruntime-node, bench/train-worker.ts in its own process) vs PyTorch 1.13
 * (tools/train_reference.py --bench) at 1 thread and all cores through the fair harness (bench/reference.ts).
 * Both sides: median of the timed steps after BENCH_WARMUP (step-common.ts) warm-up steps, peak RSS of their own
 * process; ours in two processes around the reference's (`oursAround`).
 */
import { machine, oursAround, torchReference } from './reference.js';
import { BENCH_WARMUP, REFERENCE_WARMUP_ARGS } from './step-common.js';

export async function benchTrain(): Promise<Record<string, unknown>> {
  const { ours, reference: torch } = oursAround('train-worker.ts', [], (first) => {
    console.error(
      `train: ours ${Number(first.s_per_step).toFixed(2)} s/step (${first.provider}, ${first.threads} threads), peak RSS ${Number(first.peak_rss_mb).toFixed(0)} MB`,
    );
    return torchReference('train', 'train_reference.py', ['--bench', ...REFERENCE_WARMUP_ARGS], undefined, first);
  });
  const r = (x: unknown) => Number(Number(x).toFixed(3));
  return {
    model: 'vit_ti16',
    batch: 32,
    input: 224,
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
    ...machine(),
  };
}
