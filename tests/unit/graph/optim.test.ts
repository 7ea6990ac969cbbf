import * as ort from 'onnxruntime-node';
import { describe, expect, it } from 'vitest';
import { GraphBuilder } from '../../../native/graph/builder.js';
import { toOnnx } from '../../../native/graph/onnx.js';
import { clipByGlobalNorm, cosineSchedule, globalNorm, sgdMomentum } from '../../../native/graph/optim.js';
import { maxAbsDiff } from '../../helpers/fixtures.js';

describe('optimizer graph pieces', () => {
  it('SGD with momentum and weight decay follows torch.optim.SGD', async () => {
    const b = new GraphBuilder();
    const p = b.input('p', 'float32', [3]);
    const g = b.input('g', 'float32', [3]);
    const buf = b.input('buf', 'float32', [3]);
    const lr = b.input('lr', 'float32', []);
    const wd = b.input('wd', 'float32', []);
    const [u] = sgdMomentum(b, [{ name: 'w', param: p, grad: g, decay: true }], new Map([['w', buf]]), {
      lr,
      weightDecay: wd,
      momentum: 0.9,
    });
    b.output(u?.param as never, 'p2');
    b.output(u?.state[0] as never, 'buf2');
    const s = await ort.InferenceSession.create(toOnnx(b.build()));
    const t = (d: number[]) => new ort.Tensor('float32', Float32Array.from(d), [d.length]);
    const out = await s.run({
      p: t([1, -2, 3]),
      g: t([0.5, 0.5, -1]),
      buf: t([0.1, 0, 0]),
      lr: new ort.Tensor('float32', [0.1], []),
      wd: new ort.Tensor('float32', [0.01], []),
    });
    // buf = 0.9 buf + (g + wd p); p = p - lr buf
    const expBuf = [0.9 * 0.1 + 0.5 + 0.01, 0.5 - 0.02, -1 + 0.03];
    expect(maxAbsDiff(out.buf2?.data as Float32Array, expBuf)).toBeLessThan(1e-6);
    expect(
      maxAbsDiff(out.p2?.data as Float32Array, [
        1 - 0.1 * (expBuf[0] as number),
        -2 - 0.1 * (expBuf[1] as number),
        3 - 0.1 * (expBuf[2] as number),
      ]),
    ).toBeLessThan(1e-6);
  });

  it('clips by the global norm only when it exceeds the bound', async () => {
    const b = new GraphBuilder();
    const g1 = b.input('g1', 'float32', [2]);
    const g2 = b.input('g2', 'float32', [1]);
    const max = b.input('max', 'float32', []);
    const n = globalNorm(b, [g1, g2]);
    const [c1, c2] = clipByGlobalNorm(b, [g1, g2], max, n);
    b.output(n, 'n');
    b.output(c1 as never, 'c1');
    b.output(c2 as never, 'c2');
    const s = await ort.InferenceSession.create(toOnnx(b.build()));
    const run = async (m: number) =>
      s.run({
        g1: new ort.Tensor('float32', Float32Array.from([3, 0]), [2]),
        g2: new ort.Tensor('float32', Float32Array.from([4]), [1]),
        max: new ort.Tensor('float32', [m], []),
      });
    const a = await run(1);
    expect(a.n?.data[0]).toBeCloseTo(5, 5);
    expect(maxAbsDiff(a.c1?.data as Float32Array, [3 / (5 + 1e-6), 0])).toBeLessThan(1e-6);
    const bIg = await run(10);
    expect(Array.from(bIg.c2?.data as Float32Array)).toEqual([4]);
  });

  it('schedules like DINO: linspace warm-up including its end, then a half cosine to the final value', () => {
    const s = cosineSchedule(1, 0, 12, 3, 0.1);
    expect([s(0), s(1), s(2)]).toEqual([0.1, 0.55, 1]);
    expect(s(3)).toBeCloseTo(1, 10);
    expect(s(7)).toBeCloseTo(0.5 * (1 + Math.cos((Math.PI * 4) / 9)), 10);
    expect(s(12)).toBeCloseTo(0, 10);
  });
});
