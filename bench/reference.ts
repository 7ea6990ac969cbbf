/**
 * The one fair harness for every bench that reports a ratio against PyTorch (train, dora, neco, knn): the
 * reference (Debian's torch at /usr/bin/python3) runs once per thread count — 1 and all cores — each in its own
 * process with OMP_NUM_THREADS, OPENBLAS_NUM_THREADS and MKL_NUM_THREADS set before torch is imported (here in its
 * environment, and again by tools/bench_threads.py from `--threads`), at more than one thread with idle threads
 * that sleep (OMP_WAIT_POLICY=PASSIVE, OPENBLAS_THREAD_TIMEOUT=4), and torch.set_num_threads to match; each
 * reference script warms up, then prints the median of its timed runs (`s_per_step`), every run, its threads and
 * its peak RSS. The fastest configuration is the reference; every configuration's time goes into the JSON. A
 * configuration more than twice as slow as another means a set-up fault (oversubscribed threads), so the bench
 * fails rather than report a ratio against it. Flaneur's side runs in its own process too (a *-worker.ts), for its
 * own peak RSS.
 */
import { execFileSync } from 'node:child_process';
import os from 'node:os';
import path from 'node:path';
import { HUGE_PAGES_TUNABLE, WORKER_MMAP_THRESHOLD_MIB, workerEnv } from '../native/jobs/worker-host.js';

export const ROOT = path.resolve(import.meta.dirname, '..');
export const TORCH_PYTHON = '/usr/bin/python3';

export type Json = Record<string, unknown>;

/** The median of timed runs (the harness's statistic on both sides). */
export function median(xs: readonly number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  const n = s.length;
  return n % 2 ? (s[(n - 1) / 2] as number) : 0.5 * ((s[n / 2 - 1] as number) + (s[n / 2] as number));
}

/** Runs a command whose last stdout line is one JSON object (progress goes to stderr). */
export function runJson(cmd: string, args: readonly string[], env: NodeJS.ProcessEnv = process.env): Json {
  const out = execFileSync(cmd, args, {
    cwd: ROOT,
    env,
    encoding: 'utf8',
    stdio: ['ignore', 'pipe', 'inherit'],
    maxBuffer: 64 << 20,
  });
  return JSON.parse(out.trim().split('\n').pop() as string) as Json;
}

/**
 * Flaneur's side of a bench: `bench/<worker>` in its own process (tsx), its JSON line; in the environment the app's
 * job workers get (workerEnv: glibc's malloc mmap threshold fixed), since those jobs run there in the app.
 */
export function oursWorker(worker: string, args: readonly string[] = []): Json {
  return runJson(
    process.execPath,
    ['--import', 'tsx', path.join(ROOT, 'bench', worker), ...args],
    workerEnv(process.env),
  );
}

/**
 * Ours in two processes, one before the reference's configurations and one after them: the faster process's
 * figures, with the larger peak RSS of the two and both processes' step times (`process_s_per_step`). This machine's
 * speed drifts for minutes at a time (the same NeCo step, the same setting, back to back: 1.18-1.21 s for a few
 * runs, then 1.40-1.45 s), and the reference is its fastest of several configurations timed over those minutes;
 * ours once, before them, was at the mercy of the drift where the reference's best was not.
 */
export function oursAround<T>(
  worker: string,
  args: readonly string[],
  reference: (ours: Json) => T,
): { ours: Json; reference: T } {
  const first = oursWorker(worker, args);
  const ref = reference(first);
  const second = oursWorker(worker, args);
  const [fast = first] = [first, second].sort((a, b) => Number(a.s_per_step) - Number(b.s_per_step));
  return {
    ours: {
      ...fast,
      peak_rss_mb: Math.max(Number(first.peak_rss_mb), Number(second.peak_rss_mb)),
      process_s_per_step: [Number(first.s_per_step), Number(second.s_per_step)],
      process_peak_rss_mb: [Number(first.peak_rss_mb), Number(second.peak_rss_mb)],
    },
    reference: ref,
  };
}

/** The thread counts a reference is timed at: 1 and all cores. */
export function referenceThreads(): number[] {
  const n = os.availableParallelism();
  return n > 1 ? [1, n] : [1];
}

/**
 * Idle threads sleep instead of spinning, at more than one thread: torch's OpenMP team (GOMP spins by default) and
 * OpenBLAS's pthread workers (they spin ~2^28 cycles after every BLAS call). Spinning, each team took the core the
 * other needed, and PyTorch at 2 threads ran slower than at 1 (NeCo step 8.0 s vs 2.18 s, quiet machine); the
 * measurements: tools/torch_threads_check.py. A variable already in the caller's environment is kept (to compare).
 */
export const REFERENCE_WAIT_ENV: Readonly<Record<string, string>> = {
  OMP_WAIT_POLICY: 'PASSIVE',
  OPENBLAS_THREAD_TIMEOUT: '4',
};

/** The variables a reference configuration sets, recorded per configuration in the JSON. */
const REFERENCE_ENV_VARS = [
  'MALLOC_MMAP_THRESHOLD_',
  'GLIBC_TUNABLES',
  'OMP_NUM_THREADS',
  'OPENBLAS_NUM_THREADS',
  'MKL_NUM_THREADS',
  ...Object.keys(REFERENCE_WAIT_ENV),
];

/**
 * The environment of a reference run at `threads`: BLAS and OpenMP limited before torch loads (tools/bench_threads.py
 * sets the same from `--threads`), and at more than one thread idle threads that sleep (REFERENCE_WAIT_ENV).
 */
export function threadEnv(threads: number): NodeJS.ProcessEnv {
  const t = String(threads);
  const wait = threads > 1 ? Object.entries(REFERENCE_WAIT_ENV).filter(([k]) => process.env[k] === undefined) : [];
  return {
    ...process.env,
    OMP_NUM_THREADS: t,
    OPENBLAS_NUM_THREADS: t,
    MKL_NUM_THREADS: t,
    ...Object.fromEntries(wait),
  };
}

export interface ReferenceRun extends Json {
  threads: number;
  /**
   * The configuration's key in the JSON: the thread count, `+thp` with malloc's transparent huge pages,
   * `+mallocNMiB` with malloc's mmap threshold at N MiB (1: PyTorch's leanest; WORKER_MMAP_THRESHOLD_MIB: Flaneur's workers').
   */
  config: string;
  /** Median seconds per timed run (a step, or one pass over the queries). */
  s_per_step: number;
  peak_rss_mb: number;
}

export interface Reference {
  /** The fastest configuration. */
  best: ReferenceRun;
  /** The configuration with the lowest peak RSS (memory is compared against PyTorch at its leanest). */
  leanest: ReferenceRun;
  runs: ReferenceRun[];
  /** For the JSON: every configuration's median seconds and peak RSS, keyed by thread count, and the winner. */
  summary: {
    torch_threads: number;
    /** The fastest configuration's key and the leanest's (see ReferenceRun.config). */
    torch_config: string;
    torch_leanest_config: string;
    torch_s_by_threads: Record<string, number>;
    torch_runs_s_by_threads: Record<string, unknown>;
    torch_peak_rss_mb_by_threads: Record<string, number>;
    /** The thread and wait variables each configuration ran with. */
    torch_env_by_threads: Record<string, Record<string, string | undefined>>;
  };
}

const r3 = (x: unknown) => Number(Number(x).toFixed(3));

/**
 * A reference configuration more than twice as slow as another: a set-up fault. Carries every figure measured so
 * far; bench/run.ts prints them as the JSON line (with `setup_fault`) and exits non-zero.
 */
export class BenchSetupFault extends Error {
  constructor(
    message: string,
    readonly figures: Json,
  ) {
    super(message);
    this.name = 'BenchSetupFault';
  }
}

/**
 * Times `tools/<script> ...args --threads T` for every thread count (1 and all cores unless given) and picks the
 * fastest; throws when one configuration is more than twice as slow as another (a set-up fault, not a result).
 */
export function torchReference(
  label: string,
  script: string,
  args: readonly string[],
  threads: readonly number[] = referenceThreads(),
  /** Flaneur's figures already measured, kept in the JSON if the reference turns out set up unfairly. */
  ours: Json = {},
): Reference {
  const envs = new Map<string, Record<string, string | undefined>>();
  // Every thread count with glibc's default allocator, with transparent huge pages for malloc (HUGE_PAGES_TUNABLE:
  // PyTorch's DINO step gains from them, quiet: 2.84 vs 3.14 s at 2 threads), with a 1 MiB mmap threshold (its
  // leanest: DINO step at 1 thread, quiet: 7.81 s and 1613 MB with it, 4.89 s and 2435 MB without) and with Flaneur's
  // workers' own threshold (workerEnv, WORKER_MMAP_THRESHOLD_MIB: its Dora step was fastest there, 1.71 vs 2.07 s).
  // Speed is compared with PyTorch's fastest configuration and memory with its leanest, each PyTorch at its best.
  const thresholds = [...new Set([1, WORKER_MMAP_THRESHOLD_MIB])];
  const configs = threads.flatMap((t) => [
    { t, key: String(t), env: threadEnv(t) },
    { t, key: `${t}+thp`, env: { ...threadEnv(t), GLIBC_TUNABLES: HUGE_PAGES_TUNABLE } },
    ...thresholds.map((mib) => ({
      t,
      key: `${t}+malloc${mib}MiB`,
      env: { ...threadEnv(t), MALLOC_MMAP_THRESHOLD_: String(mib * 2 ** 20) } as NodeJS.ProcessEnv,
    })),
  ]);
  const runs = configs.map(({ t, key, env }) => {
    envs.set(key, Object.fromEntries(REFERENCE_ENV_VARS.map((k) => [k, env[k]])));
    const res = runJson(TORCH_PYTHON, [path.join(ROOT, 'tools', script), ...args, '--threads', String(t)], env);
    if (Number(res.threads) !== t)
      throw new Error(`${label}: the PyTorch reference ran with ${res.threads} threads, not the ${t} it was given`);
    console.error(
      `${label}: torch ${key}: ${r3(res.s_per_step)} s (median of ${(res.runs_s as unknown[] | undefined)?.length ?? '?'}), peak RSS ${Number(res.peak_rss_mb).toFixed(0)} MB`,
    );
    return { ...res, config: key } as ReferenceRun;
  });
  const best = runs.reduce((a, b) => (b.s_per_step < a.s_per_step ? b : a));
  const leanest = runs.reduce((a, b) => (b.peak_rss_mb < a.peak_rss_mb ? b : a));
  // The set-up fault is about threads: the slowest thread count at its best allocator against the fastest.
  const perThreads = threads.map((t) =>
    runs.filter((x) => x.threads === t).reduce((a, b) => (b.s_per_step < a.s_per_step ? b : a)),
  );
  const worst = perThreads.reduce((a, b) => (b.s_per_step > a.s_per_step ? b : a));
  const summary = {
    torch_threads: best.threads,
    torch_config: best.config,
    torch_leanest_config: leanest.config,
    torch_s_by_threads: Object.fromEntries(runs.map((x) => [x.config, r3(x.s_per_step)])),
    torch_runs_s_by_threads: Object.fromEntries(runs.map((x) => [x.config, x.runs_s])),
    torch_peak_rss_mb_by_threads: Object.fromEntries(runs.map((x) => [x.config, r3(x.peak_rss_mb)])),
    torch_env_by_threads: Object.fromEntries(runs.map((x) => [x.config, envs.get(x.config) ?? {}])),
  };
  if (worst.s_per_step > 2 * best.s_per_step) {
    throw new BenchSetupFault(
      `${label}: PyTorch at ${worst.threads} thread(s) took ${r3(worst.s_per_step)} s against ${r3(best.s_per_step)} s at ${best.threads}: more than twice as slow means the reference is set up unfairly (oversubscribed threads, or another process hogging the cores), so no ratio is reported`,
      { bench: label, ...ours, torch_s_per_step_best: r3(best.s_per_step), ...summary, ...machine() },
    );
  }
  return { best, leanest, runs, summary };
}

/** Load average and cores, for every result JSON (the figures of a loaded machine say so). */
export function machine(): Json {
  return { load_average: os.loadavg().map((x) => Number(x.toFixed(2))), cores: os.availableParallelism() };
}
