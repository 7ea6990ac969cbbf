import { defineConfig } from 'vitest/config';
import { provideSoftwareVulkan } from '../helpers/software-vulkan.js';

// The engines the tests start see a WebGPU adapter (SwiftShader where the machine has no GPU driver), so the Device
// view shows one; the loader's folder must be on LD_LIBRARY_PATH before a process starts, hence here.
provideSoftwareVulkan();

export default defineConfig({
  test: {
    root: new URL('../..', import.meta.url).pathname,
    include: ['tests/e2e/**/*.e2e.test.ts'],
    environment: 'node',
    testTimeout: 600_000,
    hookTimeout: 600_000,
    // UI state settles in hundreds of ms, but a loaded two-core CI machine can take seconds (images, jobs).
    expect: { poll: { timeout: 15_000 } },
    // One browser at a time on a two-core machine.
    fileParallelism: false,
  },
});
