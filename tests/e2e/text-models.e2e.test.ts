/**
 * Language models and text heads in the Models view (issue 29), end to end in browser mode: a refused file is
 * explained under the path field; the tiny GGUF language model and a ShareLock head (tests/helpers/text-head.ts)
 * imported through the view are listed with their size, memory and pairing; Retrieve's "Search by text" then
 * works; a head removed in the view is gone, and Retrieve says where to import one.
 */
import fs from 'node:fs';
import path from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { fixturePath } from '../helpers/fixtures.js';
import { writeCentroidHead, writeTinyGgufLlm } from '../helpers/text-head.js';
import { createBareProject, type Session, useAppSession } from './browser.js';
import { libraryWithFeatures } from './text-fixture.js';

describe('language models and text heads in the Models view', () => {
  const app = useAppSession();
  const { work } = app;
  let s: Session;
  beforeAll(() => {
    s = app.session();
  });

  it('imports a language model and a head by path, lists them, and Retrieve can then search by text', async () => {
    const { page } = s;
    // three classes of five images: enough for a head whose class prompts land on their centroids
    const root = path.join(work, 'labelled');
    for (const cls of ['bag', 'sandal', 'trouser']) {
      fs.mkdirSync(path.join(root, cls), { recursive: true });
      for (const f of fs.readdirSync(fixturePath('fashion', 'train', cls)).slice(0, 5))
        fs.copyFileSync(fixturePath('fashion', 'train', cls, f), path.join(root, cls, f));
    }
    const projectDir = path.join(work, 'words');
    await createBareProject(s, projectDir);
    const { vision, runId } = await libraryWithFeatures(s, { root: root, work, frames: 15 });
    const llm = writeTinyGgufLlm(work);
    const head = await writeCentroidHead({ dir: work, projectDir, runId, root, llm, vision });

    await page.getByRole('link', { name: 'Models' }).click();
    const section = page.getByTestId('text-models');
    await section.getByText(/No language model or text head in this project yet/).waitFor();
    const field = page.getByLabel('Language model or head file');
    const importButton = section.getByRole('button', { name: 'Add to the project' });

    // a file that is neither: the engine's sentence under the field, the path kept to correct
    const notes = path.join(work, 'notes.txt');
    fs.writeFileSync(notes, 'hello');
    await field.fill(notes);
    await importButton.click();
    await expect
      .poll(() => section.getByTestId('field-error').textContent())
      .toMatch(/notes\.txt is neither a language model .* nor a ShareLock head/);
    expect(await field.inputValue()).toBe(notes);
    await s.shot('76-text-model-refused');

    await field.fill(llm.file);
    await importButton.click();
    await expect.poll(() => section.getByTestId('text-model-imported').textContent()).toMatch(/tiny-llama-test/);
    await field.fill(head.file);
    await section.getByLabel('Shown as (optional)').fill('fashion centroids');
    await importButton.click();
    await expect.poll(() => section.getByTestId('text-model-imported').textContent()).toMatch(/fashion centroids/);

    const rows = section.getByRole('table', { name: 'Language models and text heads' }).locator('tbody tr');
    await expect.poll(() => rows.count()).toBe(2);
    const llmRow = rows.filter({ hasText: 'tiny-llama-test' }).first();
    expect(await llmRow.textContent()).toMatch(
      /Language model \(GGUF, llama, width 32\).*fits this machine's memory.*needs about .* of memory/,
    );
    const headRow = rows.filter({ hasText: 'fashion centroids' });
    expect(await headRow.textContent()).toMatch(
      /ShareLock head .*\(1 layer of width 4096, .*pairs with the language model tiny-llama-test and the vision encoder/,
    );
    await section.scrollIntoViewIfNeeded();
    await s.shot('77-text-models-listed');

    // Retrieve's text box can act now: the pair is named and a query ranks frames
    await page.getByRole('link', { name: 'Retrieve' }).click();
    await page.getByTestId('text-pair').waitFor();
    await page.getByLabel('Describe what to find').fill('a photo of a trouser');
    const search = page.getByRole('button', { name: 'Search', exact: true });
    expect(await search.isEnabled()).toBe(true);
    await search.click();
    await expect.poll(() => page.getByTestId('text-results').locator('li').count(), { timeout: 60_000 }).toBe(15);

    // the head removed in the Models view: gone from the list, and Retrieve says where to import one
    await page.getByRole('link', { name: 'Models' }).click();
    await section.getByRole('button', { name: 'Remove fashion centroids' }).click();
    await expect.poll(() => rows.count()).toBe(1);
    await page.getByRole('link', { name: 'Retrieve' }).click();
    await page.getByLabel('Describe what to find').fill('a photo of a trouser');
    await expect
      .poll(() => page.getByTestId('text-search-why').textContent())
      .toMatch(/No ShareLock head in this project: import one in Models → "Language models and text heads"/);
    expect(s.errors).toEqual([]);
  }, 300_000);
});
