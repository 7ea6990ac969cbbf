/**
 * The FUNGI fixture (tools/fungi_reference.py): a tiny ViT, random heads, views and PyTorch's per-sample gradients
 * of the last attention projection for each objective; `gradientsOf` runs our batched graph on a chosen provider.
 */
import fs from 'node:fs';
import {
  buildFungiGraph,
  FUNGI_DEFAULTS,
  type FungiObjective,
  type FungiSettings,
  type LinearHead,
} from '../../native/fungi/graph.js';
import { parseSafetensors } from '../../native/models/safetensors.js';
import { presetConfig, type ViTConfig } from '../../native/models/vit.js';
import { ModelSession, ort, type RuntimeSettings } from '../../native/runtime/session.js';
import { fixturePath, loadTensors, maxAbsDiff } from './fixtures.js';

const file = fixturePath('fungi', 'fungi_tiny.safetensors');
const tensors = loadTensors(file);
const meta = parseSafetensors(fs.readFileSync(file), 'fungi_tiny').metadata;
const v = JSON.parse(meta.vit as string) as Record<string, number>;
const config: ViTConfig = {
  ...presetConfig('vit_ti16'),
  patchSize: v.patch as number,
  dim: v.dim as number,
  depth: v.depth as number,
  heads: v.heads as number,
  mlpHidden: v.mlp_hidden as number,
  posGrid: v.pos_grid as number,
  lnEps: v.eps as number,
};
export const SIZE = Number(meta.size);
export const S = Number(meta.samples);
export const D = config.dim;
export const dino = JSON.parse(meta.dino as string) as { global_views: number; local_views: number; latent: number };
const simclr = JSON.parse(meta.simclr as string) as { latent: number; negatives: number };
const settings: FungiSettings = {
  kl: { temperature: Number(meta.kl_temperature) },
  dino: {
    ...FUNGI_DEFAULTS.dino,
    globalViews: dino.global_views,
    localViews: dino.local_views,
    latentDim: dino.latent,
  },
  // 32 px: 16 px patches every 8 px -> 3 x 3 = 9 views.
  simclr: { ...FUNGI_DEFAULTS.simclr, latentDim: simclr.latent, numPatches: 4, strideScale: 2 },
};

export const get = (name: string) => {
  const t = tensors.get(name);
  if (!t) throw new Error(`fixture has no ${name}`);
  return t.data;
};
const weights = new Map(
  [...tensors.keys()].filter((k) => k.startsWith('model.')).map((k) => [k.slice(6), get(k)] as const),
);
const head = (name: string): LinearHead => {
  const bias = get(`head.${name}.bias`);
  const weight = get(`head.${name}.weight`);
  return { weight, bias, out: bias.length, in: weight.length / bias.length };
};
const heads: Record<FungiObjective, { student: LinearHead; teacher?: LinearHead }> = {
  kl: { student: head('kl') },
  dino: { student: head('dino_student'), teacher: head('dino_teacher') },
  simclr: { student: head('simclr') },
};

export function relErr(ours: Float32Array, ref: Float32Array): number {
  let scale = 0;
  for (const x of ref) scale = Math.max(scale, Math.abs(x));
  return maxAbsDiff(ours, ref) / Math.max(scale, 1e-30);
}

export async function gradientsOf(
  objective: FungiObjective,
  samples: number,
  views: Float32Array,
  runtime?: RuntimeSettings,
): Promise<{ grad: Float32Array; provider: string; onnx: Uint8Array; feeds: Record<string, ort.Tensor> }> {
  const negatives = objective === 'simclr' ? simclr.negatives : undefined;
  const g = buildFungiGraph(
    { config, weights },
    {
      objective,
      settings,
      size: SIZE,
      samples,
      heads: heads[objective],
      emitGradient: true,
      ...(negatives ? { negatives } : {}),
    },
  );
  const w = get(`model.${g.projWeight}`);
  const bias = get(`model.${g.projBias}`);
  const wS = new Float32Array(samples * D * D);
  const bS = new Float32Array(samples * D);
  for (let s = 0; s < samples; s++) {
    wS.set(w, s * D * D);
    bS.set(bias, s * D);
  }
  const session = await ModelSession.create(g.onnx, runtime);
  try {
    const feeds: Record<string, ort.Tensor> = {
      pixels: new ort.Tensor('float32', views, [samples * g.views, 3, SIZE, SIZE]),
      proj_weight: new ort.Tensor('float32', wS, [samples, D, D]),
      proj_bias: new ort.Tensor('float32', bS, [samples, 1, D]),
      projection: new ort.Tensor('float32', new Float32Array(g.gradDim * D).fill(1), [g.gradDim, D]),
    };
    if (negatives) feeds.negatives = new ort.Tensor('float32', get('simclr.negatives'), [negatives, simclr.latent]);
    const out = await session.run(feeds, ['grad', 'features']);
    return { grad: out.grad?.data as Float32Array, provider: session.info.provider, onnx: g.onnx, feeds };
  } finally {
    await session.release();
  }
}
