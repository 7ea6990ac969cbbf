#!/usr/bin/python3
"""
Why PyTorch ran slower at 2 threads than at 1 in the training benches, in a few seconds: times two small workloads
(a ViT-S MLP block forward + backward = big matmuls; a chain of 60 small ops on a 490x64 tensor with a 64x64
matmul each = the NeCo diff sort's many small ops) at 1 thread and at 2 with each idle-thread policy: torch's
OpenMP team spinning (GOMP's default) or sleeping (OMP_WAIT_POLICY=PASSIVE), and OpenBLAS's pthread workers
spinning ~2^28 cycles after every BLAS call (default) or sleeping at once (OPENBLAS_THREAD_TIMEOUT=4), or BLAS at
1 thread. Each configuration runs in its own process with its variables set before torch is imported. Prints one
JSON line: per configuration the median wall seconds and the CPU seconds (user + system) per run of each workload.

    /usr/bin/python3 tools/torch_threads_check.py [--runs N]
"""
import json
import os
import resource
import subprocess
import sys
import time

CONFIGS = {
    "1 thread": {"OMP_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1"},
    "2, all spinning (as the benches ran)": {"OMP_NUM_THREADS": "2", "OPENBLAS_NUM_THREADS": "2"},
    "2, OMP passive": {"OMP_NUM_THREADS": "2", "OPENBLAS_NUM_THREADS": "2", "OMP_WAIT_POLICY": "PASSIVE"},
    "2, OMP passive, BLAS 1 thread": {"OMP_NUM_THREADS": "2", "OPENBLAS_NUM_THREADS": "1", "OMP_WAIT_POLICY": "PASSIVE"},
    "2, OMP passive, OpenBLAS sleeps (the harness)": {
        "OMP_NUM_THREADS": "2",
        "OPENBLAS_NUM_THREADS": "2",
        "OMP_WAIT_POLICY": "PASSIVE",
        "OPENBLAS_THREAD_TIMEOUT": "4",
    },
}
VARS = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "OMP_WAIT_POLICY", "OPENBLAS_THREAD_TIMEOUT", "GOMP_SPINCOUNT")


def child(runs):
    import torch

    torch.set_num_threads(int(os.environ["OMP_NUM_THREADS"]))
    torch.manual_seed(0)
    mlp = torch.nn.Sequential(torch.nn.Linear(384, 1536), torch.nn.GELU(), torch.nn.Linear(1536, 384))
    x = torch.randn(542, 384, requires_grad=True)  # the NeCo step's ViT-S tokens (2x197 + 4x37)
    s = torch.randn(490, 64, requires_grad=True)
    eye = torch.eye(64)

    def matmul():
        for _ in range(6):
            mlp(x).sum().backward()

    def small_ops():
        y = s
        for _ in range(60):
            y = (torch.sigmoid(y * 1.01 + 0.1) @ eye).softmax(-1)
        y.sum().backward()

    def cpu():
        r = resource.getrusage(resource.RUSAGE_SELF)
        return r.ru_utime + r.ru_stime

    out = {}
    for name, f in (("matmul", matmul), ("small_ops", small_ops)):
        f()  # warm-up
        times, c0 = [], cpu()
        for _ in range(runs):
            t = time.perf_counter()
            f()
            times.append(time.perf_counter() - t)
        out[name] = {"s": round(sorted(times)[len(times) // 2], 4), "cpu_s": round((cpu() - c0) / runs, 4)}
    print(json.dumps(out))


def main(runs):
    base = {k: v for k, v in os.environ.items() if k not in VARS}
    res = {}
    for name, env in CONFIGS.items():
        out = subprocess.run(
            [sys.executable, __file__, "--child", "--runs", str(runs)],
            env={**base, **env},
            capture_output=True,
            text=True,
            check=True,
        ).stdout
        res[name] = {"env": env, **json.loads(out.strip().splitlines()[-1])}
        print(f"{name}: {res[name]}", file=sys.stderr)
    print(json.dumps({"configs": res, "load_average": [round(x, 2) for x in os.getloadavg()], "cores": os.cpu_count()}))


if __name__ == "__main__":
    n = int(sys.argv[sys.argv.index("--runs") + 1]) if "--runs" in sys.argv else 5
    child(n) if "--child" in sys.argv else main(n)
