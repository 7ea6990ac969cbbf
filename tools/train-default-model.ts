/**
 * Makes the embedded default model: a ViT-Ti/16 trained from scratch with the app's own Dora pipeline on the
 * bundled sample clip (samples/vtest-street.mp4), its teacher written to models/default/ with a manifest that
 * says exactly how it was made (data, settings, steps, wall time, machine, losses) and its in-context
 * segmentation mIoU on the synthetic tour (bench/segment.ts protocol).
 *   node --import tsx tools/train-default-model.ts [STEPS]
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { tempEngine } from '../bench/engine.js';
import { benchSegment, TI16_RECIPE } from '../bench/segment.js';
import type { CommandArgs } from '../native/api/contract.js';
import { SAMPLE_VIDEO } from '../native/engine/engine.js';

const ROOT = path.resolve(import.meta.dirname, '..');
const OUT = path.join(ROOT, 'models', 'default');
const steps = Number(process.argv[2] ?? 300);
const TRAIN = {
  ...TI16_RECIPE,
  steps,
  dora: { framesPerClip: 4, stride: 2, objects: 3 },
  name: 'Flaneur ViT-Ti/16 Dora (sample clip)',
} as const satisfies CommandArgs<'train.start'>;
const SAMPLING = { policy: 'fps', fps: 2 } as const;

const { engine, call, close } = await tempEngine('flaneur-default-model-');
try {
  const runner = engine.requireProject().runner;
  await call('library.add', { paths: [SAMPLE_VIDEO], sampling: SAMPLING });
  await runner.idle();
  const media = engine.requireProject().project.media.list().items[0];
  if (!media) throw new Error('the sample clip did not ingest');
  const t0 = performance.now();
  const job = (await call('train.start', TRAIN)) as { id: number };
  await runner.idle();
  const state = (await call('jobs.get', { id: job.id })) as { state: string; error?: { message: string } };
  if (state.state !== 'done') throw new Error(`training: ${state.error?.message ?? state.state}`);
  const wall = (performance.now() - t0) / 1000;
  const log = (await call('train.log', { jobId: job.id })) as { loss: number; teacherEntropy: number }[];
  const dir = path.join(engine.requireProject().project.checkpointsDir, `train-${job.id}`, 'export');
  fs.mkdirSync(OUT, { recursive: true });
  const file = path.join(OUT, 'flaneur-vit-ti16-dora-vtest.safetensors');
  fs.copyFileSync(path.join(dir, 'encoder.safetensors'), file);
  console.error(`trained ${steps} steps in ${wall.toFixed(0)} s; evaluating`);
  const evaluation = await benchSegment(['--model', file]);
  const mean = (xs: number[]) => xs.reduce((a, x) => a + x, 0) / Math.max(1, xs.length);
  const manifest = {
    name: TRAIN.name,
    file: path.basename(file),
    bytes: fs.statSync(file).size,
    architecture: { preset: 'vit_ti16', patch: 16, dim: 192, depth: 12, heads: 3 },
    input: { trained_at: TRAIN.globalSize, recommended: 224, mean: [0.485, 0.456, 0.406], std: [0.229, 0.224, 0.225] },
    made_by: 'tools/train-default-model.ts (Flaneur train.dino job with Dora)',
    data: {
      video: 'samples/vtest-street.mp4 (OpenCV vtest.avi, 480x360, 79.5 s; see samples/README.md)',
      sampling: SAMPLING,
      frames: media.frameCount,
      frame_size: [media.frameWidth, media.frameHeight],
    },
    training: { ...TRAIN, name: undefined },
    wall_time_s: Number(wall.toFixed(1)),
    machine: {
      cpu: os.cpus()[0]?.model ?? 'unknown',
      cores: os.availableParallelism(),
      provider: 'cpu',
      os: `${os.type()} ${os.release()}`,
    },
    made_at: new Date().toISOString(),
    loss: { first10: mean(log.slice(0, 10).map((r) => r.loss)), last10: mean(log.slice(-10).map((r) => r.loss)) },
    teacher_entropy_last: log[log.length - 1]?.teacherEntropy,
    evaluation: {
      protocol:
        'bench/segment.ts: Hummingbird kNN (k 30, T 0.02) at 224 px; bank from 2 labelled frames of the synthetic tour, 20 held-out frames, 4 classes',
      miou: evaluation.miou_given,
      miou_vit_s16_init: evaluation.miou_vit_s16_init,
      miou_raw_colour: evaluation.miou_raw_colour,
      miou_majority: evaluation.miou_majority,
    },
    licence:
      'Weights: as Flaneur. Training data: the OpenCV sample video, Apache-2.0 AND BSD-3-Clause (samples/README.md).',
  };
  fs.writeFileSync(path.join(OUT, 'manifest.json'), `${JSON.stringify(manifest, null, 2)}\n`);
  console.log(JSON.stringify(manifest));
} finally {
  await close();
}
