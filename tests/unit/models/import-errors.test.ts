import fs from 'node:fs';
import path from 'node:path';
import * as ort from 'onnxruntime-node';
import { describe, expect, it } from 'vitest';
import { importViT, importViTFile } from '../../../native/models/import-vit.js';
import { encodeSafetensors, parseSafetensors, type TensorToWrite } from '../../../native/models/safetensors.js';
import { buildViTOnnx } from '../../../native/models/vit-onnx.js';
import { errorOf } from '../../helpers/errors.js';
import { fixturePath, loadTensors, maxAbsDiff } from '../../helpers/fixtures.js';
import { tmpDir } from '../../helpers/tmp.js';

const OFFICIAL = fixturePath('vit', 'dino_tiny.official.safetensors');
const HF = fixturePath('vit', 'dino_tiny.hf.safetensors');

function tensorsOf(file: string): Map<string, TensorToWrite> {
  const m = new Map<string, TensorToWrite>();
  for (const [k, v] of loadTensors(file)) m.set(k, { shape: v.shape, data: v.data });
  return m;
}

function importBuffer(buf: Buffer, heads = 3) {
  return importViT(parseSafetensors(buf, 'test.safetensors'), 'test.safetensors', { heads });
}

describe('importing ViT weights', () => {
  it('refuses a truncated file, saying where it ends', () => {
    const buf = fs.readFileSync(OFFICIAL);
    const e = errorOf(() => importBuffer(buf.subarray(0, buf.length - 1000)));
    expect(e.code).toBe('INVALID_MODEL');
    expect(e.message).toMatch(
      /header says the data is .+ long \(tensor "[^"]+" ends at byte \d+\) but the file has .+ of data; it may be truncated/,
    );
  });

  it('refuses a file that is not safetensors at all', () => {
    const e = errorOf(() => importBuffer(Buffer.from('PK\u0003\u0004 this is a zip, or a pickle, not safetensors')));
    expect(e.code).toBe('INVALID_MODEL');
  });

  it('names a tensor of the wrong dtype', () => {
    const buf = encodeSafetensors(tensorsOf(OFFICIAL));
    // Relabel norm.bias (48 x F32 = 192 bytes) as 24 x I64: a valid file whose weight is an integer tensor.
    const relabelled = Buffer.from(
      buf
        .toString('latin1')
        .replace('"norm.bias":{"dtype":"F32","shape":[48]', '"norm.bias":{"dtype":"I64","shape":[24]'),
      'latin1',
    );
    const e = errorOf(() => importBuffer(relabelled));
    expect(e.code).toBe('INVALID_MODEL');
    expect(e.message).toMatch(/tensor "norm.bias" is I64; weights must be F32, F16 or BF16/);
    const unknown = Buffer.from(
      buf.toString('latin1').replace('"norm.weight":{"dtype":"F32"', '"norm.weight":{"dtype":"Q4K"'),
      'latin1',
    );
    expect(errorOf(() => importBuffer(unknown)).message).toMatch(/Tensor "norm.weight" .* dtype Q4K/);
  });

  it('names a missing tensor', () => {
    const t = tensorsOf(OFFICIAL);
    t.delete('blocks.1.mlp.fc2.bias');
    const e = errorOf(() => importBuffer(encodeSafetensors(t)));
    expect(e.code).toBe('INVALID_MODEL');
    expect(e.message).toMatch(/missing tensor "blocks.1.mlp.fc2.bias"/);
  });

  it('names an unexpected tensor', () => {
    const t = tensorsOf(OFFICIAL);
    t.set('blocks.0.attn.rel_pos_bias', { shape: [4], data: new Float32Array(4) });
    const e = errorOf(() => importBuffer(encodeSafetensors(t)));
    expect(e.message).toMatch(/unexpected tensor "blocks.0.attn.rel_pos_bias"/);
  });

  it('names a mis-shaped tensor and what was expected', () => {
    const t = tensorsOf(OFFICIAL);
    t.set('blocks.1.mlp.fc1.weight', { shape: [96, 47], data: new Float32Array(96 * 47) });
    const e = errorOf(() => importBuffer(encodeSafetensors(t)));
    expect(e.message).toMatch(/tensor "blocks.1.mlp.fc1.weight" has shape \[96,47\]; expected \[96,48\]/);
  });

  it('says when the architecture is unknown', () => {
    const e = errorOf(() =>
      importBuffer(
        encodeSafetensors({
          'conv1.weight': { shape: [2], data: new Float32Array(2) },
          'fc.bias': { shape: [1], data: new Float32Array(1) },
        }),
      ),
    );
    expect(e.code).toBe('UNSUPPORTED_MODEL');
    expect(e.message).toMatch(/unknown architecture.*conv1.weight/);
  });

  it('says when the number of heads cannot be known', () => {
    const e = errorOf(() => importViT(parseSafetensors(encodeSafetensors(tensorsOf(OFFICIAL)), 'x'), 'x.safetensors'));
    expect(e.code).toBe('UNSUPPORTED_MODEL');
    expect(e.message).toMatch(/attention heads/);
  });

  it('strips a common prefix and ignores the pooler and heads', () => {
    const t = tensorsOf(HF);
    const prefixed = new Map([...t].map(([k, v]) => [`vit.${k}`, v]));
    prefixed.set('classifier.weight', { shape: [2], data: new Float32Array(2) });
    const m = importBuffer(encodeSafetensors(prefixed));
    expect(m.scheme).toBe('hf-vit');
    expect(m.ignored).toEqual(['classifier.weight', 'pooler.dense.bias', 'pooler.dense.weight']);
    prefixed.set('vit.embeddings.distillation_token', { shape: [1, 1, 48], data: new Float32Array(48) });
    const e = errorOf(() => importBuffer(encodeSafetensors(prefixed)));
    expect(e.message).toMatch(/unexpected tensor "vit.embeddings.distillation_token"/);
  });

  it('reads the number of heads from a config.json beside the file', () => {
    const dir = tmpDir();
    const file = path.join(dir, 'model.safetensors');
    fs.writeFileSync(file, encodeSafetensors(tensorsOf(HF)));
    fs.writeFileSync(path.join(dir, 'config.json'), JSON.stringify({ num_attention_heads: 3, layer_norm_eps: 1e-6 }));
    const m = importViTFile(file);
    expect(m.config.heads).toBe(3);
    expect(m.config.lnEps).toBe(1e-6);
  });

  it.each([
    ['bf16', fixturePath('vit', 'dino_tiny.official.bf16.safetensors'), 2e-2],
    ['f16', 'f16', 5e-3],
  ])('imports %s weights and gives nearly the f32 results', async (_name, file, tol) => {
    const source =
      file === 'f16'
        ? (() => {
            const t = tensorsOf(OFFICIAL);
            for (const v of t.values()) v.dtype = 'F16';
            const out = path.join(tmpDir(), 'f16.safetensors');
            fs.writeFileSync(out, encodeSafetensors(t, { heads: '3' }));
            return out;
          })()
        : file;
    const m = importViTFile(source);
    expect(m.sourceDtype).toBe(file === 'f16' ? 'F16' : 'BF16');
    const ref = importViTFile(OFFICIAL);
    const expected = loadTensors(fixturePath('vit', 'dino_tiny.224x224.expected.safetensors'));
    const input = expected.get('input');
    if (!input) throw new Error('no input');
    const run = async (model: typeof m) => {
      const s = await ort.InferenceSession.create(
        buildViTOnnx(model, { height: 224, width: 224, outputs: { cls: true } }),
      );
      const r = (await s.run({ pixels: new ort.Tensor('float32', input.data, input.shape) })).cls?.data as Float32Array;
      await s.release();
      return r;
    };
    const [low, full] = await Promise.all([run(m), run(ref)]);
    expect(maxAbsDiff(low, full)).toBeLessThan(tol);
    expect(maxAbsDiff(low, full)).toBeGreaterThan(0);
  });
});
