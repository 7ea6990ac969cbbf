import fs from 'node:fs';
import path from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { fixturePath } from '../helpers/fixtures.js';
import { randomLlamaWeights, tinyLlamaConfig, writeTinyLlama } from '../helpers/llama-models.js';
import { writeInitViT } from '../helpers/models.js';
import { createBareProject, type Session, useAppSession } from './browser.js';

describe('a ShareLock head from the Train view, in browser mode', () => {
  const app = useAppSession();
  let s: Session;
  beforeAll(() => {
    s = app.session();
  });

  it('trains a head on the seen classes of a labelled folder and says which were held out', async () => {
    const { page } = s;
    await createBareProject(s, path.join(app.work, 'sharelock'));
    // A labelled folder of 3 Fashion-MNIST classes (4 images each), a ViT's features of it, a tiny language model.
    const labelled = path.join(app.work, 'labelled');
    for (const c of ['bag', 'coat', 'dress']) {
      fs.mkdirSync(path.join(labelled, c), { recursive: true });
      for (const f of fs.readdirSync(fixturePath('fashion', 'train', c)).slice(0, 4))
        fs.copyFileSync(fixturePath('fashion', 'train', c, f), path.join(labelled, c, f));
    }
    await s.engine.call('library.add', { paths: [labelled] });
    await expect.poll(async () => (await s.engine.call('library.list', { status: 'done' })).total).toBe(12);
    const vit = await s.engine.call('models.import', { path: writeInitViT(path.join(app.work, 'vit.safetensors')) });
    await s.engine.call('features.extract', { modelId: vit.id, size: 32 });
    await expect.poll(async () => (await s.engine.call('features.runs', {}))[0]?.frames, { timeout: 60_000 }).toBe(12);
    const c = tinyLlamaConfig();
    await s.engine.call('text.models.import', {
      path: writeTinyLlama(path.join(app.work, 'llm'), 'gguf', randomLlamaWeights(c, 3), c),
    });

    await page.getByRole('link', { name: 'Train' }).click();
    const card = page.getByRole('form', { name: 'Train a ShareLock head' });
    await expect
      .poll(() => card.getByLabel('Language model').locator('option:checked').textContent())
      .toMatch(/tiny-llama-test/);
    await card.getByLabel('Labelled folder').fill(labelled);
    await card.getByLabel('Held-out classes').fill('coat');
    await card.getByLabel('Training length (updates)').fill('3');
    await card.getByLabel('Pairs per update').fill('4');
    await card.getByLabel('Projector width').fill('16');
    await card.getByLabel('Validation share of images').fill('0.25');
    await card.getByLabel('Early stopping patience').fill('1');
    await card.getByRole('button', { name: 'Train the head' }).click();
    await expect
      .poll(() => card.getByTestId('sharelock-data').textContent(), { timeout: 60_000 })
      .toBe(
        '6 image–text pairs (2 more held out for validation). Trained on bag, dress; held out for zero-shot: coat.',
      );
    await expect.poll(() => card.getByTestId('sharelock-status').textContent()).toMatch(/^Done: 3 steps\./);
    await expect
      .poll(async () => (await s.engine.call('text.models.list', {})).filter((m) => m.kind === 'sharelock-head').length)
      .toBe(1);
    await card.scrollIntoViewIfNeeded();
    await s.shot('40-train-sharelock');
    expect(s.errors).toEqual([]);
  });
});
