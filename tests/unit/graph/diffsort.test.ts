/** The differentiable bitonic sort (diffsort's network, NeCo's relaxation) and the RoI-align matrix. */
import * as ort from 'onnxruntime-node';
import { describe, expect, it } from 'vitest';
import { GraphBuilder } from '../../../native/graph/builder.js';
import { bitonicNetwork, diffSort, diffSortDense, type SwapRelaxation } from '../../../native/graph/diffsort.js';
import { toOnnx } from '../../../native/graph/onnx.js';
import { roiAlignMatrix } from '../../../native/graph/roi-align.js';
import { rng } from '../../../tools/synth/tour.js';
import { gradCheck } from '../../helpers/gradcheck.js';

/** Runs the network with hard swaps (min/max) on one vector. */
function hardSort(x: number[]): number[] {
  const n = x.length;
  let v = x.slice();
  for (const l of bitonicNetwork(n)) {
    const next = new Array<number>(n).fill(0);
    for (let c = 0; c < l.count; c++) {
      let a = 0;
      let b = 0;
      for (let i = 0; i < n; i++) {
        a += (l.splitA[c * n + i] as number) * (v[i] as number);
        b += (l.splitB[c * n + i] as number) * (v[i] as number);
      }
      for (let i = 0; i < n; i++) {
        next[i] =
          (next[i] as number) +
          (l.combineMin[i * l.count + c] as number) * Math.min(a, b) +
          (l.combineMax[i * l.count + c] as number) * Math.max(a, b);
      }
    }
    v = next;
  }
  return v;
}

async function runSort(
  x: Float32Array,
  rows: number,
  n: number,
  steepness: number,
  relaxation: SwapRelaxation,
  sort = diffSort,
) {
  const b = new GraphBuilder('sort');
  const xv = b.input('x', 'float32', [rows, n]);
  const { sorted, permutation } = sort(b, xv, bitonicNetwork(n), { steepness, relaxation });
  b.output(sorted, 'sorted');
  b.output(permutation, 'perm');
  const s = await ort.InferenceSession.create(toOnnx(b.build()));
  const out = await s.run({ x: new ort.Tensor('float32', x, [rows, n]) });
  await s.release();
  return { sorted: out.sorted?.data as Float32Array, perm: out.perm?.data as Float32Array };
}

describe('bitonic sorting network', () => {
  it.each([2, 5, 8, 13, 49])('sorts %i values with hard swaps', (n) => {
    const r = rng(n);
    for (let t = 0; t < 20; t++) {
      const x = Array.from({ length: n }, () => r() * 2 - 1);
      expect(hardSort(x)).toEqual([...x].sort((a, b) => a - b));
    }
  });

  it('has 21 layers for the 49 aligned patches of NeCo (a 64-wire network)', () => {
    expect(bitonicNetwork(49)).toHaveLength(21);
  });
});

describe('differentiable sort', () => {
  it.each(['cauchy', 'logistic'] as const)(
    'approaches the hard sort and its permutation as the steepness grows (%s)',
    async (relaxation) => {
      const n = 49;
      const rows = 4;
      const r = rng(3);
      // Distinct values at least 1e-2 apart, shuffled.
      const x = new Float32Array(rows * n);
      const hard: number[][] = [];
      for (let row = 0; row < rows; row++) {
        const vals = Array.from({ length: n }, (_, i) => (i - n / 2) * 0.02 + r() * 0.005);
        for (let i = n - 1; i > 0; i--) {
          const j = Math.floor(r() * (i + 1));
          [vals[i], vals[j]] = [vals[j] as number, vals[i] as number];
        }
        x.set(vals, row * n);
        hard.push(vals);
      }
      const errors: number[] = [];
      for (const steepness of [10, 100, 1000, 100000]) {
        const { sorted, perm } = await runSort(x, rows, n, steepness, relaxation);
        let err = 0;
        for (let row = 0; row < rows; row++) {
          const vals = hard[row] as number[];
          const order = [...vals.keys()].sort((a, b) => (vals[a] as number) - (vals[b] as number));
          for (let k = 0; k < n; k++) {
            err = Math.max(err, Math.abs((sorted[row * n + k] as number) - (vals[order[k] as number] as number)));
            for (let i = 0; i < n; i++) {
              const want = order[k] === i ? 1 : 0;
              err = Math.max(err, Math.abs((perm[(row * n + i) * n + k] as number) - want));
            }
          }
        }
        errors.push(err);
      }
      for (let i = 1; i < errors.length; i++) expect(errors[i]).toBeLessThan(errors[i - 1] as number);
      expect(errors[errors.length - 1]).toBeLessThan(relaxation === 'cauchy' ? 0.02 : 1e-4);
    },
  );

  it.each([
    [49, 'cauchy', 100],
    [13, 'logistic', 10],
    [8, 'cauchy', 1],
    [2, 'cauchy', 100],
  ] as const)(
    'computes on the regular layout what the dense selection matrices give (n = %i, %s, steepness %i)',
    async (n, relaxation, steepness) => {
      const r = rng(n + 17);
      const rows = 5;
      const x = Float32Array.from({ length: rows * n }, () => r() * 2 - 1);
      const fast = await runSort(x, rows, n, steepness, relaxation);
      const dense = await runSort(x, rows, n, steepness, relaxation, diffSortDense);
      let err = 0;
      for (let i = 0; i < dense.sorted.length; i++)
        err = Math.max(err, Math.abs((fast.sorted[i] as number) - (dense.sorted[i] as number)));
      for (let i = 0; i < dense.perm.length; i++) {
        const d = dense.perm[i] as number;
        // Relative where the weights are small: the loss takes their log.
        err = Math.max(err, Math.abs((fast.perm[i] as number) - d) / Math.max(Math.abs(d), 1e-3));
      }
      expect(fast.perm.length).toBe(rows * n * n);
      expect(err).toBeLessThan(1e-4);
    },
  );

  it('keeps every permutation column a distribution over positions (doubly stochastic)', async () => {
    const n = 49;
    const r = rng(9);
    const x = Float32Array.from({ length: 2 * n }, () => r() * 2 - 1);
    const { perm } = await runSort(x, 2, n, 100, 'cauchy');
    for (let row = 0; row < 2; row++)
      for (let i = 0; i < n; i++) {
        let rowSum = 0;
        let colSum = 0;
        for (let k = 0; k < n; k++) {
          rowSum += perm[(row * n + i) * n + k] as number;
          colSum += perm[(row * n + k) * n + i] as number;
        }
        expect(rowSum).toBeCloseTo(1, 4);
        expect(colSum).toBeCloseTo(1, 4);
      }
  });

  it.each([
    ['cauchy', 6, diffSort],
    ['logistic', 6, diffSort],
    ['cauchy', 9, diffSort],
    ['cauchy', 9, diffSortDense],
  ] as const)('has gradients that match finite differences (%s, n = %i, %o)', async (relaxation, n, sort) => {
    const res = await gradCheck(
      (b, [x]) => {
        const { sorted, permutation } = sort(b, x as never, bitonicNetwork(n), { steepness: 3, relaxation });
        return b.concat([b.reshape(sorted, [-1]), b.reshape(permutation, [-1])], 0);
      },
      [{ shape: [3, n] }],
      { eps: 1e-3, samples: 18 },
    );
    expect(res.checked).toBe(18);
  });
});

describe('RoI-align matrix (torchvision roi_align, aligned=True, adaptive sampling)', () => {
  const H = 14;
  const W = 14;
  /** Features equal to the column index: bilinear interpolation of a linear function is exact. */
  const apply = (m: Float32Array, feature: (y: number, x: number) => number) => {
    const out: number[] = [];
    for (let r = 0; r < 49; r++) {
      let s = 0;
      for (let y = 0; y < H; y++) for (let x = 0; x < W; x++) s += (m[r * H * W + y * W + x] as number) * feature(y, x);
      out.push(s);
    }
    return out;
  };

  it('gives the value at each bin centre for a linear feature map inside the grid', () => {
    const box: [number, number, number, number] = [2.3, 1.7, 11.9, 12.4];
    const m = roiAlignMatrix(box, H, W);
    const out = apply(m, (y, x) => 3 * x - 2 * y + 1);
    const binW = (box[2] - box[0]) / 7;
    const binH = (box[3] - box[1]) / 7;
    for (let ph = 0; ph < 7; ph++)
      for (let pw = 0; pw < 7; pw++) {
        const cx = box[0] - 0.5 + (pw + 0.5) * binW;
        const cy = box[1] - 0.5 + (ph + 0.5) * binH;
        expect(out[ph * 7 + pw]).toBeCloseTo(3 * cx - 2 * cy + 1, 4);
      }
  });

  it('clamps samples at the border and drops those beyond one cell outside', () => {
    // Samples between -1 and 0 read the first cell; the rows sum to 1 there.
    const m = roiAlignMatrix([0, 0, 1, 1], H, W);
    let sum = 0;
    for (let i = 0; i < H * W; i++) sum += m[i] as number;
    expect(sum).toBeCloseTo(1, 5);
    // A box entirely beyond the grid samples nothing.
    const far = roiAlignMatrix([20, 20, 27, 27], H, W);
    expect(far.every((v) => v === 0)).toBe(true);
  });

  it('averages ceil(size / 7) samples per bin and axis', () => {
    // A 14-cell box: 2x2 samples per bin at offsets 0.25 and 0.75 of the bin -> each bin averages 4 cells equally.
    const m = roiAlignMatrix([0, 0, 14, 14], H, W);
    const row0 = Array.from(m.subarray(0, H * W));
    expect(row0.filter((v) => v > 0).length).toBe(4);
    for (const v of row0.filter((x) => x > 0)) expect(v).toBeCloseTo(0.25, 6);
  });
});
