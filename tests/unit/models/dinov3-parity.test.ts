/**
 * DINOv3 against the PyTorch reference written from the official architecture (tools/dinov3_reference.py): axial
 * 2-D RoPE on the patch tokens (CLS and 4 registers unrotated), layer scale, masked key bias, GELU MLP or SwiGLU.
 * CLS, patch tokens, last-block queries and keys (after RoPE), CLS attention and the first block's output, in the
 * official and the Hugging Face names, at 224 px and at the non-square 160x256.
 */
import { describe, expect, it } from 'vitest';
import type { FlaneurError } from '../../../native/api/errors.js';
import { checkModelFits } from '../../../native/models/import-dinov3.js';
import { canonicalSafetensors, importViT, importViTFile } from '../../../native/models/import-vit.js';
import { parseSafetensors } from '../../../native/models/safetensors.js';
import { fixturePath, loadTensors, maxAbsDiff } from '../../helpers/fixtures.js';
import { expectReferenceOutputs } from '../../helpers/vit-reference.js';

const MODELS = ['dinov3_tiny', 'dinov3swiglu_tiny'] as const;
const SIZES = ['224x224', '160x256'] as const;
const TOL = 1e-4;

describe.each(MODELS)('%s', (model) => {
  it.each(['official', 'hf'])('reads the %s names as a DINOv3 ViT with RoPE, 4 registers and layer scale', (scheme) => {
    const m = importViTFile(fixturePath('dinov3', `${model}.${scheme}.safetensors`), { heads: 4 });
    expect(m.scheme).toBe(scheme === 'official' ? 'dinov3' : 'hf-dinov3');
    expect(m.config).toMatchObject({
      family: 'dinov3',
      dim: 64,
      depth: 2,
      heads: 4,
      registers: 4,
      layerScale: true,
      lnEps: 1e-5,
      mlp: model === 'dinov3_tiny' ? 'gelu' : 'swiglu',
    });
    expect(m.config.ropePeriods).toHaveLength(4);
    expect(m.weights.has('pos_embed')).toBe(false);
  });

  describe.each(SIZES)('at %s', (size) => {
    const [h, w] = size.split('x').map(Number) as [number, number];
    const expected = loadTensors(fixturePath('dinov3', `${model}.${size}.expected.safetensors`));

    it.each(['official', 'hf'])('matches PyTorch within 1e-4 (%s names)', async (scheme) => {
      const m = importViTFile(fixturePath('dinov3', `${model}.${scheme}.safetensors`), { heads: 4 });
      await expectReferenceOutputs(m, expected, h, w, TOL);
    });
  });
});

describe('DINOv3 storage', () => {
  it('reads the official .pth and the canonical file the registry writes back to the same weights', () => {
    const st = importViTFile(fixturePath('dinov3', 'dinov3_tiny.official.safetensors'), { heads: 4 });
    const pth = importViTFile(fixturePath('dinov3', 'dinov3_tiny.official.pth'), { heads: 4 });
    const again = importViT(parseSafetensors(canonicalSafetensors(st), 'c'), 'c');
    for (const m of [pth, again]) {
      expect(m.config).toEqual(st.config);
      for (const [k, v] of st.weights) expect(maxAbsDiff(v, m.weights.get(k) as Float32Array), k).toBe(0);
    }
  });

  it('masks the official key bias to zero as LinearKMaskedBias does', () => {
    const raw = loadTensors(fixturePath('dinov3', 'dinov3_tiny.official.safetensors'));
    const bias = raw.get('blocks.0.attn.qkv.bias')?.data as Float32Array;
    expect(Math.max(...Array.from(bias.subarray(64, 128), Math.abs))).toBeGreaterThan(0);
    const m = importViTFile(fixturePath('dinov3', 'dinov3_tiny.official.safetensors'), { heads: 4 });
    const b = m.weights.get('blocks.0.attn.qkv.bias') as Float32Array;
    expect(Array.from(b.subarray(64, 128)).every((v) => v === 0)).toBe(true);
    expect(maxAbsDiff(b.subarray(0, 64), bias.subarray(0, 64))).toBe(0);
  });
});

describe('DINOv3 sizes', () => {
  // The published architectures (dinov3/hub/backbones.py): dim, depth, heads, FFN hidden width, FFN kind.
  const SIZES = {
    'S/16': [384, 12, 6, 1536, 'gelu'],
    'S+/16': [384, 12, 6, 1536, 'swiglu'],
    'B/16': [768, 12, 12, 3072, 'gelu'],
    'L/16': [1024, 24, 16, 4096, 'gelu'],
    'H+/16': [1280, 32, 20, 5120, 'swiglu'],
    '7B/16': [4096, 40, 32, 8192, 'swiglu'],
  } as const;
  const config = ([dim, depth, heads, mlpHidden, mlp]: (typeof SIZES)[keyof typeof SIZES]) => ({
    ...importViTFile(fixturePath('dinov3', 'dinov3_tiny.official.safetensors'), { heads: 4 }).config,
    dim,
    depth,
    heads,
    mlpHidden,
    mlp,
  });
  const GB = 2 ** 30;

  it.each(['S/16', 'S+/16', 'B/16', 'L/16'] as const)('accepts %s on a 16 GB machine', (size) => {
    expect(() => checkModelFits(config(SIZES[size]), size, 16 * GB)).not.toThrow();
  });

  it.each(['H+/16', '7B/16'] as const)('refuses %s with the reason and what to use instead', (size) => {
    const e = (() => {
      try {
        checkModelFits(config(SIZES[size]), `dinov3 ${size}`, 512 * GB);
      } catch (err) {
        return err as FlaneurError;
      }
      throw new Error('expected a refusal');
    })();
    expect(e.code).toBe('UNSUPPORTED_MODEL');
    expect(e.message).toMatch(/is too large for Flaneur: \d+M parameters .* Use a smaller model of the family/);
  });

  it('refuses a model the machine has too little memory for', () => {
    expect(() => checkModelFits(config(SIZES['L/16']), 'L/16', 2 * GB)).toThrow(/needs about 3\.\d GB of memory/);
  });
});
