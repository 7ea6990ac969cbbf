import * as ort from 'onnxruntime-node';
import { describe, expect, it } from 'vitest';
import { Rng } from '../../../native/base/rng.js';
import { GraphBuilder } from '../../../native/graph/builder.js';
import { toOnnx } from '../../../native/graph/onnx.js';
import { doraLoss } from '../../../native/models/dino-loss.js';

/** Dora's loss written out directly: 1/2 [mean_j CE(t, s_j) + mean_l CE(t, s_l)] averaged over the batch. */
function reference(
  student: Float32Array,
  teacher: Float32Array,
  center: Float32Array,
  B: number,
  K: number,
  masked: number,
  locals: number,
  ts: number,
  tt: number,
): number {
  const softmax = (row: number[]) => {
    const m = Math.max(...row);
    const e = row.map((v) => Math.exp(v - m));
    const s = e.reduce((a, v) => a + v, 0);
    return e.map((v) => v / s);
  };
  const ce = (view: number) => {
    let total = 0;
    for (let b = 0; b < B; b++) {
      const q = softmax(
        Array.from({ length: K }, (_, k) => ((teacher[b * K + k] as number) - (center[k] as number)) / tt),
      );
      const p = softmax(Array.from({ length: K }, (_, k) => (student[(view * B + b) * K + k] as number) / ts));
      total += -q.reduce((a, qk, k) => a + qk * Math.log(p[k] as number), 0);
    }
    return total / B;
  };
  const mean = (from: number, n: number) =>
    Array.from({ length: n }, (_, i) => ce(from + i)).reduce((a, v) => a + v, 0) / n;
  return locals > 0 ? 0.5 * (mean(0, masked) + mean(masked, locals)) : mean(0, masked);
}

describe('Dora loss', () => {
  for (const locals of [0, 2])
    it(`matches the formula (${locals} local crops)`, async () => {
      const B = 3;
      const K = 7;
      const masked = 2;
      const rng = new Rng(5);
      const rand = (n: number) => Float32Array.from({ length: n }, () => rng.normal());
      const student = rand((masked + locals) * B * K);
      const teacher = rand(B * K);
      const center = rand(K).map((v) => v * 0.1);
      const b = new GraphBuilder();
      const { loss } = doraLoss(b, {
        student: b.input('s', 'float32', [(masked + locals) * B, K]),
        teacher: b.input('t', 'float32', [B, K]),
        center: b.input('c', 'float32', [1, K]),
        studentTemp: b.constFloat(0.1),
        teacherTemp: b.constFloat(0.04),
        batch: B,
        masked,
        locals,
      });
      b.output(loss, 'loss');
      const session = await ort.InferenceSession.create(toOnnx(b.build()));
      const out = await session.run({
        s: new ort.Tensor('float32', student, [(masked + locals) * B, K]),
        t: new ort.Tensor('float32', teacher, [B, K]),
        c: new ort.Tensor('float32', center, [1, K]),
      });
      if (!out.loss) throw new Error('no loss');
      const got = (out.loss.data as Float32Array)[0] as number;
      const want = reference(student, teacher, center, B, K, masked, locals, 0.1, 0.04);
      expect(Math.abs(got - want) / Math.abs(want)).toBeLessThan(1e-5);
    });
});
