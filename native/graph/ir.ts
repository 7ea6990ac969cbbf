/**
 * The graph IR: values with a dtype and a shape (numbers, or names for symbolic dimensions such as the batch),
 * nodes in topological order, initializers (weights) and named inputs/outputs. Pure TypeScript, no dependencies.
 */
export type DType = 'float32' | 'float16' | 'bfloat16' | 'int64' | 'int32' | 'uint8' | 'bool';
export type Dim = number | string;
export type Shape = readonly Dim[];

export interface Value {
  readonly name: string;
  readonly dtype: DType;
  readonly shape: Shape;
}

export type Attr =
  | { type: 'int'; value: number }
  | { type: 'float'; value: number }
  | { type: 'ints'; value: readonly number[] }
  | { type: 'floats'; value: readonly number[] }
  | { type: 'string'; value: string };

export interface Node {
  readonly op: string;
  readonly name: string;
  readonly inputs: readonly string[];
  readonly outputs: readonly string[];
  readonly attrs: Readonly<Record<string, Attr>>;
  readonly domain?: string;
}

export type TensorData = Float32Array | Uint16Array | BigInt64Array | Int32Array | Uint8Array;

export interface Initializer {
  readonly value: Value;
  /** float16 and bfloat16 data are raw 16-bit patterns in a Uint16Array. */
  data: TensorData;
}

export interface Graph {
  readonly name: string;
  readonly inputs: readonly Value[];
  readonly outputs: readonly Value[];
  readonly nodes: readonly Node[];
  readonly initializers: ReadonlyMap<string, Initializer>;
  /** Every value by name (inputs, initializers, node outputs). */
  readonly values: ReadonlyMap<string, Value>;
}

export const attr = {
  int: (value: number): Attr => ({ type: 'int', value }),
  float: (value: number): Attr => ({ type: 'float', value }),
  ints: (value: readonly number[]): Attr => ({ type: 'ints', value }),
  floats: (value: readonly number[]): Attr => ({ type: 'floats', value }),
  string: (value: string): Attr => ({ type: 'string', value }),
};

export function formatShape(shape: Shape): string {
  return `[${shape.join(',')}]`;
}

export function dtypeBytes(dtype: DType): number {
  switch (dtype) {
    case 'float32':
    case 'int32':
      return 4;
    case 'float16':
    case 'bfloat16':
      return 2;
    case 'int64':
      return 8;
    case 'uint8':
    case 'bool':
      return 1;
  }
}

/** Number of elements when every dimension is known, else null. */
export function numel(shape: Shape): number | null {
  let n = 1;
  for (const d of shape) {
    if (typeof d !== 'number') return null;
    n *= d;
  }
  return n;
}
