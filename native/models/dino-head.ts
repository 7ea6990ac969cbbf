/**
 * The DINO projection head (facebookresearch/dino DINOHead): an MLP (Linear-GELU-Linear-GELU-Linear to a
 * bottleneck), L2 normalisation, and a weight-normalised last layer without bias whose norm is fixed to 1
 * (norm_last_layer=True). Parameter names follow the official code: head.mlp.{0,2,4}.*, head.last_layer.weight_v.
 */
import type { GraphBuilder } from '../graph/builder.js';
import type { Value } from '../graph/ir.js';
import type { ParamSource } from './vit.js';

export interface DinoHeadConfig {
  inDim: number;
  hiddenDim: number;
  bottleneckDim: number;
  outDim: number;
  /** MLP layers (DINO's nlayers; 3 by default). */
  layers: number;
}

export function dinoHeadParamShapes(c: DinoHeadConfig, prefix = 'head.'): Map<string, number[]> {
  const m = new Map<string, number[]>();
  const dims = [c.inDim, ...Array(c.layers - 1).fill(c.hiddenDim), c.bottleneckDim];
  for (let i = 0; i < c.layers; i++) {
    m.set(`${prefix}mlp.${2 * i}.weight`, [dims[i + 1] as number, dims[i] as number]);
    m.set(`${prefix}mlp.${2 * i}.bias`, [dims[i + 1] as number]);
  }
  m.set(`${prefix}last_layer.weight_v`, [c.outDim, c.bottleneckDim]);
  return m;
}

/** x / ||x|| along the last axis (as F.normalize for norms above 1e-12). */
export function l2normalize(b: GraphBuilder, x: Value): Value {
  return b.div(x, b.sqrt(b.reduceSum(b.mul(x, x), [-1], true)));
}

export function buildDinoHead(
  b: GraphBuilder,
  c: DinoHeadConfig,
  param: ParamSource,
  x: Value,
  prefix = 'head.',
): Value {
  return b.scope('head', () => {
    let h = x;
    for (let i = 0; i < c.layers; i++) {
      const w = param(`${prefix}mlp.${2 * i}.weight`);
      h = b.linear(h, b.transpose(w, [1, 0]), param(`${prefix}mlp.${2 * i}.bias`), `mlp.${2 * i}`);
      if (i < c.layers - 1) h = b.gelu(h);
    }
    const z = l2normalize(b, h);
    // Weight normalisation with g = 1: each output unit's weight vector has unit norm.
    const v = param(`${prefix}last_layer.weight_v`);
    const w = l2normalize(b, v);
    return b.matmul(z, b.transpose(w, [1, 0]), 'last_layer');
  });
}
