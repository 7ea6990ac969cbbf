import { describe, expect, it } from 'vitest';
import { WORKER_MMAP_THRESHOLD_MIB, workerEnv } from '../../../native/jobs/worker-host.js';

describe('the environment of a worker process', () => {
  it("fixes glibc's malloc mmap threshold on Linux so that freed activations go back to the system", () => {
    const env = workerEnv({ PATH: '/usr/bin' });
    expect(env.PATH).toBe('/usr/bin');
    expect(WORKER_MMAP_THRESHOLD_MIB).toBe(4);
    if (process.platform === 'linux') expect(env.MALLOC_MMAP_THRESHOLD_).toBe(String(4 * 1024 * 1024));
    else expect(env.MALLOC_MMAP_THRESHOLD_).toBeUndefined();
  });

  it('keeps a threshold the user set', () => {
    expect(workerEnv({ MALLOC_MMAP_THRESHOLD_: '65536' }).MALLOC_MMAP_THRESHOLD_).toBe('65536');
  });
});
