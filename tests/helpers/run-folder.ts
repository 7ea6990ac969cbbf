/**
 * A `train export` folder as train.py leaves it after a run, written directly (no PyTorch): run.json, run/
 * checkpoints/step-NNNNNNN.{json,safetensors} (teacher `t.` and student `p.` backbones) and run/metrics.jsonl.
 * Tests of `train import` edit its files to make hostile ones.
 */
import fs from 'node:fs';
import path from 'node:path';
import { Rng } from '../../native/base/rng.js';
import { encodeSafetensors, type TensorToWrite } from '../../native/models/safetensors.js';
import { vitParamShapes } from '../../native/models/vit.js';
import { EXPORT_FORMAT } from '../../native/train/export-run.js';
import { TINY_VIT } from './models.js';

export interface RunFolder {
  dir: string;
  runJson: string;
  stepJson: string;
  weights: string;
  metrics: string;
}

export const RUN_STEPS = 2;

export function metricsRow(step: number, over: Record<string, unknown> = {}): Record<string, unknown> {
  return {
    step,
    loss: 10 - step,
    lr: 1e-4,
    wd: 0.04,
    ema: 0.996,
    gradNorm: 1.5,
    teacherEntropy: 4.2,
    imgsPerS: 30,
    world: 1,
    ...over,
  };
}

export function writeRunFolder(dir: string, seed = 1): RunFolder {
  const ck = path.join(dir, 'run', 'checkpoints');
  fs.mkdirSync(ck, { recursive: true });
  const runJson = path.join(dir, 'run.json');
  fs.writeFileSync(
    runJson,
    JSON.stringify({
      format: EXPORT_FORMAT,
      version: 1,
      objective: 'dino',
      args: { steps: RUN_STEPS, batch: 2, init: { kind: 'scratch', preset: 'tiny' } },
      vit: TINY_VIT,
    }),
  );
  const rng = new Rng(seed);
  const tensors = new Map<string, TensorToWrite>();
  for (const [name, shape] of vitParamShapes(TINY_VIT)) {
    const n = shape.reduce((a, d) => a * d, 1);
    for (const side of ['t', 'p']) {
      tensors.set(`${side}.${name}`, { shape, data: Float32Array.from({ length: n }, () => rng.next() - 0.5) });
    }
  }
  const base = path.join(ck, `step-${String(RUN_STEPS).padStart(7, '0')}`);
  fs.writeFileSync(`${base}.safetensors`, encodeSafetensors(tensors));
  fs.writeFileSync(
    `${base}.json`,
    JSON.stringify({ step: RUN_STEPS, world: 1, device: 'cpu', wallSeconds: 3, precision: 'fp32' }),
  );
  const metrics = path.join(dir, 'run', 'metrics.jsonl');
  fs.writeFileSync(metrics, `${[1, 2].map((s) => JSON.stringify(metricsRow(s))).join('\n')}\n`);
  return { dir, runJson, stepJson: `${base}.json`, weights: `${base}.safetensors`, metrics };
}
