/**
 * A training-step fixture written by tools/*_reference.py (train/<name>.safetensors): its tensors, its metadata
 * (strings; sizes and schedules as JSON), and the tiny ViT its `vit` metadata describes.
 */
import fs from 'node:fs';
import { parseSafetensors } from '../../native/models/safetensors.js';
import { presetConfig, type ViTConfig } from '../../native/models/vit.js';
import { fixturePath, loadTensors } from './fixtures.js';

export function readTrainFixture(name: string) {
  const file = fixturePath('train', `${name}.safetensors`);
  const tensors = loadTensors(file);
  const meta = parseSafetensors(fs.readFileSync(file), name).metadata;
  const vitMeta = JSON.parse(meta.vit as string) as {
    patch: number;
    dim: number;
    depth: number;
    heads: number;
    mlp_hidden: number;
    pos_grid: number;
    eps: number;
  };
  const vit: ViTConfig = {
    ...presetConfig('vit_ti16'),
    patchSize: vitMeta.patch,
    dim: vitMeta.dim,
    depth: vitMeta.depth,
    heads: vitMeta.heads,
    mlpHidden: vitMeta.mlp_hidden,
    posGrid: vitMeta.pos_grid,
    lnEps: vitMeta.eps,
  };
  const tensor = (key: string) => {
    const t = tensors.get(key);
    if (!t) throw new Error(`fixture has no ${key}`);
    return t;
  };
  return { meta, vit, tensor, get: (key: string) => tensor(key).data };
}
