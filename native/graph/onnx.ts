/**
 * Serializes a Graph to an ONNX ModelProto (opset 17, IR 8). Field numbers follow onnx/onnx.proto.
 */
import { IR_VERSION, ONNX_DTYPE, OPSET } from './dtypes.js';
import type { Attr, Graph, Initializer, Node, Value } from './ir.js';
import { ProtoWriter } from './protobuf.js';
import { TENSOR_SIZES_KEY, tensorSizeTable } from './tensor-sizes.js';

const ATTR_TYPE = { float: 1, int: 2, string: 3, floats: 6, ints: 7 } as const;

function valueInfo(v: Value): ProtoWriter {
  const shape = new ProtoWriter();
  for (const d of v.shape) {
    const dim = new ProtoWriter();
    if (typeof d === 'number') dim.int(1, d);
    else dim.string(2, d);
    shape.message(1, dim);
  }
  const tensorType = new ProtoWriter().int(1, ONNX_DTYPE[v.dtype]).message(2, shape);
  const type = new ProtoWriter().message(1, tensorType);
  return new ProtoWriter().string(1, v.name).message(2, type);
}

function tensor(init: Initializer): ProtoWriter {
  const t = new ProtoWriter();
  for (const d of init.value.shape) t.int(1, d as number);
  t.int(2, ONNX_DTYPE[init.value.dtype]);
  t.string(8, init.value.name);
  const d = init.data;
  t.bytes(9, new Uint8Array(d.buffer, d.byteOffset, d.byteLength));
  return t;
}

function attribute(name: string, a: Attr): ProtoWriter {
  const w = new ProtoWriter().string(1, name);
  switch (a.type) {
    case 'float':
      w.float(2, a.value);
      break;
    case 'int':
      w.int(3, a.value);
      break;
    case 'string':
      w.string(4, a.value);
      break;
    case 'floats':
      w.packedFloats(7, a.value);
      break;
    case 'ints':
      w.packedInts(8, a.value);
      break;
  }
  return w.int(20, ATTR_TYPE[a.type]);
}

function node(n: Node): ProtoWriter {
  const w = new ProtoWriter();
  for (const i of n.inputs) w.string(1, i);
  for (const o of n.outputs) w.string(2, o);
  w.string(3, n.name).string(4, n.op);
  for (const [k, a] of Object.entries(n.attrs)) w.message(5, attribute(k, a));
  if (n.domain) w.string(7, n.domain);
  return w;
}

export function toOnnx(graph: Graph, options: { producer?: string; docString?: string } = {}): Uint8Array {
  const g = new ProtoWriter();
  for (const n of graph.nodes) g.message(1, node(n));
  g.string(2, graph.name);
  for (const init of graph.initializers.values()) g.message(5, tensor(init));
  if (options.docString) g.string(10, options.docString);
  for (const v of graph.inputs) g.message(11, valueInfo(v));
  for (const v of graph.outputs) g.message(12, valueInfo(v));

  const model = new ProtoWriter()
    .int(1, IR_VERSION)
    .string(2, options.producer ?? 'flaneur')
    .string(3, '1')
    .message(7, g)
    .message(8, new ProtoWriter().string(1, '').int(2, OPSET));
  // ONNX Runtime's contributed kernels (com.microsoft: fused attention, skip layer norm) are version 1.
  for (const domain of new Set(graph.nodes.map((n) => n.domain).filter((d): d is string => !!d)))
    model.message(8, new ProtoWriter().string(1, domain).int(2, 1));
  model
    // metadata_props: the tensors' sizes, for a GPU's buffer limits (tensor-sizes.ts).
    .message(14, new ProtoWriter().string(1, TENSOR_SIZES_KEY).string(2, JSON.stringify(tensorSizeTable(graph))));
  return model.finish();
}
