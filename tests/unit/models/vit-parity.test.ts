/**
 * Our ONNX ViT graphs against the PyTorch reference (tools/vit_reference.py): CLS, patch tokens, last-block
 * queries, keys and CLS attention, and the first block's output, for DINO-style and DINOv2-with-registers
 * checkpoints, in both naming schemes, at 224 px and at a size that needs position-embedding interpolation.
 */
import { describe, expect, it } from 'vitest';
import { importViTFile } from '../../../native/models/import-vit.js';
import { fixturePath, loadTensors } from '../../helpers/fixtures.js';
import { expectReferenceOutputs } from '../../helpers/vit-reference.js';

const CASES = [
  { model: 'dino_tiny', sizes: ['224x224', '160x192'] },
  { model: 'dinov2reg_tiny', sizes: ['224x224', '168x196'] },
] as const;
const TOL = 1e-4;

describe.each(CASES)('$model', ({ model, sizes }) => {
  it.each(['official', 'hf'])('imports the %s naming scheme with the same architecture', (scheme) => {
    const m = importViTFile(fixturePath('vit', `${model}.${scheme}.safetensors`));
    expect(m.config).toMatchObject({ dim: 48, depth: 2, heads: 3 });
    expect(m.config.registers).toBe(model === 'dinov2reg_tiny' ? 4 : 0);
    expect(m.config.layerScale).toBe(model === 'dinov2reg_tiny');
    expect(m.scheme).toBe(scheme === 'official' ? 'official' : model === 'dino_tiny' ? 'hf-vit' : 'hf-dinov2');
  });

  describe.each(sizes)('at %s', (size) => {
    const [h, w] = size.split('x').map(Number) as [number, number];
    const expected = loadTensors(fixturePath('vit', `${model}.${size}.expected.safetensors`));

    it.each(['official', 'hf'])('matches PyTorch within 1e-4 (%s names)', async (scheme) => {
      const m = importViTFile(
        fixturePath('vit', `${model}.${scheme}.safetensors`),
        scheme === 'hf' ? { lnEps: 1e-6 } : {},
      );
      await expectReferenceOutputs(m, expected, h, w, TOL);
    });
  });
});
