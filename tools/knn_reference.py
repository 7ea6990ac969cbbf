#!/usr/bin/python3
"""
PyTorch reference for `npm run bench -- knn`: exact batched cosine kNN (matmul + topk), chunked over the bank and
the queries exactly as Flaneur's graph does, on the same data (raw float32 files written by the benchmark).

  /usr/bin/python3 tools/knn_reference.py QUERIES.f32 BANK.f32 DIM K [--threads N]

Prints one JSON line: queries per second (best of 2 runs).
"""
import json
import sys
import time

import numpy as np
import torch


def main():
    qf, bf, dim, k = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
    if "--threads" in sys.argv:
        torch.set_num_threads(int(sys.argv[sys.argv.index("--threads") + 1]))
    q = torch.from_numpy(np.fromfile(qf, dtype=np.float32).reshape(-1, dim))
    b = torch.from_numpy(np.fromfile(bf, dtype=np.float32).reshape(-1, dim))
    chunk = 16384
    qbatch = max(1, (64 << 20) // (4 * min(chunk, b.shape[0])))
    best = None
    for _ in range(2):
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
        dt = time.perf_counter() - t0
        best = dt if best is None else min(best, dt)
    print(json.dumps({"torch": torch.__version__, "threads": torch.get_num_threads(), "qps": q.shape[0] / best, "s": best}))


if __name__ == "__main__":
    main()
