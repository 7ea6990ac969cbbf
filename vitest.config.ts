import { defineConfig } from 'vitest/config';
import { provideSoftwareVulkan } from './tests/helpers/software-vulkan.js';

// The WebGPU tests (tests/unit/gpu) run on a software Vulkan where the machine has no GPU driver of its own; the
// loader's folder must be on LD_LIBRARY_PATH before a worker starts, so it is set here, in the main process.
provideSoftwareVulkan();

export default defineConfig({
  test: {
    include: ['tests/unit/**/*.test.ts'],
    environment: 'node',
    // Generous bounds: a test's pass must not depend on how busy the machine is (training and job tests take
    // seconds on a quiet 2-core machine and minutes when it is shared); a test that truly hangs still fails.
    testTimeout: 600_000,
    hookTimeout: 600_000,
    // Tests that spawn engines and write folders share two cores; keep them from starving each other.
    maxWorkers: 2,
  },
});
