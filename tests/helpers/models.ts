import fs from 'node:fs';
import { encodeSafetensors } from '../../native/models/safetensors.js';
import { presetConfig, vitParamShapes } from '../../native/models/vit.js';
import { Rng } from '../../native/train/rng.js';
import { initParams } from '../../native/train/train-dino.js';

/** A ViT-Ti/16 (4 blocks) at DINO's initialisation, written as .safetensors (no pretrained weights exist here). */
export function writeInitViT(file: string, seed = 1): string {
  const cfg = { ...presetConfig('vit_ti16'), depth: 4 };
  const shapes = vitParamShapes(cfg);
  const w = initParams(shapes, new Rng(seed));
  fs.writeFileSync(
    file,
    encodeSafetensors(new Map([...w].map(([k, v]) => [k, { shape: shapes.get(k) as number[], data: v }])), {
      heads: '3',
    }),
  );
  return file;
}
