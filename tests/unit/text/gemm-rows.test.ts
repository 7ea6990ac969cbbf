/**
 * splitGemmRows (native/text/gemm-rows.ts): a Gemm rewritten as row slices computes the same product for every
 * layout (transA, transB, a bias row, alpha and beta), leaves small Gemms and row-varying biases alone.
 */
import { describe, expect, it } from 'vitest';
import { Rng } from '../../../native/base/rng.js';
import { GraphBuilder } from '../../../native/graph/builder.js';
import { toOnnx } from '../../../native/graph/onnx.js';
import { ModelSession, ort } from '../../../native/runtime/session.js';
import { splitGemmRows } from '../../../native/text/gemm-rows.js';
import { relErr } from '../../helpers/fixtures.js';

const M = 10;
const K = 7;
const N = 6;

function gemmGraph(
  o: { transA?: boolean; transB?: boolean; alpha?: number; beta?: number },
  bias: number[] | null,
  K = 7,
) {
  const b = new GraphBuilder('gemm');
  const a = b.input('a', 'float32', o.transA ? [K, M] : [M, K]);
  const w = b.input('w', 'float32', o.transB ? [N, K] : [K, N]);
  const c = bias ? b.input('c', 'float32', bias) : null;
  b.output(b.gemm(a, w, c, o), 'y');
  return b.build();
}

async function run(graph: ReturnType<typeof gemmGraph>, feeds: Record<string, Float32Array>) {
  const s = await ModelSession.create(toOnnx(graph), { provider: 'cpu', threads: 1 });
  const inputs = Object.fromEntries(
    graph.inputs.map((v) => [v.name, new ort.Tensor('float32', feeds[v.name] as Float32Array, v.shape as number[])]),
  );
  const out = await s.run(inputs);
  await s.release();
  return (out.y as ort.Tensor).data as Float32Array;
}

describe('Gemm row slices', () => {
  const rng = new Rng(7);
  const rand = (n: number) => Float32Array.from({ length: n }, () => rng.normal());
  const layouts = [
    { o: {}, bias: null },
    { o: { transB: true }, bias: [N] },
    { o: { transA: true }, bias: [1, N] },
    { o: { transA: true, transB: true, alpha: 0.5, beta: 2 }, bias: [N] },
  ];
  for (const { o, bias } of layouts) {
    it(`computes the same product as one Gemm (${JSON.stringify(o)}, bias ${JSON.stringify(bias)})`, async () => {
      const graph = gemmGraph(o, bias);
      const split = splitGemmRows(graph, { rows: 3, minMacs: 0 });
      const ops = split.nodes.map((n) => n.op);
      expect(ops.filter((op) => op === 'Gemm')).toHaveLength(3); // 10 rows: slices of 3, 3, 4
      expect(ops).toContain('Concat');
      expect(ops.includes('Transpose')).toBe(o.transA === true);
      const feeds = { a: rand(M * K), w: rand(K * N), c: rand(N) };
      expect(relErr(await run(split, feeds), await run(graph, feeds))).toBeLessThan(1e-6);
    });
  }

  for (const o of [{ transB: true }, { transA: true }]) {
    it(`pads an inner dimension of 1024 with zero columns and computes the same product (${JSON.stringify(o)})`, async () => {
      const graph = gemmGraph(o, [N], 1024);
      const split = splitGemmRows(graph, { rows: 3, minMacs: 0, padK: 16 });
      const pads = split.nodes.filter((n) => n.op === 'Pad');
      expect(pads).toHaveLength(4); // B once, each of the 3 slices of A cut and padded by one Pad
      expect(split.nodes.some((n) => n.op === 'Slice')).toBe(false);
      expect(split.values.get(split.nodes.find((n) => n.op === 'Gemm')?.inputs[0] as string)?.shape).toEqual([3, 1040]);
      const feeds = { a: rand(M * 1024), w: rand(1024 * N), c: rand(N) };
      expect(relErr(await run(split, feeds), await run(graph, feeds))).toBeLessThan(1e-5);
      // K = 7 is left unpadded
      expect(
        splitGemmRows(gemmGraph(o, [N]), { rows: 3, minMacs: 0, padK: 16 }).nodes.some((n) => n.op === 'Pad'),
      ).toBe(false);
    });
  }

  it('leaves a Gemm with fewer than two slices of rows, too few multiply-adds, or a per-row bias alone', () => {
    expect(splitGemmRows(gemmGraph({}, null), { rows: 6, minMacs: 0 }).nodes.map((n) => n.op)).toEqual(['Gemm']);
    expect(splitGemmRows(gemmGraph({}, null), { rows: 3, minMacs: M * N * K + 1 }).nodes).toHaveLength(1);
    expect(splitGemmRows(gemmGraph({}, [M, N]), { rows: 3, minMacs: 0 }).nodes).toHaveLength(1);
    expect(() => splitGemmRows(gemmGraph({}, null), { rows: 0 })).toThrow(/positive row count/);
  });
});
