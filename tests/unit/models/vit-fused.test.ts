/**
 * The inference graph with ONNX Runtime's fused kernels (com.microsoft Attention / MultiHeadAttention) against the plain graph of the same model: every output within 1e-4, for the DINO,
 * DINOv2-with-registers (layer scale) and DINOv3 (RoPE, SwiGLU) fixtures, at a square and a non-square size; and
 * the fused graph really holds the fused kernels, except in a block whose attention map or queries are taken out;
 * a graph asked for without `fused` is plain (the encoder.onnx written for users).
 */
import * as ort from 'onnxruntime-node';
import { describe, expect, it } from 'vitest';
import { Rng } from '../../../native/base/rng.js';
import { readOnnxNodeOps as nodeOps } from '../../../native/graph/protobuf.js';
import { importViTFile } from '../../../native/models/import-vit.js';
import { buildViTOnnx, type ViTOnnxOptions } from '../../../native/models/vit-onnx.js';
import { fixturePath, maxAbsDiff } from '../../helpers/fixtures.js';

const MODELS = [
  ['vit', 'dino_tiny', {}],
  ['vit', 'dinov2reg_tiny', {}],
  ['dinov3', 'dinov3_tiny', { heads: 4 }],
  ['dinov3', 'dinov3swiglu_tiny', { heads: 4 }],
] as const;

async function run(onnx: Uint8Array, pixels: ort.Tensor): Promise<Record<string, Float32Array>> {
  const session = await ort.InferenceSession.create(onnx, { graphOptimizationLevel: 'all' });
  try {
    const out = await session.run({ pixels });
    return Object.fromEntries(Object.entries(out).map(([k, v]) => [k, v.data as Float32Array]));
  } finally {
    await session.release();
  }
}

describe.each(MODELS)('%s/%s', (dir, name, opts) => {
  const m = importViTFile(fixturePath(dir, `${name}.official.safetensors`), opts);
  const P = m.config.patchSize;

  it.each([
    [2 * P * 2, 2 * P * 2],
    [3 * P, 5 * P],
  ])('gives the plain graph its outputs within 1e-4 at %ix%i, with the fused kernels in every block', async (h, w) => {
    const rng = new Rng(5);
    const pixels = new ort.Tensor(
      'float32',
      Float32Array.from({ length: 2 * 3 * h * w }, () => rng.normal()),
      [2, 3, h, w],
    );
    const options: ViTOnnxOptions = {
      height: h,
      width: w,
      outputs: { cls: true, patches: true, blocks: [0, m.config.depth - 1] },
    };
    const fused = buildViTOnnx(m, { ...options, fused: true });
    const plain = buildViTOnnx(m, { ...options, fused: false });
    const ops = nodeOps(fused);
    const attention = m.config.ropePeriods ? 'com.microsoft:MultiHeadAttention' : 'com.microsoft:Attention';
    expect(ops.filter((o) => o === attention)).toHaveLength(m.config.depth);
    // Residual sums and norms stay Add + LayerNormalization (faster than SkipLayerNormalization on ORT's CPU).
    expect(ops).not.toContain('com.microsoft:SkipLayerNormalization');
    expect(ops).not.toContain('Softmax');
    expect(nodeOps(plain).some((o) => o.startsWith('com.microsoft'))).toBe(false);
    const a = await run(fused, pixels);
    const b = await run(plain, pixels);
    expect(Object.keys(a).sort()).toEqual(Object.keys(b).sort());
    for (const k of Object.keys(b)) {
      expect(maxAbsDiff(a[k] as Float32Array, b[k] as Float32Array), k).toBeLessThanOrEqual(1e-4);
    }
  });

  it('computes only the CLS row after the last attention when only the CLS is wanted, within 1e-4 of the plain graph', async () => {
    const [h, w] = [3 * P, 5 * P];
    const rng = new Rng(6);
    const pixels = new ort.Tensor(
      'float32',
      Float32Array.from({ length: 2 * 3 * h * w }, () => rng.normal()),
      [2, 3, h, w],
    );
    const options: ViTOnnxOptions = { height: h, width: w, outputs: { cls: true } };
    const fused = buildViTOnnx(m, { ...options, fused: true });
    const ops = nodeOps(fused);
    // The last block's CLS query attends over every key: a MultiHeadAttention on the sliced query.
    expect(ops.filter((o) => o === 'com.microsoft:MultiHeadAttention').length).toBe(
      m.config.ropePeriods ? m.config.depth : 1,
    );
    const a = await run(fused, pixels);
    const b = await run(buildViTOnnx(m, { ...options, fused: false }), pixels);
    expect(a.cls).toHaveLength(2 * m.config.dim);
    expect(maxAbsDiff(a.cls as Float32Array, b.cls as Float32Array)).toBeLessThanOrEqual(1e-4);
  });

  it('builds a plain graph unless asked for the fused kernels (files written for other runtimes)', () => {
    const ops = nodeOps(buildViTOnnx(m, { height: 2 * P, width: 2 * P, outputs: { cls: true } }));
    expect(ops.some((o) => o.startsWith('com.microsoft'))).toBe(false);
  });

  it('keeps the last block unfused when its attention map, queries and keys are outputs', () => {
    const ops = nodeOps(
      buildViTOnnx(m, {
        height: 2 * P,
        width: 2 * P,
        outputs: { cls: true, lastQK: true, attention: true },
        fused: true,
      }),
    );
    const fusedAttention = ops.filter((o) => o.endsWith('Attention') && o.startsWith('com.microsoft'));
    expect(fusedAttention).toHaveLength(m.config.depth - 1);
    expect(ops.filter((o) => o === 'Softmax')).toHaveLength(1);
  });
});
