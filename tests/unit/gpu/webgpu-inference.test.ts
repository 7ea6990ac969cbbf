/**
 * Inference graphs on onnxruntime's WebGPU provider against its CPU provider (on a software Vulkan where the machine
 * has no GPU; inputs kept small because SwiftShader runs shaders on the CPU): the ViT forward (CLS, patch tokens,
 * q/k, attention), exact kNN (MatMul + TopK) and FUNGI's per-sample gradients; and no node of these graphs that
 * touches tensor data falls back to the CPU provider (profiled run).
 */
import { describe, expect, it } from 'vitest';
import { Rng } from '../../../native/base/rng.js';
import { ExactKnn, makeBank } from '../../../native/features/knn.js';
import { GraphBuilder } from '../../../native/graph/builder.js';
import { toOnnx } from '../../../native/graph/onnx.js';
import { importViTFile } from '../../../native/models/import-vit.js';
import { buildViTOnnx } from '../../../native/models/vit-onnx.js';
import { profilePlacement } from '../../../native/runtime/placement.js';
import { ModelSession, ort } from '../../../native/runtime/session.js';
import { fixturePath, maxAbsDiff } from '../../helpers/fixtures.js';
import { S as fungiSamples, get as fungiTensor, gradientsOf } from '../../helpers/fungi-fixture.js';
import { CPU, describeWebGpu, relErr, WEBGPU, webgpuStatus } from '../../helpers/webgpu.js';

const OUTPUTS = ['cls', 'patches', 'q', 'k', 'attention'] as const;

async function runCpu(onnx: Uint8Array, feeds: Record<string, ort.Tensor>) {
  const s = await ModelSession.create(onnx, CPU);
  try {
    return await s.run(feeds);
  } finally {
    await s.release();
  }
}

describeWebGpu(`WebGPU inference (${webgpuStatus.adapter?.description ?? 'no adapter'})`, () => {
  describe.each(['dino_tiny', 'dinov2reg_tiny'])('%s ViT forward', (model) => {
    it.each([
      ['a fixed batch', 2],
      ['a symbolic batch', 'batch'],
    ] as const)(
      'with %s matches the CPU provider within 1e-3 on CLS, patch tokens, q, k and attention, on the GPU',
      async (_, batch) => {
        const m = importViTFile(fixturePath('vit', `${model}.official.safetensors`));
        // 4 x 5 patches, position embeddings interpolated from the 224 px grid.
        const [h, w] = [4 * m.config.patchSize, 5 * m.config.patchSize];
        const onnx = buildViTOnnx(m, {
          height: h,
          width: w,
          batch,
          outputs: { cls: true, patches: true, lastQK: true, attention: true },
        });
        const rng = new Rng(3);
        const pixels = Float32Array.from({ length: 2 * 3 * h * w }, () => rng.normal());
        const feeds = { pixels: new ort.Tensor('float32', pixels, [2, 3, h, w]) };
        const gpu = await profilePlacement(onnx, feeds, 'webgpu');
        const cpu = await runCpu(onnx, feeds);
        const errs: Record<string, number> = {};
        for (const name of OUTPUTS) {
          expect(gpu.outputs[name]?.dims, name).toEqual(cpu[name]?.dims);
          const err = maxAbsDiff(gpu.outputs[name]?.data as Float32Array, cpu[name]?.data as Float32Array);
          expect(err, `${name}: WebGPU vs CPU`).toBeLessThanOrEqual(1e-3);
          errs[name] = err;
        }
        console.info(`${model} (batch ${batch}) WebGPU vs CPU max abs error: ${JSON.stringify(errs)}`);
        expect(gpu.nodes.length).toBeGreaterThan(20);
        expect(gpu.cpuNodes.map((n) => `${n.name} (${n.op})`)).toEqual([]);
        expect(gpu.copies).toEqual([]);
        // A symbolic batch needs the batch size for the CLS token's Expand: a few int64 shape nodes, no data.
        if (batch === 2) expect(gpu.shapeNodes).toEqual([]);
      },
      120_000,
    );
  });

  it('exact kNN gives the CPU provider’s top-k (f32 and f16 banks), all on the GPU', async () => {
    const rng = new Rng(11);
    const dim = 32;
    const size = 3000;
    const rows = Float32Array.from({ length: size * dim }, () => rng.normal());
    const queries = Float32Array.from({ length: 40 * dim }, () => rng.normal());
    for (const dtype of ['float32', 'float16'] as const) {
      // Chunks of 1000 rows: the per-chunk top-k are merged on the host.
      const bank = makeBank(rows, dim, dtype, 1000);
      const [gpu, cpu] = [new ExactKnn(() => WEBGPU), new ExactKnn(() => CPU)];
      const a = await gpu.search(queries, bank, 10);
      const b = await cpu.search(queries, bank, 10);
      expect(gpu.providers()).toEqual(['webgpu']);
      await gpu.release();
      await cpu.release();
      expect(maxAbsDiff(a.sims, b.sims), dtype).toBeLessThan(1e-4);
      let differ = 0;
      // Same neighbours, except where two bank rows are exactly as similar (then either order is right).
      for (let i = 0; i < a.indices.length; i++)
        if (a.indices[i] !== b.indices[i]) {
          differ++;
          expect(Math.abs((a.sims[i] as number) - (b.sims[i] as number))).toBe(0);
        }
      console.info(
        `kNN ${dtype}: max sim error ${maxAbsDiff(a.sims, b.sims)}, ${differ} of ${a.indices.length} neighbours in another order (exact ties)`,
      );
    }
    // The search graph itself (as ExactKnn builds it), profiled.
    const g = new GraphBuilder('knn');
    const q = g.input('queries', 'float32', ['q', dim]);
    const bk = g.input('bank', 'float32', [dim, 'm']);
    const [v, ix] = g.topk(g.matmul(q, bk), 10, -1);
    g.output(v, 'sims');
    g.output(ix, 'indices');
    const p = await profilePlacement(
      toOnnx(g.build()),
      {
        queries: new ort.Tensor('float32', queries.subarray(0, 4 * dim), [4, dim]),
        bank: new ort.Tensor('float32', rows.subarray(0, 500 * dim), [dim, 500]),
      },
      'webgpu',
    );
    expect(p.cpuNodes).toEqual([]);
  }, 120_000);

  it.each(['kl', 'dino', 'simclr'] as const)(
    'FUNGI %s per-sample gradients match the CPU provider within 1e-3 relative, all on the GPU',
    async (objective) => {
      // The fixture's first sample only: its gradient does not depend on the others (fungi-parity.test.ts).
      const all = fungiTensor(`${objective}.views`);
      const views = all.subarray(0, all.length / fungiSamples);
      const cpu = await gradientsOf(objective, 1, views, CPU);
      const gpu = await profilePlacement(cpu.onnx, cpu.feeds, 'webgpu');
      const grad = gpu.outputs.grad?.data as Float32Array;
      expect(relErr(grad, cpu.grad)).toBeLessThan(1e-3);
      console.info(`FUNGI ${objective}: WebGPU vs CPU relative error ${relErr(grad, cpu.grad)}`);
      const ref = fungiTensor(`${objective}.grad`);
      expect(relErr(grad, ref.subarray(0, grad.length))).toBeLessThan(1e-3);
      expect(gpu.cpuNodes.map((n) => `${n.name} (${n.op})`)).toEqual([]);
    },
    180_000,
  );
});
