import fs from 'node:fs';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { pendingRegistration } from '../../../native/train/checkpoint.js';
import { waitFor } from '../../helpers/engine-process.js';
import { engineWithFrames, TINY_TRAIN } from '../../helpers/train.js';

// A trained encoder is registered by the engine just after its job ends; an engine stopped in between must not leave
// it only on disk, and a model the user removed must not come back.
describe('registration of a trained encoder', () => {
  let close: () => Promise<void> = async () => {};
  afterAll(() => close());

  it('is registered at the next open when the engine stopped before registering it, and never brought back once removed', async () => {
    const { engine, call, runner } = await engineWithFrames('pending-registration');
    close = () => engine.close();
    const dir = engine.requireProject().project.dir;
    // Another project in between: opening the current one again is a no-op.
    const reopen = async () => {
      await call('project.create', { path: `${dir}-other-${Date.now()}` });
      await call('project.open', { path: dir });
    };
    const job = await call('train.start', { ...TINY_TRAIN, steps: 2, checkpointEvery: 2 });
    await runner.idle();
    const name = `DINO tiny (job ${job.id})`;
    const find = async () => (await call('models.list', {})).find((m) => m.name === name);
    const first = await waitFor(find);
    const encoder = path.join(
      engine.requireProject().project.checkpointsDir,
      `train-${job.id}`,
      'export',
      'encoder.safetensors',
    );
    expect(fs.existsSync(encoder)).toBe(true);
    // Registered: the marker the job left is gone.
    await waitFor(async () => !fs.existsSync(pendingRegistration(encoder)));

    // As if the engine had stopped between the job's end and the registration: the model missing, the marker there.
    await call('models.remove', { id: first.id });
    fs.writeFileSync(pendingRegistration(encoder), '');
    await reopen();
    const again = await waitFor(find);
    expect(again.sha256).toBe(first.sha256);
    await waitFor(async () => !fs.existsSync(pendingRegistration(encoder)));

    // Removed by the user: no marker, so opening the project again leaves it removed.
    await call('models.remove', { id: again.id });
    await reopen();
    expect(fs.existsSync(pendingRegistration(encoder))).toBe(false);
    expect(await find()).toBeUndefined();
  }, 120_000);
});
