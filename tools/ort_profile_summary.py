#!/usr/bin/env python3
"""Summarise an ONNX Runtime JSON profile (bench/profile-step.ts --profile PREFIX, or any session run with
enableProfiling): kernel time per run by op type, by scope (the first name component: student/teacher/grad/<op>),
and the costliest (op, input shapes) pairs. The first run is skipped as warm-up.

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
    table('by scope', scope)
    table('by scope, op and input shapes', shapes)


if __name__ == '__main__':
    main()
