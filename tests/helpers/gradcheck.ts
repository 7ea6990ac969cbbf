/**
 * Finite-difference checks of our autodiff: loss = sum(f(x...) * R) for a fixed random R; analytic gradients from
 * the graph vs central differences, on a sample of elements of every input.
 */
import * as ort from 'onnxruntime-node';
import { gradients } from '../../native/graph/autodiff/grad.js';
import { GraphBuilder } from '../../native/graph/builder.js';
import type { Value } from '../../native/graph/ir.js';
import { toOnnx } from '../../native/graph/onnx.js';
import { rng } from '../../tools/synth/tour.js';

export interface GradInput {
  shape: number[];
  /** Value generator per element; default uniform in [-1, 1]. */
  init?: (r: () => number) => number;
}

export interface GradCheckResult {
  worst: number;
  checked: number;
}

export async function gradCheck(
  build: (b: GraphBuilder, xs: Value[]) => Value,
  inputs: GradInput[],
  o: { eps?: number; rtol?: number; atol?: number; samples?: number; seed?: number } = {},
): Promise<GradCheckResult> {
  const r = rng(o.seed ?? 11);
  const b = new GraphBuilder('gradcheck');
  const xs = inputs.map((inp, i) => b.input(`x${i}`, 'float32', inp.shape));
  const out = build(b, xs);
  const n = out.shape.reduce<number>((a, d) => a * (d as number), 1);
  const R = b.initializer(
    'R',
    Float32Array.from({ length: n }, () => r() * 2 - 1),
    out.shape as number[],
  );
  const loss = b.reduceSum(b.mul(out, R), [...out.shape.keys()], false);
  b.output(loss, 'loss');
  const grads = gradients(b, loss, xs);
  for (const [i, x] of xs.entries()) b.output(grads.get(x.name) as Value, `g${i}`);
  const session = await ort.InferenceSession.create(toOnnx(b.build()));
  const data = inputs.map((inp) =>
    Float32Array.from({ length: inp.shape.reduce((a, d) => a * d, 1) }, () => (inp.init ?? ((q) => q() * 2 - 1))(r)),
  );
  const feeds = () =>
    Object.fromEntries(data.map((d, i) => [`x${i}`, new ort.Tensor('float32', d, inputs[i]?.shape as number[])]));
  const base = await session.run(feeds());
  const eps = o.eps ?? 1e-2;
  const rtol = o.rtol ?? 2e-2;
  const atol = o.atol ?? 2e-3;
  let worst = 0;
  let checked = 0;
  for (let i = 0; i < data.length; i++) {
    const d = data[i] as Float32Array;
    const analytic = base[`g${i}`]?.data as Float32Array;
    if (analytic.length !== d.length)
      throw new Error(`gradient of input ${i} has ${analytic.length} elements, not ${d.length}`);
    const picks =
      d.length <= (o.samples ?? 12)
        ? [...d.keys()]
        : Array.from({ length: o.samples ?? 12 }, () => Math.floor(r() * d.length));
    for (const k of picks) {
      const keep = d[k] as number;
      d[k] = keep + eps;
      const up = (await session.run(feeds())).loss?.data[0] as number;
      d[k] = keep - eps;
      const down = (await session.run(feeds())).loss?.data[0] as number;
      d[k] = keep;
      const fd = (up - down) / (2 * eps);
      const err = Math.abs(fd - (analytic[k] as number));
      const bound = atol + rtol * Math.abs(fd);
      worst = Math.max(worst, err / bound);
      checked++;
      if (err > bound) {
        throw new Error(
          `input ${i}[${k}]: analytic ${analytic[k]} vs finite difference ${fd} (|diff| ${err.toExponential(2)} > ${bound.toExponential(2)})`,
        );
      }
    }
  }
  await session.release();
  return { worst, checked };
}
