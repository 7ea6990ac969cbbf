/**
 * A minimal protobuf writer: enough for ONNX ModelProto. Messages are built as lists of byte chunks so large
 * tensors are copied once, when the final buffer is assembled.
 */
export class ProtoWriter {
  private readonly chunks: Uint8Array[] = [];
  private scratch: number[] = [];
  length = 0;

  private flushScratch(): void {
    if (this.scratch.length === 0) return;
    const bytes = Uint8Array.from(this.scratch);
    this.chunks.push(bytes);
    this.length += bytes.length;
    this.scratch = [];
  }

  private varint(value: number | bigint): void {
    let v = BigInt.asUintN(64, BigInt(value));
    if (v < 0x80n) {
      this.scratch.push(Number(v));
      return;
    }
    while (v >= 0x80n) {
      this.scratch.push(Number((v & 0x7fn) | 0x80n));
      v >>= 7n;
    }
    this.scratch.push(Number(v));
  }

  private key(field: number, wire: number): void {
    this.varint((field << 3) | wire);
  }

  int(field: number, value: number | bigint): this {
    this.key(field, 0);
    this.varint(value);
    return this;
  }

  float(field: number, value: number): this {
    this.key(field, 5);
    const b = new Uint8Array(4);
    new DataView(b.buffer).setFloat32(0, value, true);
    this.scratch.push(...b);
    return this;
  }

  bytes(field: number, data: Uint8Array): this {
    this.key(field, 2);
    this.varint(data.length);
    if (data.length < 64) {
      this.scratch.push(...data);
    } else {
      this.flushScratch();
      this.chunks.push(data);
      this.length += data.length;
    }
    return this;
  }

  string(field: number, s: string): this {
    return this.bytes(field, new TextEncoder().encode(s));
  }

  message(field: number, m: ProtoWriter): this {
    m.flushScratch();
    this.key(field, 2);
    this.varint(m.length);
    this.flushScratch();
    this.chunks.push(...m.chunks);
    this.length += m.length;
    return this;
  }

  packedInts(field: number, values: readonly (number | bigint)[]): this {
    const inner = new ProtoWriter();
    for (const v of values) inner.varint(v);
    inner.flushScratch();
    return this.message(field, inner);
  }

  packedFloats(field: number, values: readonly number[]): this {
    const b = new Uint8Array(values.length * 4);
    const dv = new DataView(b.buffer);
    for (let i = 0; i < values.length; i++) dv.setFloat32(i * 4, values[i] as number, true);
    return this.bytes(field, b);
  }

  finish(): Uint8Array {
    this.flushScratch();
    const out = new Uint8Array(this.length);
    let o = 0;
    for (const c of this.chunks) {
      out.set(c, o);
      o += c.length;
    }
    return out;
  }
}

/** Reads a varint at `pos`: [value, next position]. Values above 2^53 lose precision (lengths never are). */
function readVarint(buf: Uint8Array, pos: number): [number, number] {
  let value = 0;
  let scale = 1;
  for (let p = pos; p < buf.length; p++) {
    const b = buf[p] as number;
    value += (b & 0x7f) * scale;
    if (b < 0x80) return [value, p + 1];
    scale *= 128;
  }
  throw new Error('truncated protobuf varint');
}

/**
 * The top-level length-delimited fields `field` of a message, as byte ranges (other fields skipped without being
 * decoded: reading an ONNX model's metadata does not walk its graph).
 */
export function readField(buf: Uint8Array, field: number): Uint8Array[] {
  const out: Uint8Array[] = [];
  let pos = 0;
  while (pos < buf.length) {
    const [key, p] = readVarint(buf, pos);
    const wire = key % 8;
    pos = p;
    if (wire === 0) pos = readVarint(buf, pos)[1];
    else if (wire === 1) pos += 8;
    else if (wire === 5) pos += 4;
    else if (wire === 2) {
      const [len, start] = readVarint(buf, pos);
      if (Math.floor(key / 8) === field) out.push(buf.subarray(start, start + len));
      pos = start + len;
    } else throw new Error(`unsupported protobuf wire type ${wire}`);
  }
  return out;
}

/** An ONNX ModelProto's metadata_props (field 14: key 1, value 2). */
export function readOnnxMetadata(model: Uint8Array): Map<string, string> {
  const text = new TextDecoder();
  const out = new Map<string, string>();
  for (const entry of readField(model, 14)) {
    const key = readField(entry, 1)[0];
    const value = readField(entry, 2)[0];
    if (key) out.set(text.decode(key), value ? text.decode(value) : '');
  }
  return out;
}

/** The op types of an ONNX ModelProto's nodes in order (graph 7, node 1: op_type 4, domain 7 as `domain:op`). */
export function readOnnxNodeOps(model: Uint8Array): string[] {
  const text = new TextDecoder();
  const graph = readField(model, 7)[0];
  if (!graph) return [];
  return readField(graph, 1).map((node) => {
    const op = text.decode(readField(node, 4)[0] ?? new Uint8Array());
    const domain = readField(node, 7)[0];
    return domain?.length ? `${text.decode(domain)}:${op}` : op;
  });
}
