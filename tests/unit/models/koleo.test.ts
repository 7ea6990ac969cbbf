import * as ort from 'onnxruntime-node';
import { describe, expect, it } from 'vitest';
import { Rng } from '../../../native/base/rng.js';
import { gradients } from '../../../native/graph/autodiff/grad.js';
import { GraphBuilder } from '../../../native/graph/builder.js';
import type { Value } from '../../../native/graph/ir.js';
import { toOnnx } from '../../../native/graph/onnx.js';
import { koleoLoss } from '../../../native/models/dino-loss.js';

/** KoLeo written out: -mean_i log(min_{j != i} ||z_i - z_j||) of the L2-normalised rows. */
function reference(x: Float32Array, n: number, d: number): number {
  const z = Array.from({ length: n }, (_, i) => {
    const row = Array.from(x.subarray(i * d, (i + 1) * d));
    const norm = Math.hypot(...row);
    return row.map((v) => v / norm);
  });
  let total = 0;
  for (let i = 0; i < n; i++) {
    let best = Number.POSITIVE_INFINITY;
    for (let j = 0; j < n; j++)
      if (j !== i)
        best = Math.min(best, Math.hypot(...(z[i] as number[]).map((v, k) => v - ((z[j] as number[])[k] as number))));
    total += Math.log(best);
  }
  return -total / n;
}

describe('KoLeo regulariser', () => {
  const n = 6;
  const d = 5;
  const x = Float32Array.from(
    { length: n * d },
    (
      (r) => () =>
        r.normal()
    )(new Rng(4)),
  );

  it('matches the formula (soft-min within its temperature) and its gradient matches finite differences', async () => {
    const b = new GraphBuilder('koleo');
    const xi = b.input('x', 'float32', [n, d]);
    const { loss, stop } = koleoLoss(b, xi, n);
    b.output(loss, 'loss');
    const g = gradients(b, loss, [xi], stop).get(xi.name) as Value;
    b.output(g, 'grad');
    const s = await ort.InferenceSession.create(toOnnx(b.build()));
    const run = async (v: Float32Array) => s.run({ x: new ort.Tensor('float32', v, [n, d]) });
    const out = await run(x);
    const value = out.loss?.data[0] as number;
    // The soft-min (tau 0.01) sits below the min by at most tau·log(n-1).
    expect(Math.abs(value - reference(x, n, d))).toBeLessThan(0.05);
    const grad = out.grad?.data as Float32Array;
    const eps = 1e-3;
    for (const k of [0, 7, 13, 29]) {
      const up = x.slice();
      up[k] = (up[k] as number) + eps;
      const down = x.slice();
      down[k] = (down[k] as number) - eps;
      const fd = (((await run(up)).loss?.data[0] as number) - ((await run(down)).loss?.data[0] as number)) / (2 * eps);
      expect(Math.abs(fd - (grad[k] as number))).toBeLessThan(2e-2 * Math.abs(fd) + 2e-3);
    }
  });
});
