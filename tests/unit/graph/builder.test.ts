import * as ort from 'onnxruntime-node';
import { describe, expect, it } from 'vitest';
import { GraphBuilder, GraphShapeError } from '../../../native/graph/builder.js';
import { toOnnx } from '../../../native/graph/onnx.js';
import { bicubicMatrix, posEmbedMatrix } from '../../../native/models/interpolate.js';
import { maxAbsDiff } from '../../helpers/fixtures.js';

async function run(b: GraphBuilder, feeds: Record<string, ort.Tensor>): Promise<ort.InferenceSession.OnnxValueMapType> {
  const s = await ort.InferenceSession.create(toOnnx(b.build()));
  const out = await s.run(feeds);
  await s.release();
  return out;
}

describe('graph builder shape checks', () => {
  it('says where a MatMul goes wrong', () => {
    const b = new GraphBuilder();
    const x = b.input('x', 'float32', [197, 384]);
    const w = b.initializer('w', new Float32Array(768 * 384), [768, 384]);
    expect(() => b.scope('block 3', () => b.matmul(x, w, 'attn.qkv'))).toThrow(
      new GraphShapeError('block 3 attn.qkv: MatMul [197,384] x [768,384]: inner dimensions differ (384 vs 768)'),
    );
  });

  it('refuses shapes that do not broadcast and names both', () => {
    const b = new GraphBuilder();
    const x = b.input('x', 'float32', ['batch', 197, 384]);
    const y = b.input('y', 'float32', [196, 384]);
    expect(() => b.add(x, y, 'pos')).toThrow('pos: Add [batch,197,384] x [196,384]: shapes do not broadcast');
  });

  it('infers reshapes with 0, -1 and a symbolic batch', () => {
    const b = new GraphBuilder();
    const x = b.input('x', 'float32', ['batch', 197, 384]);
    expect(b.reshape(x, [0, 0, 6, 64]).shape).toEqual(['batch', 197, 6, 64]);
    expect(b.reshape(x, [0, -1]).shape).toEqual(['batch', 197 * 384]);
    expect(b.reshape(x, [-1, 384]).shape).toEqual(['batch*197', 384]);
    expect(() => b.reshape(x, [0, 100, 384])).toThrow(/element counts differ/);
  });

  it('computes slice, concat, gather, transpose and topk shapes', () => {
    const b = new GraphBuilder();
    const x = b.input('x', 'float32', ['batch', 201, 48]);
    expect(b.slice(x, [5], [2 ** 62], [1]).shape).toEqual(['batch', 196, 48]);
    expect(b.slice(x, [0, 0], [1, 10], [1, 2]).shape).toEqual(['batch', 1, 10]);
    expect(b.concat([x, x], 1).shape).toEqual(['batch', 402, 48]);
    expect(() => b.concat([x, b.input('z', 'float32', ['batch', 3, 47])], 1)).toThrow(/dimension 2 differs/);
    expect(b.transpose(x, [1, 0, 2]).shape).toEqual([201, 'batch', 48]);
    const [v, i] = b.topk(x, 30, -1);
    expect(v.shape).toEqual(['batch', 201, 30]);
    expect(i.dtype).toBe('int64');
    expect(() => b.topk(x, 49, -1)).toThrow(/k=49 exceeds the axis size 48/);
  });

  it('serializes graphs that ONNX Runtime runs with the numbers expected', async () => {
    const b = new GraphBuilder();
    const x = b.input('x', 'float32', ['batch', 4]);
    const w = b.initializer('w', Float32Array.from([1, 0, 0, 1, 1, 1, 2, -1]), [4, 2]);
    const y = b.softmax(b.matmul(x, w), -1);
    const mean = b.reduceMean(x, [1], false);
    const [top, idx] = b.topk(x, 2, 1);
    b.output(y, 'y');
    b.output(mean, 'mean');
    b.output(top, 'top');
    b.output(idx, 'idx');
    b.output(b.cast(b.sqrt(b.mul(x, x)), 'float16'), 'abs16');
    const out = await run(b, { x: new ort.Tensor('float32', Float32Array.from([1, 2, 3, -4, 0, 0, 0, 0]), [2, 4]) });
    const [e0, e1] = [Math.exp(1 + 3 - 8), Math.exp(2 + 3 + 4)];
    expect(maxAbsDiff(out.y?.data as Float32Array, [e0 / (e0 + e1), e1 / (e0 + e1), 0.5, 0.5])).toBeLessThan(1e-6);
    expect(Array.from(out.mean?.data as Float32Array)).toEqual([0.5, 0]);
    expect(Array.from(out.top?.data as Float32Array).slice(0, 2)).toEqual([3, 2]);
    expect(Array.from(out.idx?.data as BigInt64Array).slice(0, 2)).toEqual([2n, 1n]);
    expect(out.abs16?.type).toBe('float16');
  });

  it('matches ONNX Resize (cubic, half-pixel) with its interpolation matrices', async () => {
    const b = new GraphBuilder();
    const x = b.input('x', 'float32', [1, 1, 14, 14]);
    b.output(b.resize(x, [1, 1, 10 / 14, 12 / 14], 'cubic'), 'y');
    const data = Float32Array.from({ length: 196 }, (_, i) => Math.sin(i * 0.7) + (i % 14) * 0.1);
    const out = await run(b, { x: new ort.Tensor('float32', data, [1, 1, 14, 14]) });
    expect(out.y?.dims).toEqual([1, 1, 10, 12]);
    const m = posEmbedMatrix(14, 10, 12, 'size');
    const mine = new Float32Array(120);
    for (let o = 0; o < 120; o++) {
      let v = 0;
      for (let i = 0; i < 196; i++) v += (m[o * 196 + i] as number) * (data[i] as number);
      mine[o] = v;
    }
    // ONNX Resize excludes nothing and clamps taps at the border like PyTorch: the two agree closely.
    expect(maxAbsDiff(mine, out.y?.data as Float32Array)).toBeLessThan(1e-4);
  });

  it('keeps interpolation rows summing to one', () => {
    const m = bicubicMatrix(14, 37, (37 + 0.1) / 14);
    for (let o = 0; o < 37; o++) {
      let s = 0;
      for (let i = 0; i < 14; i++) s += m[o * 14 + i] as number;
      expect(s).toBeCloseTo(1, 6);
    }
  });
});
