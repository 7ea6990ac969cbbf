import path from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { fixturePath } from '../helpers/fixtures.js';
import { makeImage } from '../helpers/media.js';
import { findSoftwareVulkan } from '../helpers/software-vulkan.js';
import { type Session, useAppSession } from './browser.js';

describe('models and device, end to end in browser mode', () => {
  const app = useAppSession();
  const { work } = app;
  let s: Session;
  beforeAll(() => {
    s = app.session();
  });

  it('imports a DINOv2-with-registers checkpoint and lists what it is', async () => {
    const { page } = s;
    // A project of its own (the demo project opens with the bundled encoder already registered).
    await page.getByLabel('Project folder', { exact: true }).fill(path.join(work, 'models'));
    // A project without the starter model: this test brings its own (issue 26 adds it by default).
    await page.getByLabel('Add the starter model').uncheck();
    await page.getByRole('button', { name: 'Create project' }).click();
    await page.getByTestId('project-name').filter({ hasText: 'models' }).waitFor();
    await page.getByRole('link', { name: 'Models' }).click();
    // The empty state offers the starter model (issue 26).
    await page.getByTestId('no-model').waitFor();
    await page.getByLabel('Weights file').fill(fixturePath('vit', 'dinov2reg_tiny.hf.safetensors'));
    await page.getByLabel('Licence (optional)').fill('test weights (tools/vit_reference.py)');
    await page.getByRole('button', { name: 'Import' }).click();
    const row = page.getByTestId('model-1');
    await row.waitFor();
    await expect(row.textContent()).resolves.toMatch(/DINOv2 ViT-d48\/14 \+ 4 registers/);
    await expect(row.textContent()).resolves.toMatch(/hf-dinov2 names/);
    await s.shot('06-models-imported');
  });

  it('shows a readable error for a file that is not a checkpoint', async () => {
    const { page } = s;
    await page.getByLabel('Weights file').fill(fixturePath('vit', 'dino_tiny.224x224.expected.safetensors'));
    await page.getByRole('button', { name: 'Import' }).click();
    // Under the field, which keeps the path; typing another path clears it.
    const alert = page.getByTestId('field-error');
    await alert.waitFor();
    await expect(alert.textContent()).resolves.toMatch(/unknown architecture/);
    await page.getByLabel('Weights file').fill('');
    await expect.poll(() => alert.count()).toBe(0);
  });

  it('shows the execution providers, why the GPU ones are missing, and the one a model ran on', async () => {
    const { page } = s;
    await page.getByRole('link', { name: 'Device' }).click();
    await page.getByTestId('provider-cpu').filter({ hasText: 'yes' }).waitFor();
    await expect(page.getByTestId('provider-cuda').textContent()).resolves.toMatch(/no.*(shared library|load)/i);
    // The WebGPU adapter: SwiftShader here (tests/e2e/vitest.config.ts provides it where there is no GPU driver).
    const adapter = page.getByTestId('webgpu-adapter');
    if (findSoftwareVulkan() || process.env.CI)
      await expect(adapter.textContent()).resolves.toMatch(
        /^WebGPU adapter: .+ · (software adapter \(runs on the CPU\)|hardware) · buffers up to .+, storage bindings up to .+$/,
      );
    else await expect(adapter.textContent()).resolves.toMatch(/WebGPU adapter/);
    // Run the model (as the embed command does) and watch the device panel and status bar follow.
    const image = makeImage(path.join(work, 'frame.png'));
    const res = await s.engine.call('models.embed', { id: 1, paths: [image], size: 112 });
    expect(res.provider).toBe('cpu');
    await page.getByTestId('active-provider').filter({ hasText: 'CPU' }).waitFor();
    await page.getByTestId('status-provider').filter({ hasText: 'Running on CPU' }).waitFor();
    await s.shot('07-device-panel');
    expect(s.errors).toEqual([]);
  });
});
