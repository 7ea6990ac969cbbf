/**
 * The sizes of a graph's tensors, kept in the ONNX model's metadata (`flaneur.tensor_sizes`) so that whoever runs
 * it can tell, before running, the largest tensor a given batch will make: a GPU refuses a buffer over its limit
 * (WebGPU's maxStorageBufferBindingSize), and onnxruntime then fails with a validation message nobody can act on.
 * Symbolic dimensions ('batch', 'batch*197') are bound from the shapes of the inputs fed.
 */
import { type Dim, dtypeBytes, type Graph } from './ir.js';

export const TENSOR_SIZES_KEY = 'flaneur.tensor_sizes';

export interface TensorSizeTable {
  /** The graph's inputs and their declared shapes (where the symbols are bound). */
  inputs: Record<string, Dim[]>;
  /** One entry per distinct (shape, element size): [a tensor's name, shape, bytes per element]. */
  tensors: [string, Dim[], number][];
}

export function tensorSizeTable(graph: Graph): TensorSizeTable {
  const inputs: Record<string, Dim[]> = {};
  for (const v of graph.inputs) inputs[v.name] = [...v.shape];
  const seen = new Map<string, [string, Dim[], number]>();
  for (const v of graph.values.values()) {
    const bytes = dtypeBytes(v.dtype);
    const key = `${v.shape.join(',')}:${bytes}`;
    if (!seen.has(key)) seen.set(key, [v.name, [...v.shape], bytes]);
  }
  return { inputs, tensors: [...seen.values()] };
}

export interface LargestTensor {
  name: string;
  shape: number[];
  bytes: number;
}

/**
 * The largest tensor for inputs of these shapes (tensors whose size depends on a symbol no input binds are left
 * out), or null for an empty table.
 */
export function largestTensor(
  table: TensorSizeTable,
  inputShapes: Readonly<Record<string, readonly number[]>>,
): LargestTensor | null {
  const bound = new Map<string, number>();
  for (const [name, declared] of Object.entries(table.inputs)) {
    const actual = inputShapes[name];
    if (!actual) continue;
    declared.forEach((d, i) => {
      if (typeof d === 'string' && !d.includes('*') && actual[i] !== undefined) bound.set(d, actual[i] as number);
    });
  }
  const dim = (d: Dim): number | null => {
    if (typeof d === 'number') return d;
    let n = 1;
    for (const part of d.split('*')) {
      const v = /^\d+$/.test(part) ? Number(part) : bound.get(part);
      if (v === undefined) return null;
      n *= v;
    }
    return n;
  };
  let best: LargestTensor | null = null;
  for (const [name, shape, perElement] of table.tensors) {
    const dims = shape.map(dim);
    if (dims.some((d) => d === null)) continue;
    const bytes = (dims as number[]).reduce((a, d) => a * d, perElement);
    if (!best || bytes > best.bytes) best = { name, shape: dims as number[], bytes };
  }
  return best;
}
