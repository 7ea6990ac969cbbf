import fs from 'node:fs';
import path from 'node:path';
import * as ort from 'onnxruntime-node';
import { afterAll, describe, expect, it } from 'vitest';
import { decodeImage } from '../../../native/media/image.js';
import { importViTFile } from '../../../native/models/import-vit.js';
import { preprocessBatch } from '../../../native/models/preprocess.js';
import { buildViTOnnx } from '../../../native/models/vit-onnx.js';
import { dispatchEngine } from '../../helpers/dispatch.js';
import { fixturePath, maxAbsDiff } from '../../helpers/fixtures.js';
import { makeImage } from '../../helpers/media.js';
import { tmpDir } from '../../helpers/tmp.js';

describe('model registry and embeddings through the engine', () => {
  const work = tmpDir();
  const { engine, call } = dispatchEngine();
  afterAll(() => engine.close());

  const images = [makeImage(path.join(work, 'a.png')), makeImage(path.join(work, 'b.jpg'), 'mandelbrot=size=200x260')];

  it('imports a checkpoint into the project, once, with its manifest', async () => {
    await call('project.create', { path: path.join(work, 'p') });
    const m = await call('models.import', {
      path: fixturePath('vit', 'dinov2reg_tiny.hf.safetensors'),
      licence: 'test weights',
    });
    expect(m).toMatchObject({
      id: 1,
      scheme: 'hf-dinov2',
      licence: 'test weights',
      architecture: { family: 'dinov2', patchSize: 14, registers: 4, dim: 48 },
    });
    expect(m.sha256).toMatch(/^[0-9a-f]{64}$/);
    expect(fs.existsSync(path.join(work, 'p', 'models', `${m.sha256}.safetensors`))).toBe(true);
    const again = await call('models.import', { path: fixturePath('vit', 'dinov2reg_tiny.hf.safetensors') });
    expect(again.id).toBe(1);
    expect(await call('models.list', {})).toHaveLength(1);
  });

  it('refuses a broken checkpoint with the reason and keeps the registry as it was', async () => {
    const bad = path.join(work, 'bad.safetensors');
    fs.writeFileSync(bad, fs.readFileSync(fixturePath('vit', 'dino_tiny.official.safetensors')).subarray(0, 5000));
    await expect(call('models.import', { path: bad })).rejects.toMatchObject({ code: 'INVALID_MODEL' });
    await expect(call('models.import', { path: path.join(work, 'nope.safetensors') })).rejects.toMatchObject({
      code: 'NOT_FOUND',
    });
    expect(await call('models.list', {})).toHaveLength(1);
  });

  it('embeds images with the CLS token, the same as running the graph directly, and says on which provider', async () => {
    const res = await call('models.embed', { id: 1, paths: images, size: 112 });
    expect(res).toMatchObject({ modelId: 1, provider: 'cpu', size: 112, dim: 48 });
    expect(res.vectors).toHaveLength(2);

    const model = importViTFile(fixturePath('vit', 'dinov2reg_tiny.hf.safetensors'), { heads: 3, lnEps: 1e-6 });
    const decoded = await Promise.all(images.map(decodeImage));
    const s = await ort.InferenceSession.create(
      buildViTOnnx(model, { height: 112, width: 112, outputs: { cls: true } }),
    );
    const out = await s.run({
      pixels: new ort.Tensor('float32', preprocessBatch(decoded, { size: 112 }), [2, 3, 112, 112]),
    });
    expect(maxAbsDiff(res.vectors.flat(), out.cls?.data as Float32Array)).toBeLessThan(1e-5);
    const info = await call('runtime.info', {});
    expect(info.active?.provider).toBe('cpu');
  });

  it('reports unreadable images clearly', async () => {
    const txt = path.join(work, 'notes.png');
    fs.writeFileSync(txt, 'this is not an image');
    await expect(call('models.embed', { id: 1, paths: [txt] })).rejects.toMatchObject({ code: 'UNREADABLE_MEDIA' });
    await expect(call('models.embed', { id: 1, paths: [images[0] as string], size: 100 })).rejects.toThrow(
      /multiple of the patch size 14/,
    );
  });

  it('keeps the provider override and falls back when it cannot load', async () => {
    const info = await call('runtime.configure', { provider: 'cuda' });
    expect(info.settings.provider).toBe('cuda');
    const res = await call('models.embed', { id: 1, paths: [images[0] as string], size: 112 });
    expect(res.provider).toBe('cpu');
    const after = await call('runtime.info', {});
    expect(after.active?.fallbacks[0]?.provider).toBe('cuda');
    await call('runtime.configure', { provider: 'auto' });
  });

  it('removes a model and its file', async () => {
    const [m] = await call('models.list', {});
    expect(await call('models.remove', { id: m?.id ?? 0 })).toEqual([]);
    expect(fs.existsSync(path.join(work, 'p', 'models', `${m?.sha256}.safetensors`))).toBe(false);
  });
});
