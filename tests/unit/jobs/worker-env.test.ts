import { describe, expect, it } from 'vitest';
import { workerEnv } from '../../../native/jobs/worker-host.js';

describe('the environment of a worker process', () => {
  it("fixes glibc's malloc mmap threshold on Linux so that freed activations go back to the system", () => {
    const env = workerEnv({ PATH: '/usr/bin' });
    expect(env.PATH).toBe('/usr/bin');
    if (process.platform === 'linux') expect(env.MALLOC_MMAP_THRESHOLD_).toBe(String(1024 * 1024));
    else expect(env.MALLOC_MMAP_THRESHOLD_).toBeUndefined();
  });

  it('keeps a threshold the user set', () => {
    expect(workerEnv({ MALLOC_MMAP_THRESHOLD_: '65536' }).MALLOC_MMAP_THRESHOLD_).toBe('65536');
  });
});
