/**
 * One Dora training step (ViT-Ti/16, 224 px, one clip of 8 frames, 3 objects, head 2048-256-4096): ours
 * (bench/dora-worker.ts: batch with the teacher's attention, discovery, tracking, masking, then the step graph on
 * onnxruntime-node) vs PyTorch 1.13 (tools/train_reference.py --dora-bench) at 1 thread and all cores through the
 * fair harness (bench/reference.ts). The PyTorch step takes q, k and attention from the teacher's own forward and
 * does no augmentation; ours runs a separate attention pass and augments, so the ratio is an upper bound on the
 * step-graph gap. Both sides: median of the timed steps after BENCH_WARMUP (step-common.ts) warm-up steps, peak
 * RSS of their own process; ours in two processes around the reference's (`oursAround`).
 */
import { machine, oursAround, torchReference } from './reference.js';
import { REFERENCE_WARMUP_ARGS, stepFigures } from './step-common.js';

export async function benchDora(): Promise<Record<string, unknown>> {
  const { ours, reference: torch } = oursAround('dora-worker.ts', [], (first) => {
    console.error(
      `dora: ours ${Number(first.s_per_step).toFixed(2)} s/step (batch part ${Number(first.batch_s).toFixed(2)} s, of which the teacher pass ${Number(first.teacher_pass_s).toFixed(2)} s; ${first.threads} threads), peak RSS ${Number(first.peak_rss_mb).toFixed(0)} MB`,
    );
    return torchReference('dora', 'train_reference.py', ['--dora-bench', ...REFERENCE_WARMUP_ARGS], undefined, first);
  });
  const r = (x: unknown) => Number(Number(x).toFixed(3));
  return {
    model: 'vit_ti16',
    frames_per_clip: 8,
    objects: 3,
    input: 224,
    ...stepFigures(ours, torch),
    batch_s: r(ours.batch_s),
    teacher_pass_s: r(ours.teacher_pass_s),
    ...machine(),
  };
}
