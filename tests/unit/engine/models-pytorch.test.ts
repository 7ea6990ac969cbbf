/**
 * A PyTorch checkpoint and a Hugging Face snapshot folder imported through the engine's models.import: the
 * backbone is stored as canonical .safetensors, the registry says what was taken, and embeddings equal those of
 * the same weights imported from .safetensors.
 */
import fs from 'node:fs';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { dispatchEngine } from '../../helpers/dispatch.js';
import { fixturePath, maxAbsDiff } from '../../helpers/fixtures.js';
import { makeImage } from '../../helpers/media.js';
import { tmpDir } from '../../helpers/tmp.js';

describe('importing PyTorch checkpoints through the engine', () => {
  const work = tmpDir();
  const { engine, call } = dispatchEngine();
  afterAll(() => engine.close());

  it('stores the teacher backbone of a DINO checkpoint and embeds as its .safetensors twin does', async () => {
    await call('project.create', { path: path.join(work, 'p') });
    const pth = await call('models.import', { path: fixturePath('pth', 'dino_tiny.dino-checkpoint.pth'), heads: 3 });
    expect(pth).toMatchObject({ name: 'dino_tiny.dino-checkpoint', scheme: 'official', sourceDtype: 'F32' });
    expect(pth.origin).toBe(
      "'teacher' of a PyTorch checkpoint (zip format); not 'student'; prefix 'module.backbone.' removed; 4 head tensors dropped.",
    );
    const stored = path.join(work, 'p', 'models', `${pth.sha256}.safetensors`);
    expect(fs.readFileSync(stored).subarray(8, 9).toString()).toBe('{');
    const st = await call('models.import', { path: fixturePath('vit', 'dino_tiny.official.safetensors'), heads: 3 });
    expect(st.origin).toBeNull();
    const img = [makeImage(path.join(work, 'a.png'))];
    const [a, b] = await Promise.all([
      call('models.embed', { id: pth.id, paths: img, size: 64 }),
      call('models.embed', { id: st.id, paths: img, size: 64 }),
    ]);
    expect(maxAbsDiff(a.vectors.flat(), b.vectors.flat())).toBe(0);
  });

  it('imports a Hugging Face snapshot folder (config.json beside model.safetensors)', async () => {
    const dir = path.join(work, 'snapshot');
    fs.mkdirSync(dir);
    fs.copyFileSync(fixturePath('vit', 'dinov2reg_tiny.hf.safetensors'), path.join(dir, 'model.safetensors'));
    fs.writeFileSync(path.join(dir, 'config.json'), JSON.stringify({ num_attention_heads: 3, layer_norm_eps: 1e-6 }));
    const m = await call('models.import', { path: dir });
    expect(m).toMatchObject({ scheme: 'hf-dinov2', architecture: { heads: 3, registers: 4 } });
    const empty = path.join(work, 'empty');
    fs.mkdirSync(empty);
    await expect(call('models.import', { path: empty })).rejects.toMatchObject({ code: 'NOT_FOUND' });
  });

  it('imports a DINOv3 .pth in official names and embeds as the same weights in Hugging Face names do', async () => {
    const pth = await call('models.import', { path: fixturePath('dinov3', 'dinov3_tiny.official.pth'), heads: 4 });
    expect(pth).toMatchObject({ scheme: 'dinov3', architecture: { family: 'dinov3', registers: 4, mlp: 'gelu' } });
    const st = await call('models.import', {
      path: fixturePath('dinov3', 'dinov3_tiny.hf.safetensors'),
      heads: 4,
    });
    expect(st.scheme).toBe('hf-dinov3');
    const img = [makeImage(path.join(work, 'c.png'))];
    const [a, b] = await Promise.all([
      call('models.embed', { id: pth.id, paths: img, size: 96 }),
      call('models.embed', { id: st.id, paths: img, size: 96 }),
    ]);
    expect(maxAbsDiff(a.vectors.flat(), b.vectors.flat())).toBeLessThan(1e-5);
  });
});
