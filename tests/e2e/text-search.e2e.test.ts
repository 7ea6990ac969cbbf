/**
 * Words for the library (issue 29), end to end in browser mode: a tiny GGUF language model and a ShareLock head
 * written by tests/helpers/text-head.ts (each class prompt mapped onto its class's centroid) are imported; a typed
 * query in Retrieve shows ranked frames with their scores, typed class names in Classify give accuracy and a
 * confusion matrix, and the Map colours its points by a text.
 */
import path from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { fixturePath } from '../helpers/fixtures.js';
import { writeCentroidHead, writeTinyGgufLlm } from '../helpers/text-head.js';
import { createBareProject, type Session, useAppSession } from './browser.js';
import { libraryWithFeatures } from './text-fixture.js';

const ROOT = fixturePath('fashion', 'train');

describe('text search, end to end in browser mode', () => {
  const app = useAppSession();
  const { work } = app;
  let s: Session;
  beforeAll(() => {
    s = app.session();
  });

  it('says why text search cannot run yet, then ranks the frames for a typed query', async () => {
    const { page } = s;
    const projectDir = path.join(work, 'words');
    await createBareProject(s, projectDir);
    const { vision, runId } = await libraryWithFeatures(s, { root: ROOT, work, frames: 300 });

    await page.getByRole('link', { name: 'Retrieve' }).click();
    await page.getByLabel('Describe what to find').fill('a photo of a trouser');
    await expect.poll(() => page.getByTestId('text-search-why').textContent()).toMatch(/No ShareLock head/);
    await s.shot('70-text-search-why');

    const llmFile = writeTinyGgufLlm(work);
    const file = llmFile.file;
    const head = await writeCentroidHead({ dir: work, projectDir, runId, root: ROOT, llm: llmFile, vision });
    await s.engine.call('text.models.import', { path: file });
    await s.engine.call('text.models.import', { path: head.file, name: 'fashion centroids' });
    // the view asks again when a job finishes, or when it is opened again
    await page.getByRole('link', { name: 'Map' }).click();
    await page.getByRole('link', { name: 'Retrieve' }).click();
    await page.getByTestId('text-pair').waitFor();
    await page.getByLabel('Describe what to find').fill('a photo of a trouser');
    await page.getByRole('button', { name: 'Search', exact: true }).click();
    const results = page.getByTestId('text-results');
    await expect.poll(() => results.locator('li').count(), { timeout: 60_000 }).toBe(24);
    const scores = (await results.getByTestId('text-score').allTextContents()).map((t) =>
      Number(t.replace('cos ', '')),
    );
    expect(scores).toEqual([...scores].sort((a, b) => b - a));
    // the frames nearest the trouser centroid are trousers (the folder each came from says so)
    const top = (await s.engine.call('retrieve.text', { text: 'a photo of a trouser', k: 12 })) as {
      results: { mediaId: number }[];
    };
    const items = (await s.engine.call('library.list', { limit: 1000 })) as { items: { id: number; path: string }[] };
    const trousers = top.results.filter((r) =>
      items.items.find((m) => m.id === r.mediaId)?.path.includes(`${path.sep}trouser${path.sep}`),
    );
    expect(trousers.length).toBeGreaterThanOrEqual(8);
    await page.getByRole('heading', { name: /a photo of a trouser/ }).scrollIntoViewIfNeeded();
    await s.shot('71-retrieve-by-text');
  }, 300_000);

  it('classifies the frames by typed class names, with accuracy and the confusion matrix', async () => {
    const { page } = s;
    await page.getByRole('link', { name: 'Classify' }).click();
    await page
      .getByLabel('Class names, one a line')
      .fill('ankle_boot\nbag\ncoat\ndress\npullover\nsandal\nshirt\nsneaker\ntrouser\ntshirt_top');
    await page.getByLabel(/Labelled folder to score/).fill(ROOT);
    await page.getByRole('button', { name: 'Predict by name' }).click();
    await expect
      .poll(() => page.getByTestId('classify-accuracy').textContent(), { timeout: 60_000 })
      .toMatch(/\d+\.\d %/);
    await page.getByText(/zero-shot from class names, 8 prompt templates/).waitFor();
    await page.getByRole('table', { name: /Confusion matrix/ }).waitFor();
    await page.getByRole('table', { name: /Confusion matrix/ }).scrollIntoViewIfNeeded();
    await s.shot('72-classify-zero-shot');
  }, 180_000);

  it('colours the map by the similarity of each point to a text', async () => {
    const { page } = s;
    await page.getByRole('link', { name: 'Map' }).click();
    await page.getByLabel('Layout').selectOption('pca');
    await page.getByRole('button', { name: 'Build map' }).click();
    await page.getByTestId('map-canvas').waitFor({ timeout: 60_000 });
    await page.getByLabel('Colour by').selectOption('text');
    await page.getByLabel('Text', { exact: true }).fill('a photo of a sandal');
    await page.getByRole('button', { name: 'Colour', exact: true }).click();
    await page.getByTestId('map-text-note').waitFor({ timeout: 60_000 });
    const legend = page.getByRole('list', { name: 'Legend' });
    await s.shot('73-map-by-text');
    await expect.poll(() => legend.locator('li').count()).toBeGreaterThan(2);
    const labels = await legend.locator('li').allTextContents();
    expect(
      labels.every((l) => /cos -?\d\.\d{3} – -?\d\.\d{3}/.test(l)),
      labels.join(' | '),
    ).toBe(true);
    await s.shot('73-map-by-text');
    expect(s.errors).toEqual([]);
  }, 180_000);
});
