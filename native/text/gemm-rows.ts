/**
 * Large Gemms split along their output rows: `splitGemmRows` rewrites each Gemm of a built graph whose output has
 * many rows into Slices of A's rows, one Gemm per slice (same B, bias, alpha, beta) and a Concat. A Gemm that reads
 * A transposed (transA, a weight gradient Gᵀ·x) gets one Transpose of A first.
 *
 * Why (measured, bench/README.md's sharelock paragraph): MLAS's SGEMM packs B in 128 × 128 panels and, for each
 * panel, sweeps every row of A and of C; with 4096 rows that C slice (2 MB) leaves the core's 1 MB L2 and a
 * 4096³ product runs at ~65 GFLOP per CPU second here, against ~80 with 512-row slices (the Slice/Concat copies
 * included). With transA MLAS transposes A again for each 128-column panel of B; one explicit Transpose of A is
 * cheaper. The values are the same products: each output element is the same sum over K.
 *
 * Done on the built graph, after autodiff, so that a weight gradient stays one product over the whole batch.
 */
import { attr, type Graph, type Initializer, type Node, type Value } from '../graph/ir.js';

export interface GemmRowOptions {
  /** Rows a slice, at least: M rows are cut into ⌊M / rows⌋ slices as equal as possible (rows … 2·rows − 1 each). */
  rows: number;
  /** Only Gemms of at least this many multiply-adds (M·N·K). Default 2^27. */
  minMacs?: number;
  /**
   * Zero columns added to the inner dimension K when K is a multiple of 1024 (A's rows then start 4 KB apart and
   * MLAS's reads of a few rows of A evict each other from L1): each slice is cut and padded by one Pad (negative
   * pads crop its rows) and B padded once. The zeros add nothing to the sums. Default 0 (none).
   */
  padK?: number;
}

/** The graph with every Gemm of at least 2 × `rows` output rows (and `minMacs`) split into row slices. */
export function splitGemmRows(graph: Graph, o: GemmRowOptions): Graph {
  const minMacs = o.minMacs ?? 2 ** 27;
  if (!Number.isInteger(o.rows) || o.rows < 1)
    throw new Error(`Gemm row slices need a positive row count, not ${o.rows}`);
  const values = new Map(graph.values);
  const initializers = new Map<string, Initializer>(graph.initializers);
  const nodes: Node[] = [];
  let counter = 0;
  const fresh = (hint: string) => {
    let name: string;
    do name = `${hint}__rows${counter++}`;
    while (values.has(name));
    return name;
  };
  const define = (hint: string, dtype: Value['dtype'], shape: number[]): string => {
    const v: Value = { name: fresh(hint), dtype, shape };
    values.set(v.name, v);
    return v.name;
  };
  const int64 = (xs: number[]): string => {
    const name = define('const', 'int64', [xs.length]);
    initializers.set(name, { value: values.get(name) as Value, data: BigInt64Array.from(xs.map((x) => BigInt(x))) });
    return name;
  };
  const zero = int64([0]);
  for (const node of graph.nodes) {
    const plan = node.op === 'Gemm' && !node.domain ? planOf(node, values, o.rows, minMacs) : null;
    if (!plan) {
      nodes.push(node);
      continue;
    }
    const { a, dtype, M, K, N, sizes } = plan;
    let rowsOfA = a;
    if (plan.transA) {
      rowsOfA = define(`${node.name}_AT`, dtype, [M, K]);
      nodes.push({
        op: 'Transpose',
        name: fresh(`${node.name}_transposeA`),
        inputs: [a],
        outputs: [rowsOfA],
        attrs: { perm: attr.ints([1, 0]) },
      });
    }
    const pad = (o.padK ?? 0) > 0 && K % 1024 === 0 ? (o.padK as number) : 0;
    let bName = node.inputs[1] as string;
    if (pad) {
      const tb = node.attrs.transB?.value === 1;
      const padded = define(`${node.name}_Bpad`, dtype, tb ? [N, K + pad] : [K + pad, N]);
      nodes.push({
        op: 'Pad',
        name: fresh(`${node.name}_padB`),
        inputs: [bName, int64(tb ? [0, 0, 0, pad] : [0, 0, pad, 0])],
        outputs: [padded],
        attrs: { mode: attr.string('constant') },
      });
      bName = padded;
    }
    const parts: string[] = [];
    let start = 0;
    for (const rows of sizes) {
      const slice = define(`${node.name}_A${parts.length}`, dtype, [rows, K + pad]);
      nodes.push(
        pad
          ? {
              op: 'Pad',
              name: fresh(`${node.name}_slice`),
              inputs: [rowsOfA, int64([-start, 0, -(M - start - rows), pad])],
              outputs: [slice],
              attrs: { mode: attr.string('constant') },
            }
          : {
              op: 'Slice',
              name: fresh(`${node.name}_slice`),
              inputs: [rowsOfA, int64([start]), int64([start + rows]), zero],
              outputs: [slice],
              attrs: {},
            },
      );
      const part = define(`${node.name}_Y${parts.length}`, dtype, [rows, N]);
      const { transA: _, ...attrs } = node.attrs;
      nodes.push({
        op: 'Gemm',
        name: fresh(`${node.name}_part`),
        inputs: [slice, bName, ...node.inputs.slice(2)],
        outputs: [part],
        attrs,
      });
      parts.push(part);
      start += rows;
    }
    nodes.push({
      op: 'Concat',
      name: fresh(`${node.name}_concat`),
      inputs: parts,
      outputs: [node.outputs[0] as string],
      attrs: { axis: attr.int(0) },
    });
  }
  return { ...graph, nodes, initializers, values };
}

interface Plan {
  a: string;
  transA: boolean;
  dtype: Value['dtype'];
  M: number;
  K: number;
  N: number;
  sizes: number[];
}

function planOf(node: Node, values: ReadonlyMap<string, Value>, rows: number, minMacs: number): Plan | null {
  const [aName, , cName] = node.inputs;
  const a = aName ? values.get(aName) : undefined;
  const out = node.outputs.length === 1 ? values.get(node.outputs[0] as string) : undefined;
  if (!a || !out || a.shape.length !== 2 || out.shape.length !== 2) return null;
  const transA = node.attrs.transA?.value === 1;
  const [M, K] = transA ? [a.shape[1], a.shape[0]] : [a.shape[0], a.shape[1]];
  const N = out.shape[1];
  if (typeof M !== 'number' || typeof K !== 'number' || typeof N !== 'number') return null;
  // a bias that varies along the rows would have to be sliced too: left alone
  if (cName) {
    const c = values.get(cName);
    if (!c || (c.shape.length === 2 && c.shape[0] !== 1) || c.shape.length > 2) return null;
  }
  const count = Math.floor(M / rows);
  if (count < 2 || M * N * K < minMacs) return null;
  const sizes = Array.from(
    { length: count },
    (_, i) => Math.floor(((i + 1) * M) / count) - Math.floor((i * M) / count),
  );
  return { a: aName as string, transA, dtype: a.dtype, M, K, N, sizes };
}
