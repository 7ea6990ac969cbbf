/**
 * Exact batched kNN throughput (queries/s): 4096 queries, dim 384, k 30, over banks of 10^4, 10^5 and 10^6
 * normalised vectors — ours (MatMul + TopK graph, chunked) vs PyTorch 1.13 doing the same chunked matmul + topk on
 * the same data (tools/knn_reference.py). Also the approximate index (IVF) at 10^6: recall@30 against exact, speed-up.
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { Rng } from '../native/base/rng.js';
import { IvfIndex } from '../native/features/ivf.js';
import { ExactKnn, l2normalizeRows, makeBank } from '../native/features/knn.js';
import { machine, median, torchReference } from './reference.js';

/** Clustered data (as patch features are): gaussian blobs around 1000 centres. */
function data(n: number, dim: number, seed: number): Float32Array {
  const r = new Rng(seed);
  const centres = Float32Array.from({ length: 1000 * dim }, () => r.normal());
  const out = new Float32Array(n * dim);
  for (let i = 0; i < n; i++) {
    const c = r.int(1000);
    for (let d = 0; d < dim; d++) out[i * dim + d] = (centres[c * dim + d] as number) + 0.6 * r.normal();
  }
  return l2normalizeRows(out, dim);
}

/** PyTorch's chunked matmul + topk on the same data, at 1 thread and all cores (the fair harness). */
function torchKnn(q: Float32Array, bank: Float32Array, dim: number, k: number, dir: string) {
  const qf = path.join(dir, 'q.f32');
  const bf = path.join(dir, 'b.f32');
  fs.writeFileSync(qf, Buffer.from(q.buffer, q.byteOffset, q.byteLength));
  fs.writeFileSync(bf, Buffer.from(bank.buffer, bank.byteOffset, bank.byteLength));
  return torchReference('knn', 'knn_reference.py', [qf, bf, String(dim), String(k)]);
}

export async function benchKnn(args: string[]): Promise<Record<string, unknown>> {
  const dim = 384;
  const k = 30;
  const nq = Number(args[0] ?? 4096);
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'flaneur-bench-knn-'));
  const knn = new ExactKnn();
  const r = (x: number) => Number(x.toFixed(1));
  try {
    const queries = data(nq, dim, 1);
    const out: Record<string, unknown> = { dim, k, queries: nq, threads: os.availableParallelism() };
    const full = data(1_000_000, dim, 2);
    let exact1e6: Awaited<ReturnType<ExactKnn['search']>> | null = null;
    for (const [label, n] of [
      ['1e4', 10_000],
      ['1e5', 100_000],
      ['1e6', 1_000_000],
    ] as const) {
      const bankVecs = full.subarray(0, n * dim);
      const bank = makeBank(bankVecs, dim);
      await knn.search(queries.subarray(0, 8 * dim), bank, k); // warm-up
      const runs: number[] = [];
      for (let rep = 0; rep < (n < 1_000_000 ? 3 : 1); rep++) {
        const t0 = performance.now();
        const res = await knn.search(queries, bank, k);
        runs.push((performance.now() - t0) / 1000);
        if (n === 1_000_000) exact1e6 = res;
      }
      const best = median(runs);
      out[`bank_${label}_qps`] = r(nq / best);
      console.error(`knn: ours, bank ${label}: ${(nq / best).toFixed(0)} queries/s`);
      if (n === 100_000) {
        const torch = torchKnn(queries, bankVecs, dim, k, dir);
        out.torch_bank_1e5_qps = r(nq / torch.best.s_per_step);
        Object.assign(out, torch.summary);
        out.ratio_vs_torch_1e5 = Number((torch.best.s_per_step / best).toFixed(3));
      }
    }

    // Approximate: IVF over the 10^6 bank, recall@30 against the exact result.
    const t0 = performance.now();
    const ivf = await IvfIndex.build(full, dim, { lists: 1024, trainSample: 65536, iterations: 8, seed: 3 }, knn);
    const buildS = (performance.now() - t0) / 1000;
    const exactS = nq / (out.bank_1e6_qps as number);
    for (const nprobe of [8, 32]) {
      const t1 = performance.now();
      const approx = await ivf.search(queries, k, nprobe, knn);
      const s = (performance.now() - t1) / 1000;
      let hit = 0;
      for (let i = 0; i < nq; i++) {
        const truth = new Set(exact1e6?.indices.subarray(i * k, (i + 1) * k));
        for (let j = 0; j < k; j++) if (truth.has(approx.indices[i * k + j] as number)) hit++;
      }
      out[`ivf_nprobe${nprobe}_recall_at_30`] = Number((hit / (nq * k)).toFixed(4));
      out[`ivf_nprobe${nprobe}_speedup_1e6`] = Number((exactS / s).toFixed(2));
      console.error(
        `knn: IVF 1e6 nprobe ${nprobe}: recall@30 ${(hit / (nq * k)).toFixed(3)}, ${(exactS / s).toFixed(1)}x faster than exact`,
      );
    }
    out.ivf_lists = 1024;
    out.ivf_build_s = r(buildS);
    return { ...out, ...machine() };
  } finally {
    await knn.release();
    fs.rmSync(dir, { recursive: true, force: true });
  }
}
