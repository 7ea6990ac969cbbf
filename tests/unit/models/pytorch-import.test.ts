/**
 * PyTorch checkpoints written by Debian's python3-torch 1.13 (tools/pth_reference.py): zip and legacy formats,
 * a DINO training checkpoint, f16 and bf16, strided and offset storages. Each imports to exactly the weights of
 * the same model's .safetensors and runs to the same outputs; hostile or damaged files are refused by name and
 * nothing in them runs.
 */
import fs from 'node:fs';
import * as ort from 'onnxruntime-node';
import { describe, expect, it } from 'vitest';
import { type ImportedViT, importViTFile, parseWeightFile } from '../../../native/models/import-vit.js';
import { buildViTOnnx } from '../../../native/models/vit-onnx.js';
import { errorOf } from '../../helpers/errors.js';
import { fixturePath, loadTensors, maxAbsDiff } from '../../helpers/fixtures.js';

const pth = (name: string) => fixturePath('pth', name);
const MARKER = '/tmp/flaneur-pickle-ran';

function expectSameWeights(a: ImportedViT, b: ImportedViT) {
  expect(a.config).toEqual(b.config);
  expect([...a.weights.keys()].sort()).toEqual([...b.weights.keys()].sort());
  for (const [name, data] of a.weights) {
    expect(maxAbsDiff(data, b.weights.get(name) as Float32Array), name).toBe(0);
  }
}

async function outputs(m: ImportedViT, input: { data: Float32Array; shape: number[] }) {
  const onnx = buildViTOnnx(m, { height: 224, width: 224, outputs: { cls: true, patches: true, attention: true } });
  const session = await ort.InferenceSession.create(onnx);
  const out = await session.run({ pixels: new ort.Tensor('float32', input.data, input.shape) });
  await session.release();
  return out;
}

describe('PyTorch checkpoint import', () => {
  const reference = importViTFile(fixturePath('vit', 'dino_tiny.official.safetensors'), { heads: 3 });

  it.each([
    ['dino_tiny.zip.pth', 'zip'],
    ['dino_tiny.legacy.pth', 'legacy'],
  ])('%s (%s format, strided and offset storages) gives the weights of the .safetensors', (file, format) => {
    const m = importViTFile(pth(file), { heads: 3 });
    expect(m.checkpoint).toMatchObject({ format, path: '', strippedPrefix: '', droppedHeads: 0 });
    expectSameWeights(m, reference);
  });

  it('takes the teacher of a DINO training checkpoint, strips module.backbone. and drops the head', async () => {
    const m = importViTFile(pth('dino_tiny.dino-checkpoint.pth'), { heads: 3 });
    expect(m.checkpoint).toEqual({
      format: 'zip',
      path: 'teacher',
      skipped: ['student'],
      strippedPrefix: 'module.backbone.',
      droppedHeads: 4,
    });
    expectSameWeights(m, reference);
    const expected = loadTensors(fixturePath('vit', 'dino_tiny.224x224.expected.safetensors'));
    const input = expected.get('input') as { data: Float32Array; shape: number[] };
    const [a, b] = [await outputs(m, input), await outputs(reference, input)];
    for (const name of ['cls', 'patches', 'attention']) {
      expect(maxAbsDiff(a[name]?.data as Float32Array, b[name]?.data as Float32Array), name).toBe(0);
    }
    expect(maxAbsDiff(a.cls?.data as Float32Array, expected.get('cls')?.data as Float32Array)).toBeLessThanOrEqual(
      1e-4,
    );
  });

  it('reads f16 (zip) and bf16 (legacy) weights exactly as the same weights in .safetensors', () => {
    const f16 = importViTFile(pth('dino_tiny.f16.pth'), { heads: 3 });
    expect(f16.sourceDtype).toBe('F16');
    expectSameWeights(f16, importViTFile(pth('dino_tiny.official.f16.safetensors'), { heads: 3 }));
    const bf16 = importViTFile(pth('dino_tiny.bf16.legacy.pth'), { heads: 3 });
    expect(bf16.sourceDtype).toBe('BF16');
    expectSameWeights(bf16, importViTFile(fixturePath('vit', 'dino_tiny.official.bf16.safetensors'), { heads: 3 }));
  });

  it("takes 'model' with a backbone. prefix (DINOv2 with registers)", () => {
    const m = importViTFile(pth('dinov2reg_tiny.model.pth'), { heads: 3 });
    expect(m.checkpoint).toMatchObject({ path: 'model', strippedPrefix: 'backbone.' });
    expect(m.config.registers).toBe(4);
    expectSameWeights(m, importViTFile(fixturePath('vit', 'dinov2reg_tiny.official.safetensors'), { heads: 3 }));
  });

  it('refuses a pickle that calls os.system or builtins.eval, naming the global, and runs nothing', () => {
    fs.rmSync(MARKER, { force: true });
    const system = errorOf(() => importViTFile(pth('hostile-system.pth')));
    expect(system.code).toBe('INVALID_MODEL');
    expect(system.message).toMatch(/names "posix\.system", which is not part of a PyTorch state dict/);
    const evil = errorOf(() => importViTFile(pth('hostile-eval.pth')));
    expect(evil.message).toMatch(/names "builtins\.eval"/);
    expect(evil.message).toMatch(/Nothing in the file was run/);
    // Had either pickle been run, it would have created this file (tools/pth_reference.py).
    expect(fs.existsSync(MARKER)).toBe(false);
  });

  it('refuses a truncated zip and a storage shorter than its tensors, saying what is wrong', () => {
    const buf = fs.readFileSync(pth('dino_tiny.zip.pth'));
    for (const cut of [buf.length - 10, Math.floor(buf.length * 0.6), 100]) {
      const e = errorOf(() => parseWeightFile(buf.subarray(0, cut), 'cut.pth').float32('norm.bias'));
      expect(e.code).toBe('INVALID_MODEL');
      expect(e.message).toMatch(/truncated/);
    }
    const past = errorOf(() => importViTFile(pth('storage-past-end.pth'), { heads: 3 }));
    expect(past.message).toMatch(
      /storage "3" \(used by "blocks\.0\.attn\.qkv\.weight"\) should hold 27648 bytes but has 13824/,
    );
  });

  it('refuses a tensor that points past the end of its storage, and a legacy file cut short', () => {
    const e = errorOf(() => importViTFile(pth('tensor-past-end.pth'), { heads: 3 }));
    expect(e.message).toMatch(/tensor "blocks\.1\.attn\.qkv\.bias" points past the end of its storage/);
    const legacy = fs.readFileSync(pth('dino_tiny.legacy.pth'));
    const cut = errorOf(() => parseWeightFile(legacy.subarray(0, legacy.length - 4), 'l.pth'));
    expect(cut.message).toMatch(/is truncated: storage "\d+" needs \d+ bytes/);
  });
});
