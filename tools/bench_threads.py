"""
Fair thread settings for the PyTorch references of `npm run bench` (bench/reference.ts).

Import this module BEFORE torch. With `--threads N` on the command line it sets OMP_NUM_THREADS,
OPENBLAS_NUM_THREADS and MKL_NUM_THREADS to N (Debian's torch 1.13 uses the pthread OpenBLAS: without a limit its BLAS
threads and torch's intra-op threads oversubscribe the cores); `configure(torch)` then sets torch's intra-op
threads to the same N. At N > 1 it also makes every idle thread sleep instead of spin, OMP_WAIT_POLICY=PASSIVE
(torch's OpenMP team) and OPENBLAS_THREAD_TIMEOUT=4 (OpenBLAS's pthread workers, which otherwise spin ~2^28 cycles
after every BLAS call), unless the caller's environment set them: on 2 cores either spinning team takes the core the
other needs, and torch at 2 threads ran slower than at 1 (the NeCo step 8.0 s vs 2.18 s, quiet machine; the cause
and the measurements: tools/torch_threads_check.py). `timing(times)` is the JSON every reference prints: the median of the timed runs (warm-up
runs excluded by the caller), the runs themselves, the threads and the peak RSS.
"""
import os
import resource
import sys

# Idle threads sleep (set at more than one thread): see the module's docstring.
WAIT = {"OMP_WAIT_POLICY": "PASSIVE", "OPENBLAS_THREAD_TIMEOUT": "4"}
ENV_VARS = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", *WAIT)

THREADS = int(sys.argv[sys.argv.index("--threads") + 1]) if "--threads" in sys.argv else None
if THREADS:
    for var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ[var] = str(THREADS)
    if THREADS > 1:
        for var, value in WAIT.items():
            os.environ.setdefault(var, value)


def configure(torch):
    """torch.set_num_threads to the --threads count (the environment was set before torch loaded)."""
    if THREADS:
        torch.set_num_threads(THREADS)
    return torch.get_num_threads()


def median(xs):
    s = sorted(xs)
    n = len(s)
    return s[n // 2] if n % 2 else 0.5 * (s[n // 2 - 1] + s[n // 2])


def timing(torch, times, **extra):
    """The reference's result line: median seconds per step over the timed runs, every run, threads, peak RSS."""
    return {
        "torch": torch.__version__,
        "threads": torch.get_num_threads(),
        "env_threads": {v: os.environ.get(v) for v in ENV_VARS},
        "s_per_step": median(times),
        "s_per_step_min": min(times),
        "runs_s": [round(t, 4) for t in times],
        "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        **extra,
    }
