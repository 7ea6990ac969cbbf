/**
 * NeCo (patch neighbour consistency), two parts in one command:
 *
 * 1. One NeCo step of ViT-S/16 (random init; NeCo head 2048-256; one image, 2 global crops at 224 and 4 local
 *    crops at 96; 10 crop pairs x 49 aligned patches; references from a full 8192-row queue; diff sort at steepness
 *    100 for student and teacher; loss, backward, AdamW with backbone and head rates, EMA): ours
 *    (bench/neco-worker.ts: host crops/RoI matrices/queue + the step graph on onnxruntime-node) vs PyTorch 1.13
 *    (tools/neco_reference.py --bench: the official code's algorithm, RoI-align matrices cached as torchvision's
 *    kernel would cost ~nothing), same machine, same run; torch at 1 thread and all cores through the fair
 *    harness (bench/reference.ts: thread variables set before torch loads, warm-up, median; the fastest is the
 *    reference; `--torch-threads 1,2` picks the counts). Wall seconds (the ratio) and process CPU seconds (less
 *    sensitive to other processes on a shared machine).
 * 2. A short adaptation on the synthetic walking tour (tests/fixtures/synthetic/tour.mp4 at 10 fps, its frames as
 *    the project's data) of the bundled model (models/default, ViT-Ti/16) and of a random-init ViT-S/16 (the
 *    init of bench/segment.ts), through the app's own `train.start` with `neco` settings (official defaults unless
 *    flagged), then `segment.compareModels` base vs adapted: the project has no masks, so it segments the synthetic
 *    tour (Hummingbird: bank of frames 40 and 120, 20 frames segmented, 4 classes) — mIoU before and after.
 *
 *   npm run bench -- neco [--steps N] [--steps-ti N] [--steps-s N] [--batch B] [--global-size S]
 *                         [--lr-backbone X] [--lr-head X] [--step-steps N] [--torch-threads 1,2|all]
 *                         [--no-step] [--no-adapt]
 *
 * --steps sets both adaptations' steps (defaults: 24 for the ViT-Ti/16, 8 for the ViT-S/16, batch 2: about ten
 * minutes in all on this project's loaded 2-core machine); --step-steps: timed steps of part 1 (default 2, after one
 * untimed step each).
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { Rng } from '../native/base/rng.js';
import { encodeSafetensors } from '../native/models/safetensors.js';
import { presetConfig, vitParamShapes } from '../native/models/vit.js';
import { initParams } from '../native/train/train-dino.js';
import { addTour, tempEngine } from './engine.js';
import { machine, oursAround, ROOT, torchReference } from './reference.js';
import { REFERENCE_WARMUP_ARGS, stepFigures } from './step-common.js';

const BUNDLED = path.join(ROOT, 'models', 'default', 'flaneur-vit-ti16-dora-vtest.safetensors');

function flag(args: string[], name: string): number | undefined {
  const i = args.indexOf(name);
  if (i < 0) return undefined;
  const v = Number(args[i + 1]);
  if (!Number.isFinite(v) || v <= 0) throw new Error(`bench neco: ${name} takes a positive number, not ${args[i + 1]}`);
  return v;
}

const r3 = (x: unknown) => Number(Number(x).toFixed(3));
const pct = (x: number) => Number((100 * x).toFixed(2));

async function stepPart(steps: number, threads: number[] | undefined): Promise<Record<string, unknown>> {
  const { ours, reference: torch } = oursAround('neco-worker.ts', [String(steps)], (first) => {
    console.error(
      `neco: ours ${r3(first.s_per_step)} s/step (${r3(first.cpu_s_per_step)} CPU s, host part ${r3(first.host_s)} s, ${first.threads} threads), peak RSS ${Number(first.peak_rss_mb).toFixed(0)} MB`,
    );
    return torchReference(
      'neco',
      'neco_reference.py',
      ['--bench', '--steps', String(steps), ...REFERENCE_WARMUP_ARGS],
      threads,
      first,
    );
  });
  const best = torch.best;
  return {
    ...stepFigures(ours, torch),
    cpu_s_per_step: r3(ours.cpu_s_per_step),
    torch_cpu_s_per_step: r3(best.cpu_s_per_step),
    cpu_ratio_vs_torch: r3(Number(ours.cpu_s_per_step) / Number(best.cpu_s_per_step)),
    host_s: r3(ours.host_s),
    timed_steps: steps,
  };
}

interface Adaptation {
  model: string;
  steps: number;
  batch: number;
  train_s: number;
  s_per_step: number;
  loss_first: number;
  loss_last: number;
  miou_before: number;
  miou_after: number;
  per_class_before: (number | null)[];
  per_class_after: (number | null)[];
}

async function adaptPart(o: {
  stepsTi: number;
  stepsS: number;
  batch: number;
  globalSize: number;
  neco: Record<string, number>;
}): Promise<{ adaptations: Record<string, Adaptation>; eval: Record<string, unknown> }> {
  const { work, engine, call, close } = await tempEngine('flaneur-bench-neco-');
  try {
    const runner = engine.requireProject().runner;
    await addTour({ engine, call });
    // The random-init ViT-S/16 of bench/segment.ts (same generator and seed).
    const cfg = presetConfig('vit_s16');
    const shapes = vitParamShapes(cfg);
    const weights = initParams(shapes, new Rng(3));
    const sFile = path.join(work, 'vit_s16_init.safetensors');
    fs.writeFileSync(
      sFile,
      encodeSafetensors(new Map([...weights].map(([k, v]) => [k, { shape: shapes.get(k) as number[], data: v }])), {
        heads: String(cfg.heads),
      }),
    );
    const bases = [
      { key: 'bundled_vit_ti16', file: BUNDLED, name: 'Bundled ViT-Ti/16', steps: o.stepsTi },
      { key: 'vit_s16_init', file: sFile, name: 'ViT-S/16 at initialisation', steps: o.stepsS },
    ];
    const adaptations: Record<string, Adaptation> = {};
    let evalInfo: Record<string, unknown> = {};
    for (const b of bases) {
      const base = (await call('models.import', { path: b.file, name: b.name })) as { id: number };
      const t0 = performance.now();
      const job = (await call('train.start', {
        init: { kind: 'model', id: base.id },
        steps: b.steps,
        batch: o.batch,
        globalSize: o.globalSize,
        checkpointEvery: b.steps,
        previewEvery: 0,
        seed: 1,
        neco: o.neco,
      })) as { id: number };
      await runner.idle();
      const state = (await call('jobs.get', { id: job.id })) as { state: string; error?: { message: string } };
      if (state.state !== 'done') throw new Error(`NeCo on ${b.name}: ${state.error?.message ?? state.state}`);
      const trainS = (performance.now() - t0) / 1000;
      const log = (await call('train.log', { jobId: job.id })) as { loss: number }[];
      // The engine registers the exported model when the job's export item lands.
      let adapted: { id: number } | undefined;
      for (let i = 0; i < 100 && !adapted; i++) {
        adapted = ((await call('models.list', {})) as { id: number; name: string }[]).find((m) =>
          m.name.includes(`(job ${job.id})`),
        );
        if (!adapted) await new Promise((r) => setTimeout(r, 200));
      }
      if (!adapted) throw new Error(`the adapted model of ${b.name} was not registered`);
      const cmp = (await call('segment.compareModels', { modelIds: [base.id, adapted.id], size: 224 })) as {
        source: string;
        frames: number;
        classes: number;
        classNames?: string[];
        models: { miou: number; perClass: (number | null)[] }[];
      };
      if (cmp.source !== 'synthetic') throw new Error('expected the synthetic tour comparison');
      evalInfo = {
        source: 'segment.compareModels on the synthetic tour (no masks in the project)',
        frames_segmented: cmp.frames,
        bank_frames: 2,
        classes: cmp.classNames,
        input: 224,
      };
      const [before, after] = cmp.models as [(typeof cmp.models)[0], (typeof cmp.models)[0]];
      const pc = (x: (number | null)[]) => x.map((v) => (v === null ? null : pct(v)));
      adaptations[b.key] = {
        model: b.key === 'vit_s16_init' ? 'vit_s16' : 'vit_ti16',
        steps: b.steps,
        batch: o.batch,
        train_s: Number(trainS.toFixed(1)),
        s_per_step: r3(trainS / b.steps),
        loss_first: r3(log[0]?.loss),
        loss_last: r3(log[log.length - 1]?.loss),
        miou_before: pct(before.miou),
        miou_after: pct(after.miou),
        per_class_before: pc(before.perClass),
        per_class_after: pc(after.perClass),
      };
      console.error(
        `neco: ${b.name}: ${b.steps} steps of ${o.batch} images in ${trainS.toFixed(0)} s, loss ${r3(log[0]?.loss)} → ${r3(log[log.length - 1]?.loss)}, mIoU ${pct(before.miou)} → ${pct(after.miou)}`,
      );
    }
    return { adaptations, eval: evalInfo };
  } finally {
    await close();
  }
}

export async function benchNeco(args: string[]): Promise<Record<string, unknown>> {
  const t0 = performance.now();
  const steps = flag(args, '--steps');
  const stepsTi = flag(args, '--steps-ti') ?? steps ?? 24;
  const stepsS = flag(args, '--steps-s') ?? steps ?? 8;
  const batch = flag(args, '--batch') ?? 2;
  const globalSize = flag(args, '--global-size') ?? 224;
  const lrBackbone = flag(args, '--lr-backbone');
  const lrHead = flag(args, '--lr-head');
  const neco = { ...(lrBackbone ? { lrBackbone } : {}), ...(lrHead ? { lrHead } : {}) };
  const ti = args.indexOf('--torch-threads');
  const threads =
    ti >= 0
      ? String(args[ti + 1])
          .split(',')
          .map((x) => (x === 'all' ? os.availableParallelism() : Number(x)))
      : undefined;
  if (threads?.some((t) => !Number.isInteger(t) || t < 1))
    throw new Error(`bench neco: --torch-threads takes thread counts like 1,2 or all, not ${args[ti + 1]}`);
  const step = args.includes('--no-step') ? {} : await stepPart(flag(args, '--step-steps') ?? 2, threads);
  const adapt = args.includes('--no-adapt') ? null : await adaptPart({ stepsTi, stepsS, batch, globalSize, neco });
  const s = adapt?.adaptations.vit_s16_init;
  const tiny = adapt?.adaptations.bundled_vit_ti16;
  return {
    model: 'vit_s16',
    batch: 1,
    global_crops: '2 x 224',
    local_crops: '4 x 96',
    ...step,
    ...(adapt
      ? {
          // Top level: the random-init ViT-S/16 (the step's model); the bundled ViT-Ti/16 next to it.
          miou_before: s?.miou_before,
          miou_after: s?.miou_after,
          miou_before_bundled: tiny?.miou_before,
          miou_after_bundled: tiny?.miou_after,
          adapt_steps: { vit_s16_init: stepsS, bundled_vit_ti16: stepsTi },
          adapt_settings: {
            batch,
            global_size: globalSize,
            local_crops: '4 x 96',
            lr_backbone: lrBackbone ?? 1e-5,
            lr_head: lrHead ?? 1e-4,
            queue: 8192,
            steepness: 100,
            data: 'tests/fixtures/synthetic/tour.mp4 at 10 fps (200 frames, 320x240), no labels',
          },
          adaptations: adapt.adaptations,
          eval: adapt.eval,
        }
      : {}),
    total_s: Number(((performance.now() - t0) / 1000).toFixed(0)),
    ...machine(),
  };
}
