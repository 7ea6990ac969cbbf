import fs from 'node:fs';
import path from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { writeFiles } from '../helpers/tmp.js';
import { type Session, useAppSession } from './browser.js';

describe('foundation, end to end in browser mode', () => {
  const app = useAppSession();
  const { work } = app;
  let s: Session;
  beforeAll(() => {
    s = app.session();
  });

  it('opens on the demo project and says plainly what is in it', async () => {
    const { page } = s;
    await page.getByTestId('project-name').filter({ hasText: 'Demo project' }).waitFor();
    await expect(page.getByTestId('demo-note').textContent()).resolves.toMatch(/ingests the bundled sample video/);
    await expect(page.getByTestId('demo-note').textContent()).resolves.toMatch(/bundled ViT-Ti\/16/);
    await page.getByText('Engine connected').waitFor();
    await s.shot('01-demo-project');
  });

  it('shows a readable error for a folder that is not a project', async () => {
    const { page } = s;
    const notProject = path.join(work, 'holiday-photos');
    fs.mkdirSync(notProject);
    await page.getByLabel('Existing project folder').fill(notProject);
    await page.getByRole('button', { name: 'Open', exact: true }).click();
    // Said under the field the path was typed in, which keeps the path to correct.
    const field = page.getByLabel('Existing project folder');
    const alert = page.getByRole('alert').filter({ hasText: 'is not a Flaneur project' });
    await alert.waitFor();
    await expect(alert.getAttribute('id')).resolves.toBe(await field.getAttribute('aria-describedby'));
    await expect(field.inputValue()).resolves.toBe(notProject);
    await s.shot('02-not-a-project-notice');
    await field.fill('');
    await expect.poll(() => alert.count()).toBe(0);
  });

  it('creates a project, runs a long job, sees it advance, cancels it, and resumes it to the end', async () => {
    const { page } = s;
    const projectDir = path.join(work, 'street-project');
    await page.getByLabel('Project folder', { exact: true }).fill(projectDir);
    await page.getByLabel('Name (optional)').fill('Street study');
    // A project without the starter model: this test brings its own (issue 26 adds it by default).
    await page.getByLabel('Add the starter model').uncheck();
    await page.getByRole('button', { name: 'Create project' }).click();
    await page.getByTestId('project-name').filter({ hasText: 'Street study' }).waitFor();

    const dataDir = path.join(work, 'frames');
    const count = 2000;
    writeFiles(dataDir, count, 1 << 20);

    await page.getByRole('link', { name: /^Jobs/ }).click();
    await page.getByLabel('Folder', { exact: true }).fill(dataDir);
    await page.getByRole('button', { name: 'Start' }).click();

    const row = page.getByTestId('job-1');
    const bar = row.getByTestId('job-progress');
    await row.and(page.locator('[data-state="running"]')).waitFor();
    // Progress advances: two distinct readings of the bar while hashing.
    const readDone = async () => Number(await bar.getAttribute('data-done'));
    await expect.poll(readDone, { timeout: 20_000, interval: 10 }).toBeGreaterThan(0);
    const first = await readDone();
    await expect.poll(readDone, { timeout: 20_000, interval: 10 }).toBeGreaterThan(first);
    const second = await readDone();
    expect(second).toBeGreaterThan(first);
    expect(second).toBeLessThan(count);
    await s.shot('03-job-running');

    await row.getByRole('button', { name: 'Cancel' }).click();
    await row.getByTestId('job-state').filter({ hasText: 'cancelled' }).waitFor();
    const cancelledAt = await readDone();
    expect(cancelledAt).toBeLessThan(count);
    await s.shot('04-job-cancelled');

    await row.getByRole('button', { name: 'Resume' }).click();
    await row.getByTestId('job-state').filter({ hasText: 'done' }).waitFor({ timeout: 60_000 });
    await expect(row.textContent()).resolves.toMatch(new RegExp(`${count} ok · 0 failed · 0 skipped · attempt 2`));
    // The job started from the form is selected: its item panel shows below the list.
    await page.getByText('No failed or skipped items.').waitFor();
    await s.shot('05-job-resumed-done');
    expect(s.errors).toEqual([]);
  });
});
