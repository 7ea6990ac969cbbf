/**
 * Differentiable sorting networks (Petersen et al., "Differentiable Sorting Networks", as the diffsort package that
 * NeCo uses): a bitonic network of conditional swaps where each swap is relaxed — the smaller of (a, b) becomes
 * alpha a + (1 - alpha) b with alpha = F(steepness (b - a)) — and the soft permutation matrix P (P[i, k]: how much
 * of input i lands at sorted position k) is carried through the same swaps. Ascending order.
 *
 * The network is described here as constant selection matrices (split_a, split_b, combine_min, combine_max per
 * layer, the same layout as diffsort's networks.py). `diffSortDense` executes it as diffsort's execute_sort does
 * (MatMuls with those matrices); `diffSort` computes the same swaps on the network's regular layout instead (the
 * 2^k wires reshaped so each layer's comparator pairs are two slices, no MatMul on the permutation matrices): same
 * values up to float rounding, about half the work on NeCo's 490 x 49 x 49 permutations. Both are
 * Slice/Concat/Reshape/MatMul/Mul/Add/Atan (or Sigmoid), differentiated by our autodiff's existing rules.
 */
import type { GraphBuilder } from './builder.js';
import type { Value } from './ir.js';

export interface SortingLayer {
  /** Comparators in this layer. */
  count: number;
  /** [count, n]: one-hot rows picking each comparator's first and second wire. */
  splitA: Float32Array;
  splitB: Float32Array;
  /** [n, count]: where each comparator's minimum and maximum go (0.5/0.5 on wires that pass through). */
  combineMin: Float32Array;
  combineMax: Float32Array;
}

/**
 * The bitonic sorting network on n wires, as diffsort's bitonic_network: built on the next power of two, with the
 * top 2^k - n wires discarded (a comparator touching one discarded wire passes the other through unchanged).
 */
export function bitonicNetwork(n: number): SortingLayer[] {
  if (!Number.isInteger(n) || n < 2) throw new Error(`bitonic network: n must be an integer >= 2, got ${n}`);
  const blocks = Math.ceil(Math.log2(n));
  const N = 2 ** blocks;
  const cut = N - n;
  const layers: SortingLayer[] = [];
  for (let block = 0; block < blocks; block++) {
    for (let layer = 0; layer <= block; layer++) {
      const m = 2 ** (block - layer);
      // Rows/columns over the full N wires first; the discarded ones are cut off below.
      const rowsA: number[][] = [];
      const rowsB: number[][] = [];
      const minCols: [number, number][][] = [];
      const maxCols: [number, number][][] = [];
      for (let i = 0; i < N; i += 2 * m) {
        for (let j = 0; j < m; j++) {
          const ix = i + j;
          let a = ix;
          let b = ix + m;
          if (a >= cut && b >= cut) {
            rowsA.push([a]);
            rowsB.push([b]);
            if (Math.floor(ix / 2 ** (block + 1)) % 2 === 1) [a, b] = [b, a];
            minCols.push([[a, 1]]);
            maxCols.push([[b, 1]]);
          } else if (a >= cut || b >= cut) {
            // One wire is discarded: the kept one passes through (half to each output, both the same wire).
            const kept = a >= cut ? a : b;
            rowsA.push([kept]);
            rowsB.push([kept]);
            minCols.push([[kept, 0.5]]);
            maxCols.push([[kept, 0.5]]);
          }
        }
      }
      const count = rowsA.length;
      const splitA = new Float32Array(count * n);
      const splitB = new Float32Array(count * n);
      const combineMin = new Float32Array(n * count);
      const combineMax = new Float32Array(n * count);
      for (let c = 0; c < count; c++) {
        splitA[c * n + ((rowsA[c] as number[])[0] as number) - cut] = 1;
        splitB[c * n + ((rowsB[c] as number[])[0] as number) - cut] = 1;
        for (const [w, v] of minCols[c] as [number, number][]) combineMin[(w - cut) * count + c] = v;
        for (const [w, v] of maxCols[c] as [number, number][]) combineMax[(w - cut) * count + c] = v;
      }
      layers.push({ count, splitA, splitB, combineMin, combineMax });
    }
  }
  return layers;
}

/** The relaxation of a swap: diffsort's 'cauchy' (its default, used by NeCo) or 'logistic' (a sigmoid). */
export type SwapRelaxation = 'cauchy' | 'logistic';

export interface DiffSortOptions {
  steepness: number;
  relaxation?: SwapRelaxation;
}

function transposed(m: Float32Array, rows: number, cols: number): Float32Array {
  const t = new Float32Array(m.length);
  for (let r = 0; r < rows; r++) for (let c = 0; c < cols; c++) t[c * rows + r] = m[r * cols + c] as number;
  return t;
}

/**
 * The relaxed bitonic sort on its regular layout: the n wires embedded as the top n of N = 2^k (the discarded
 * bottom wires hold zeros), and per layer (distance m) the wires seen as [N / 2m, 2, m], the comparators' first
 * and second wires being the two halves. Each comparator's weights are selected exactly from alpha and 1 - alpha:
 * (wa, wb) = (alpha, 1 - alpha) where the minimum goes to the first wire, swapped where the block sorts downwards,
 * and (1, 0) where a wire is discarded (the kept one passes through, as diffsort's 0.5/0.5 combine); then
 * first = wa a + wb b, second = wb a + wa b for the values; for the columns of P the same as
 * first = b + wa (a - b), second = a - wa (a - b) (wa + wb = 1, and a discarded wire holds zeros, so a pass-through
 * is exact): one Mul on half of P instead of four, about 20% less sort time in the NeCo step. Same results as
 * `diffSortDense` up to rounding.
 */
export function diffSort(
  b: GraphBuilder,
  x: Value,
  net: readonly SortingLayer[],
  o: DiffSortOptions,
): { sorted: Value; permutation: Value } {
  const n = x.shape[1] as number;
  const relax = o.relaxation ?? 'cauchy';
  const blocks = Math.ceil(Math.log2(n));
  const N = 2 ** blocks;
  const cut = N - n;
  if (net.length !== (blocks * (blocks + 1)) / 2) throw new Error('diffSort: the network is not bitonicNetwork(n)');
  const constant = (name: string, data: Float32Array, shape: number[]) =>
    b.value(name) ?? b.initializer(name, data, shape);
  // [n, N]: input i on wire cut + i.
  const embed = new Float32Array(n * N);
  for (let i = 0; i < n; i++) embed[i * N + cut + i] = 1;
  return b.scope('diffsort', () => {
    const E = constant(`diffsort_embed_${n}`, embed, [n, N]);
    let v = b.matmul(x, E);
    const R = v.shape[0] as number;
    // P transposed, [R, N, n] (wires before inputs: each wire's column is contiguous; the first layer broadcasts
    // the constant [N, n]).
    let PT: Value = constant(`diffsort_embedT_${n}`, transposed(embed, n, N), [N, n]);
    const one = b.constFloat(1);
    let li = 0;
    for (let block = 0; block < blocks; block++)
      for (let layer = 0; layer <= block; layer++, li++) {
        const m = 2 ** (block - layer);
        const groups = N / (2 * m);
        // Per comparator (group g, offset j): 1 where real and sorting downwards (min to the second wire), and
        // whether real at all (both wires kept).
        const down = new Float32Array(groups * m);
        const real = new Float32Array(groups * m);
        for (let g = 0; g < groups; g++)
          for (let j = 0; j < m; j++) {
            const a = g * 2 * m + j;
            const isReal = a >= cut && a + m >= cut;
            real[g * m + j] = isReal ? 1 : 0;
            down[g * m + j] = isReal && Math.floor(a / 2 ** (block + 1)) % 2 === 1 ? 1 : 0;
          }
        const up = real.map((r, i) => r - (down[i] as number));
        const pass = real.map((r) => 1 - r);
        const cUp = constant(`diffsort_${n}_${li}_up`, up, [groups, m]);
        const cDown = constant(`diffsort_${n}_${li}_down`, down, [groups, m]);
        const cPass = constant(`diffsort_${n}_${li}_pass`, pass, [groups, m]);
        const vr = b.reshape(v, [R, groups, 2, m]);
        const va = b.reshape(b.slice(vr, [0], [1], [2]), [R, groups, m]);
        const vb = b.reshape(b.slice(vr, [1], [2], [2]), [R, groups, m]);
        const z = b.mul(b.sub(vb, va), b.constFloat(o.steepness));
        // alpha: weight of the first wire in the minimum.
        const alpha =
          relax === 'cauchy' ? b.add(b.mul(b.atan(z), b.constFloat(1 / Math.PI)), b.constFloat(0.5)) : b.sigmoid(z);
        const beta = b.sub(one, alpha);
        const wa = b.add(b.add(b.mul(alpha, cUp), b.mul(beta, cDown)), cPass);
        const wb = b.add(b.mul(beta, cUp), b.mul(alpha, cDown));
        const first = b.add(b.mul(wa, va), b.mul(wb, vb));
        const second = b.add(b.mul(wb, va), b.mul(wa, vb));
        v = b.reshape(b.concat([b.unsqueeze(first, [2]), b.unsqueeze(second, [2])], 2), [R, N]);
        const Pr = b.reshape(PT, [...PT.shape.slice(0, -2), groups, 2, m, n] as number[]);
        const axis = Pr.shape.length - 3;
        const Pa = b.slice(Pr, [0], [1], [axis]);
        const Pb = b.slice(Pr, [1], [2], [axis]);
        // wa + wb = 1 (a discarded wire holds zeros): first = Pb + wa (Pa - Pb), second = Pa - wa (Pa - Pb).
        const t = b.mul(b.reshape(wa, [R, groups, 1, m, 1]), b.sub(Pa, Pb));
        PT = b.reshape(b.concat([b.add(Pb, t), b.sub(Pa, t)], 2), [R, N, n]);
      }
    return {
      sorted: b.slice(v, [cut], [N], [1]),
      permutation: b.transpose(b.slice(PT, [cut], [N], [1]), [0, 2, 1]),
    };
  });
}

/**
 * Sorts each row of `x` [R, n] (ascending) through the relaxed network. Returns the soft-sorted values [R, n] and
 * the soft permutation matrices [R, n, n] (P[r, i, k]: weight of input i at position k, as diffsort's X).
 * Constants are shared between calls on the same builder (student and teacher sorts).
 */
export function diffSortDense(
  b: GraphBuilder,
  x: Value,
  net: readonly SortingLayer[],
  o: DiffSortOptions,
): { sorted: Value; permutation: Value } {
  const n = x.shape[1] as number;
  const relax = o.relaxation ?? 'cauchy';
  const constant = (name: string, data: Float32Array, shape: number[]) =>
    b.value(name) ?? b.initializer(name, data, shape);
  const eye = new Float32Array(n * n);
  for (let i = 0; i < n; i++) eye[i * n + i] = 1;
  return b.scope('diffsort_dense', () => {
    let v = x;
    let P = constant(`diffsort_eye_${n}`, eye, [n, n]);
    const one = b.constFloat(1);
    net.forEach((layer, li) => {
      const c = layer.count;
      const sa = constant(`diffsort_${n}_${li}_aT`, transposed(layer.splitA, c, n), [n, c]);
      const sb = constant(`diffsort_${n}_${li}_bT`, transposed(layer.splitB, c, n), [n, c]);
      const cmin = constant(`diffsort_${n}_${li}_minT`, transposed(layer.combineMin, n, c), [c, n]);
      const cmax = constant(`diffsort_${n}_${li}_maxT`, transposed(layer.combineMax, n, c), [c, n]);
      const a = b.matmul(v, sa);
      const bb = b.matmul(v, sb);
      const z = b.mul(b.sub(bb, a), b.constFloat(o.steepness));
      // alpha: weight of `a` in the minimum.
      const alpha =
        relax === 'cauchy' ? b.add(b.mul(b.atan(z), b.constFloat(1 / Math.PI)), b.constFloat(0.5)) : b.sigmoid(z);
      const beta = b.sub(one, alpha);
      const aP = b.matmul(P, sa);
      const bP = b.matmul(P, sb);
      const alpha3 = b.unsqueeze(alpha, [1]);
      const beta3 = b.unsqueeze(beta, [1]);
      const wMin = b.add(b.mul(alpha3, aP), b.mul(beta3, bP));
      const wMax = b.add(b.mul(beta3, aP), b.mul(alpha3, bP));
      P = b.add(b.matmul(wMax, cmax), b.matmul(wMin, cmin));
      v = b.add(
        b.matmul(b.add(b.mul(alpha, a), b.mul(beta, bb)), cmin),
        b.matmul(b.add(b.mul(beta, a), b.mul(alpha, bb)), cmax),
      );
    });
    return { sorted: v, permutation: P };
  });
}
