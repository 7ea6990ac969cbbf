#!/usr/bin/python3
"""
PyTorch reference for `npm run bench -- knn`: exact batched cosine kNN (matmul + topk), chunked over the bank and
the queries exactly as Flaneur's graph does, on the same data (raw float32 files written by the benchmark).

  /usr/bin/python3 tools/knn_reference.py QUERIES.f32 BANK.f32 DIM K [--threads N]

Prints one JSON line: queries per second (median of 3 runs after a warm-up run), seconds per run as s_per_step.
"""
import json
import os
import sys
import time

sys.path.insert(0, os.path.dirname(__file__))
import bench_threads  # noqa: E402  (before torch: --threads sets the BLAS/OpenMP thread variables)
import numpy as np  # noqa: E402
import torch  # noqa: E402


def main():
    qf, bf, dim, k = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
    bench_threads.configure(torch)
    q = torch.from_numpy(np.fromfile(qf, dtype=np.float32).reshape(-1, dim))
    b = torch.from_numpy(np.fromfile(bf, dtype=np.float32).reshape(-1, dim))
    chunk = 16384
    qbatch = max(1, (64 << 20) // (4 * min(chunk, b.shape[0])))
    times = []
    for _ in range(4):
        t0 = time.perf_counter()
        with torch.no_grad():
            for q0 in range(0, q.shape[0], qbatch):
                qq = q[q0 : q0 + qbatch]
                vals, idx = None, None
                for s in range(0, b.shape[0], chunk):
                    sims = qq @ b[s : s + chunk].T
                    v, i = sims.topk(min(k, sims.shape[1]), dim=1)
                    i = i + s
                    if vals is None:
                        vals, idx = v, i
                    else:
                        vals, order = torch.cat([vals, v], 1).topk(k, dim=1)
                        idx = torch.cat([idx, i], 1).gather(1, order)
        times.append(time.perf_counter() - t0)
    s = bench_threads.median(times[1:])  # the first run warms up
    print(json.dumps(bench_threads.timing(torch, times[1:], qps=q.shape[0] / s, s=s)))


if __name__ == "__main__":
    main()
