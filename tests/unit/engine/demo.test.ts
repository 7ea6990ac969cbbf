import fs from 'node:fs';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { DEFAULT_MODEL_DIR } from '../../../native/engine/engine.js';
import { dispatchEngine } from '../../helpers/dispatch.js';

describe('the demo project', () => {
  const { engine, call } = dispatchEngine();
  afterAll(() => engine.close());

  it('opens with the bundled default encoder registered, as its manifest describes it', async () => {
    const manifest = JSON.parse(fs.readFileSync(path.join(DEFAULT_MODEL_DIR, 'manifest.json'), 'utf8')) as {
      name: string;
      file: string;
      architecture: { dim: number; depth: number };
      evaluation: { miou: number };
    };
    expect(fs.statSync(path.join(DEFAULT_MODEL_DIR, manifest.file)).size).toBeLessThan(25 * 2 ** 20);
    expect(manifest.evaluation.miou).toBeGreaterThan(0);
    await call('project.openDemo', {});
    const models = await call('models.list', {});
    expect(models.map((m) => m.name)).toEqual([manifest.name]);
    expect(models[0]?.architecture).toMatchObject({
      dim: manifest.architecture.dim,
      depth: manifest.architecture.depth,
    });
  });
});
