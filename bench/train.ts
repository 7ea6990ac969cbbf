/**
 * One DINO-style training step of ViT-Ti/16 (dim 192, 12 blocks, 3 heads) at 224 px, batch 32 (2 global crops of
 * 16 images), DINO head 2048-256-4096: teacher forward, student forward, loss, backward, global-norm clipping,
 * AdamW, EMA — ours (one ONNX graph on onnxruntime-node, bench/train-worker.ts in its own process) vs PyTorch 1.13
 * (tools/train_reference.py --bench) at 1 thread and all cores through the fair harness (bench/reference.ts).
 * Both sides: median of the timed steps after BENCH_WARMUP (step-common.ts) warm-up steps, peak RSS of their own
 * process; ours in two processes around the reference's (`oursAround`).
 */
import { machine, oursAround, torchReference } from './reference.js';
import { REFERENCE_WARMUP_ARGS, stepFigures } from './step-common.js';

export async function benchTrain(): Promise<Record<string, unknown>> {
  const { ours, reference: torch } = oursAround('train-worker.ts', [], (first) => {
    console.error(
      `train: ours ${Number(first.s_per_step).toFixed(2)} s/step (${first.provider}, ${first.threads} threads), peak RSS ${Number(first.peak_rss_mb).toFixed(0)} MB`,
    );
    return torchReference('train', 'train_reference.py', ['--bench', ...REFERENCE_WARMUP_ARGS], undefined, first);
  });
  return {
    model: 'vit_ti16',
    batch: 32,
    input: 224,
    ...stepFigures(ours, torch),
    ...machine(),
  };
}
