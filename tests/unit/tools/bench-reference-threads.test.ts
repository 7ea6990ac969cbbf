import { execFileSync } from 'node:child_process';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { REFERENCE_WAIT_ENV, ROOT, TORCH_PYTHON, threadEnv } from '../../../bench/reference.js';

/** What tools/bench_threads.py leaves in the environment (before torch would load) for `--threads N`. */
function pythonEnv(threads: number, extra: Record<string, string> = {}): Record<string, string | null> {
  const env = Object.fromEntries(Object.entries(process.env).filter(([k]) => !(k in REFERENCE_WAIT_ENV)));
  const code = [
    'import json, os, sys',
    `sys.path.insert(0, ${JSON.stringify(path.join(ROOT, 'tools'))})`,
    `sys.argv = ["x", "--threads", "${threads}"]`,
    'import bench_threads',
    'print(json.dumps({v: os.environ.get(v) for v in bench_threads.ENV_VARS}))',
  ].join('\n');
  return JSON.parse(execFileSync(TORCH_PYTHON, ['-c', code], { env: { ...env, ...extra }, encoding: 'utf8' }));
}

describe('the PyTorch reference thread settings', () => {
  it('lets idle threads sleep at more than one thread, and sets no wait policy at one', () => {
    const two = threadEnv(2);
    expect(two.OMP_NUM_THREADS).toBe('2');
    expect(two.OPENBLAS_NUM_THREADS).toBe('2');
    if (process.env.OMP_WAIT_POLICY === undefined) expect(two.OMP_WAIT_POLICY).toBe('PASSIVE');
    if (process.env.OPENBLAS_THREAD_TIMEOUT === undefined) expect(two.OPENBLAS_THREAD_TIMEOUT).toBe('4');
    const one = threadEnv(1);
    expect(one.OMP_NUM_THREADS).toBe('1');
    expect(one.OMP_WAIT_POLICY).toBe(process.env.OMP_WAIT_POLICY);
  });

  it('sets the same variables in the reference script before torch loads, keeping a policy the caller chose', () => {
    expect(pythonEnv(2)).toMatchObject({
      OMP_NUM_THREADS: '2',
      OPENBLAS_NUM_THREADS: '2',
      MKL_NUM_THREADS: '2',
      OMP_WAIT_POLICY: 'PASSIVE',
      OPENBLAS_THREAD_TIMEOUT: '4',
    });
    expect(pythonEnv(1)).toMatchObject({ OMP_NUM_THREADS: '1', OMP_WAIT_POLICY: null, OPENBLAS_THREAD_TIMEOUT: null });
    expect(pythonEnv(2, { OMP_WAIT_POLICY: 'ACTIVE' }).OMP_WAIT_POLICY).toBe('ACTIVE');
  });
});
