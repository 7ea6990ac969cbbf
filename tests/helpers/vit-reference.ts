import * as ort from 'onnxruntime-node';
import { expect } from 'vitest';
import type { ImportedViT } from '../../native/models/import-vit.js';
import { buildViTOnnx } from '../../native/models/vit-onnx.js';
import { maxAbsDiff } from './fixtures.js';

/** The outputs the ViT reference fixtures (tools/vit_reference.py, tools/dinov3_reference.py) hold. */
const OUTPUTS = ['cls', 'patches', 'q', 'k', 'attention', 'block0'] as const;

/**
 * Runs the imported ViT's ONNX graph at `height` x `width` on the fixture's input and expects each reference output
 * (CLS, patch tokens, last-block queries and keys, CLS attention, first block) in shape and within `tol` max abs.
 */
export async function expectReferenceOutputs(
  m: ImportedViT,
  expected: Map<string, { shape: number[]; data: Float32Array }>,
  height: number,
  width: number,
  tol = 1e-4,
): Promise<void> {
  const onnx = buildViTOnnx(m, {
    height,
    width,
    outputs: { cls: true, patches: true, lastQK: true, attention: true, blocks: [0] },
  });
  const session = await ort.InferenceSession.create(onnx);
  const input = expected.get('input');
  if (!input) throw new Error('fixture has no input');
  const out = await session.run({ pixels: new ort.Tensor('float32', input.data, input.shape) });
  for (const name of OUTPUTS) {
    const want = expected.get(name);
    const got = out[name];
    if (!want || !got) throw new Error(`missing ${name}`);
    expect(got.dims, name).toEqual(want.shape);
    expect(maxAbsDiff(got.data as Float32Array, want.data), `${name} max abs error`).toBeLessThanOrEqual(tol);
  }
  await session.release();
}
