import fs from 'node:fs';
import path from 'node:path';
import { Rng } from '../../native/base/rng.js';
import { encodeSafetensors } from '../../native/models/safetensors.js';
import { presetConfig, type ViTConfig, vitParamShapes } from '../../native/models/vit.js';
import { initParams, vitForInit } from '../../native/train/train-dino.js';
import { tmpDir } from './tmp.js';

/** The tiny preset ViT (2 blocks) that training starts from with `{ kind: 'scratch', preset: 'tiny' }`. */
export const TINY_VIT: ViTConfig = vitForInit({ kind: 'scratch', preset: 'tiny' }, null);

/**
 * A ViT at DINO's initialisation from `seed`, written as .safetensors with its head count (no pretrained weights
 * exist here); `adjust` may change the weights before they are written.
 */
export function writeViT(
  file: string,
  vit: ViTConfig,
  seed: number,
  adjust?: (weights: Map<string, Float32Array>) => void,
): string {
  const shapes = vitParamShapes(vit);
  const w = initParams(shapes, new Rng(seed));
  adjust?.(w);
  fs.writeFileSync(
    file,
    encodeSafetensors(new Map([...w].map(([k, v]) => [k, { shape: shapes.get(k) as number[], data: v }])), {
      heads: String(vit.heads),
    }),
  );
  return file;
}

/** A ViT-Ti/16 (4 blocks) at DINO's initialisation, written as .safetensors. */
export function writeInitViT(file: string, seed = 1): string {
  return writeViT(file, { ...presetConfig('vit_ti16'), depth: 4 }, seed);
}

/** The tiny ViT at DINO's initialisation from `seed`, written to a new temporary file. */
export function writeTinyViT(seed: number, name = `tiny-${seed}.safetensors`): string {
  return writeViT(path.join(tmpDir(), name), TINY_VIT, seed);
}
