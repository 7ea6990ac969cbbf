#!/usr/bin/env python3
"""Summarise an ONNX Runtime JSON profile (bench/profile-step.ts --profile PREFIX, or any session run with
enableProfiling): kernel time per run by op type, by scope (the first name component: student/teacher/grad/<op>),
and the costliest (op, input shapes) pairs; and the matrix products' arithmetic: GFLOP per run (Gemm, MatMul, FusedMatMul:
from their input and output shapes), their kernel time, the best rate a
product of at least 1 GFLOP reached, and the floor that rate puts under the run (every product at that rate, every
other kernel free). The first run is skipped as warm-up.

    python3 tools/ort_profile_summary.py /tmp/prof_2026-12-07_05-28-18_994.json [--top 40]
"""
import argparse
import collections
import glob
import json


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument('profile', help='the JSON file (a glob picks the newest match)')
    ap.add_argument('--top', type=int, default=30)
    ap.add_argument('--skip', type=int, default=1, help='runs to skip as warm-up')
    a = ap.parse_args()
    events = json.load(open(sorted(glob.glob(a.profile))[-1]))
    runs = [e for e in events if e.get('cat') == 'Session' and e['name'] == 'model_run']
    timed = runs[a.skip:] or runs
    start = timed[0]['ts']
    n = len(timed)
    nodes = [e for e in events if e.get('cat') == 'Node' and e['name'].endswith('_kernel_time') and e['ts'] >= start]
    print(f'runs (s): {[round(r["dur"] / 1e6, 3) for r in runs]}; timed {n}')
    total = sum(e['dur'] for e in nodes)
    print(f'kernel time per run {total / 1e6 / n:.3f} s, {len(nodes) // n} kernels per run')

    def table(title, key):
        by, count = collections.Counter(), collections.Counter()
        for e in nodes:
            k = key(e)
            by[k] += e['dur']
            count[k] += 1
        print(f'\n== {title}')
        for k, v in by.most_common(a.top):
            print(f'{v / 1e6 / n:7.3f} s {100 * v / total:5.1f}%  n={count[k] // n:5d}  {k}')

    def scope(e):
        parts = e['name'].split('/')
        return '/'.join(parts[:2]) if parts[0] == 'grad' else parts[0] if len(parts) > 1 else '(top) ' + e['args']['op_name']

    def shapes(e):
        s = [list(x.values())[0] for x in e['args'].get('input_type_shape', [])]
        return f"{scope(e)} {e['args']['op_name']} {s}"

    table('by op type', lambda e: e['args']['op_name'])
    matmuls(nodes, n)
    table('by scope', scope)
    table('by scope, op and input shapes', shapes)


def product_flop(e):
    """FLOP of a Gemm/MatMul/FusedMatMul kernel: 2 * (output elements) * K, where the output is [..., M, N] and K is
    the first input's matrix size over M (whichever way the kernel transposes it)."""
    a = list(e['args']['input_type_shape'][0].values())[0]
    out = list(e['args'].get('output_type_shape', [{}])[0].values() or [[]])[0]
    if len(a) < 2 or len(out) < 2:
        return 0
    elements = 1
    for d in out:
        elements *= d
    return 2 * elements * (a[-1] * a[-2] // out[-2])


def matmuls(nodes, n):
    ops = ('Gemm', 'MatMul', 'FusedMatMul')
    mm = [e for e in nodes if e['args']['op_name'] in ops]
    flop = sum(product_flop(e) for e in mm)
    t = sum(e['dur'] for e in mm) / 1e6
    by = collections.defaultdict(lambda: [0, 0])
    for e in mm:
        s = str([list(x.values())[0] for x in e['args'].get('input_type_shape', [])][:2])
        by[(e['args']['op_name'], s)][0] += product_flop(e)
        by[(e['args']['op_name'], s)][1] += e['dur'] / 1e6
    rates = [(f / d / 1e9, k) for k, (f, d) in by.items() if f >= 1e9 * n and d > 0]
    best = max(rates) if rates else (0, None)
    total = sum(e['dur'] for e in nodes) / 1e6
    print('\n== matrix products')
    print(f'{flop / 1e9 / n:.1f} GFLOP per run in {t / n:.3f} s of kernels ({flop / 1e9 / t:.1f} GFLOP/s on average);'
          f' every other kernel {(total - t) / n:.3f} s')
    print(f'best rate of a product of >= 1 GFLOP per run: {best[0]:.1f} GFLOP/s ({best[1]})')
    if best[0]:
        print(f'floor: {flop / 1e9 / n / best[0]:.3f} s per run (every product at that rate, nothing else)')


if __name__ == '__main__':
    main()
