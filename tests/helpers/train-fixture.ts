/**
 * A training-step fixture written by tools/*_reference.py (train/<name>.safetensors): its tensors, its metadata
 * (strings; sizes and schedules as JSON), and the tiny ViT its `vit` metadata describes.
 */
import fs from 'node:fs';
import { expect } from 'vitest';
import { parseSafetensors } from '../../native/models/safetensors.js';
import { presetConfig, type ViTConfig } from '../../native/models/vit.js';
import { fixturePath, loadTensors, maxAbsDiff, relErr } from './fixtures.js';

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
  const get = (key: string) => tensor(key).data;
  return {
    meta,
    vit,
    tensor,
    get,
    /** Expects one gradient per trainable parameter, each within 1e-3 relative error of `grad.<name>`; the worst. */
    expectGradients(gradients: Map<string, Float32Array> | undefined, trainable: number): number {
      expect(gradients?.size).toBe(trainable);
      let worst = 0;
      for (const [name, g] of gradients ?? []) {
        const e = relErr(g, get(`grad.${name}`));
        worst = Math.max(worst, e);
        expect(e, `gradient of ${name}`).toBeLessThanOrEqual(1e-3);
      }
      return worst;
    },
    /** Expects each parameter and its teacher within 1e-4 of `final.<name>` and `teacher.<name>`; the worst. */
    expectFinalWeights(
      names: Iterable<string>,
      state: { params: Map<string, Float32Array>; teacher: Map<string, Float32Array> },
    ): number {
      let worst = 0;
      for (const name of names) {
        const d = maxAbsDiff(state.params.get(name) as Float32Array, get(`final.${name}`));
        worst = Math.max(worst, d);
        expect(d, `parameter ${name} after 5 steps`).toBeLessThanOrEqual(1e-4);
        expect(
          maxAbsDiff(state.teacher.get(name) as Float32Array, get(`teacher.${name}`)),
          `teacher ${name}`,
        ).toBeLessThanOrEqual(1e-4);
      }
      return worst;
    },
  };
}
