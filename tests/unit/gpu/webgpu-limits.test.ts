/**
 * Graphs whose tensors exceed a WebGPU adapter's buffer limit (min of maxBufferSize and
 * maxStorageBufferBindingSize) are refused before they run, with a sentence naming the tensor and the limit: the
 * sizes come from the model's metadata (toOnnx writes every tensor's shape; symbols are bound from the feeds).
 */
import { describe, expect, it } from 'vitest';
import { GraphBuilder } from '../../../native/graph/builder.js';
import { toOnnx } from '../../../native/graph/onnx.js';
import { readOnnxMetadata } from '../../../native/graph/protobuf.js';
import { largestTensor, TENSOR_SIZES_KEY, type TensorSizeTable } from '../../../native/graph/tensor-sizes.js';
import { ortSessionFactory, type ProviderStatus, type SessionFactory } from '../../../native/runtime/providers.js';
import {
  type GpuFailure,
  ModelSession,
  onSessionCreated,
  ort,
  type SessionInfo,
} from '../../../native/runtime/session.js';
import { describeWebGpu, WEBGPU, webgpuStatus } from '../../helpers/webgpu.js';

/** Outer product [n,1] x [1,n]: an n*n*4-byte intermediate for 2n*4 bytes of input. */
function outer(batch: string | number = 'n'): Uint8Array {
  const b = new GraphBuilder('outer');
  const x = b.input('x', 'float32', [batch, 1]);
  const y = b.input('y', 'float32', [1, batch]);
  b.output(b.reduceSum(b.matmul(x, y, 'outer product'), [0, 1], false), 's');
  return toOnnx(b.build());
}

const feeds = (n: number) => ({
  x: new ort.Tensor('float32', new Float32Array(n).fill(1), [n, 1]),
  y: new ort.Tensor('float32', new Float32Array(n).fill(1), [1, n]),
});

describe('GPU buffer limits', () => {
  it('the model carries its tensor sizes; symbolic dimensions are bound from the feeds', () => {
    const b = new GraphBuilder('t');
    const x = b.input('pixels', 'float32', ['batch', 197, 384]);
    const flat = b.reshape(x, [-1, 384]);
    b.output(b.matmul(flat, b.constFloat(new Array(384 * 1536).fill(0), [384, 1536])), 'h');
    const table = JSON.parse(readOnnxMetadata(toOnnx(b.build())).get(TENSOR_SIZES_KEY) as string) as TensorSizeTable;
    expect(table.inputs.pixels).toEqual(['batch', 197, 384]);
    // [batch*197, 1536] f32 is the largest for any batch above 1.
    expect(largestTensor(table, { pixels: [64, 197, 384] })).toMatchObject({
      shape: [64 * 197, 1536],
      bytes: 64 * 197 * 1536 * 4,
    });
    // Without the input that binds the symbol, only fixed-size tensors count (the weight).
    expect(largestTensor(table, {})).toMatchObject({ shape: [384, 1536] });
  });

  it('refuses feeds over the adapter limit with a sentence, and runs those under it', async () => {
    // A WebGPU status with a 1 MiB limit whose "session" is the CPU provider: the refusal happens before any run.
    const statuses: ProviderStatus[] = [
      {
        name: 'webgpu',
        available: true,
        reason: null,
        bundled: true,
        log: [],
        adapter: {
          vendor: 'test',
          architecture: '',
          device: '',
          description: 'a 1 MiB test adapter',
          software: false,
          maxBufferSize: 2 ** 20,
          maxStorageBufferBindingSize: 2 ** 20,
          shaderF16: false,
        },
      },
    ];
    const factory: SessionFactory = (m, o) => ortSessionFactory(m, { ...o, executionProviders: ['cpu'] });
    const s = await ModelSession.create(
      outer(),
      { provider: 'webgpu', threads: 1 },
      { statuses, factory, cpuFallback: false },
    );
    expect(s.info.provider).toBe('webgpu');
    // 512 x 512 x 4 = 1 MiB: at the limit, allowed.
    expect((await s.run(feeds(512))).s?.data[0]).toBe(512 * 512);
    await expect(s.run(feeds(600))).rejects.toThrow(
      /needs a 1\.4 MiB tensor \(MatMul_0, \[600, 600\]\), more than a 1 MiB test adapter allows in one GPU buffer \(1 MiB\)\. Use a smaller batch/,
    );
    await s.release();
    // With the CPU fallback (the default), the refused run goes on on the CPU and the reason is told and kept.
    const told: GpuFailure[] = [];
    const seen: SessionInfo[] = [];
    const stop = onSessionCreated((info) => seen.push(info));
    const f = await ModelSession.create(
      outer(),
      { provider: 'webgpu', threads: 1, onGpuFailure: (x) => told.push(x) },
      { statuses, factory },
    );
    expect((await f.run(feeds(600))).s?.data[0]).toBe(600 * 600);
    expect(f.info.provider).toBe('cpu');
    expect(told).toEqual([{ provider: 'webgpu', reason: expect.stringMatching(/needs a 1\.4 MiB tensor/) }]);
    expect(f.info.lostGpu).toEqual(told[0]);
    // The Device view's listener hears of the session twice: made on the GPU, then gone on on the CPU.
    stop();
    expect(seen.map((i) => [i.provider, i.lostGpu?.provider])).toEqual([
      ['webgpu', undefined],
      ['cpu', 'webgpu'],
    ]);
    await f.release();
  });
});

describeWebGpu('GPU buffer limits on the WebGPU adapter', () => {
  it(`refuses a tensor over ${webgpuStatus.adapter?.description ?? 'the adapter'}'s limit before the GPU sees it`, async () => {
    const limit = Math.min(
      webgpuStatus.adapter?.maxBufferSize ?? 2 ** 30,
      webgpuStatus.adapter?.maxStorageBufferBindingSize ?? 2 ** 30,
    );
    const n = Math.ceil(Math.sqrt(limit / 4)) + 16;
    const s = await ModelSession.create(outer(), WEBGPU, { cpuFallback: false });
    expect(s.info.provider).toBe('webgpu');
    expect((await s.run(feeds(64))).s?.data[0]).toBe(64 * 64);
    await expect(s.run(feeds(n))).rejects.toThrow(/more than .* allows in one GPU buffer/);
    await s.release();
  }, 60_000);
});
