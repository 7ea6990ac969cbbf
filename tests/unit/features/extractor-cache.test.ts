import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { ExtractorCache } from '../../../native/features/extractor-cache.js';
import type { RuntimeSettings } from '../../../native/runtime/session.js';
import { dispatchEngine } from '../../helpers/dispatch.js';
import { writeInitViT } from '../../helpers/models.js';
import { tmpDir } from '../../helpers/tmp.js';

describe('extractor cache', () => {
  const work = tmpDir();
  const { engine, call } = dispatchEngine();
  afterAll(() => engine.close());

  it('keeps one session per model file and size, and makes new ones when the Device settings change', async () => {
    await call('project.create', { path: path.join(work, 'p') });
    const a = (await call('models.import', { path: writeInitViT(path.join(work, 'a.safetensors'), 1) })).id;
    const b = (await call('models.import', { path: writeInitViT(path.join(work, 'b.safetensors'), 2) })).id;
    const project = engine.requireProject().project;
    let settings: RuntimeSettings = { provider: 'auto', threads: null };
    const cache = new ExtractorCache(() => settings);

    const first = await cache.get(project, a, 32);
    expect(await cache.get(project, a, 32)).toBe(first);
    expect(await cache.get(project, a, 48)).not.toBe(first);
    expect(await cache.get(project, b, 32)).not.toBe(first);
    await expect(cache.get(project, a, 40)).rejects.toThrow(/not a multiple of the model's patch size 16/);

    settings = { provider: 'auto', threads: 1 };
    const again = await cache.get(project, a, 32);
    expect(again).not.toBe(first);
    // The old session was released with the settings change; the new one runs.
    const img = { width: 32, height: 32, data: new Uint8Array(32 * 32 * 3).fill(90) };
    await expect(first.run([img])).rejects.toThrow(/released/);
    const [f] = await again.run([img]);
    expect(f?.cls).toHaveLength(192);
    await cache.release();
  });
});
