import { describe, expect, it } from 'vitest';
import { GraphBuilder } from '../../../native/graph/builder.js';
import { toOnnx } from '../../../native/graph/onnx.js';
import {
  autoSkipReason,
  type ProviderStatus,
  probeProviders,
  providerOrder,
} from '../../../native/runtime/providers.js';
import { ModelSession, ort } from '../../../native/runtime/session.js';

function tiny(): Uint8Array {
  const b = new GraphBuilder('t');
  const x = b.input('x', 'float32', [3]);
  b.output(b.mul(x, b.constFloat(2)), 'y');
  return toOnnx(b.build());
}

const ADAPTER = {
  vendor: 'nvidia',
  architecture: 'hopper',
  device: '',
  description: 'NVIDIA H200',
  software: false,
  maxBufferSize: 2 ** 32,
  maxStorageBufferBindingSize: 2 ** 31,
  shaderF16: true,
};

const status = (
  name: ProviderStatus['name'],
  available: boolean,
  adapter: ProviderStatus['adapter'] = name === 'webgpu' ? ADAPTER : null,
): ProviderStatus => ({
  name,
  available,
  reason: available ? null : 'not here',
  bundled: true,
  adapter,
  log: [],
});

describe('execution providers', () => {
  it('probes every provider of the preference list on this machine and finds the CPU one', async () => {
    const list = await probeProviders();
    expect(list.map((p) => p.name)).toEqual(['cuda', 'dml', 'coreml', 'webgpu', 'cpu']);
    const cpu = list.find((p) => p.name === 'cpu');
    expect(cpu).toMatchObject({ available: true, reason: null });
    for (const p of list.filter((s) => !s.available)) expect(p.reason).toBeTruthy();
  });

  it('orders providers by preference, keeping only those that load, with cpu last', () => {
    const statuses = [
      status('cuda', true),
      status('dml', false),
      status('coreml', false),
      status('webgpu', true),
      status('cpu', true),
    ];
    expect(providerOrder(statuses, 'auto')).toEqual(['cuda', 'webgpu', 'cpu']);
    expect(providerOrder(statuses, 'webgpu')).toEqual(['webgpu', 'cpu']);
    expect(providerOrder(statuses, 'cpu')).toEqual(['cpu']);
  });

  it('never picks a software or unidentified WebGPU adapter automatically, but uses it when forced', () => {
    const software = { ...ADAPTER, vendor: 'google', architecture: 'swiftshader', software: true };
    for (const adapter of [software, null]) {
      const webgpu = status('webgpu', true, adapter);
      const statuses = [
        status('cuda', false),
        status('dml', false),
        status('coreml', false),
        webgpu,
        status('cpu', true),
      ];
      expect(providerOrder(statuses, 'auto')).toEqual(['cpu']);
      expect(providerOrder(statuses, 'webgpu')).toEqual(['webgpu', 'cpu']);
      expect(autoSkipReason(webgpu)).toMatch(adapter ? /software adapter/ : /could not be identified/);
    }
    expect(autoSkipReason(status('webgpu', true))).toBeNull();
  });

  it("probes the WebGPU adapter in a child process and keeps Dawn's messages out of this process", async () => {
    const webgpu = (await probeProviders()).find((p) => p.name === 'webgpu');
    expect(webgpu?.log).toBeInstanceOf(Array);
    if (!webgpu?.available) {
      expect(webgpu?.reason).toBeTruthy();
      return;
    }
    // Where the provider runs, the adapter is named with its limits (SwiftShader on a machine without a GPU).
    expect(webgpu.adapter?.description).toBeTruthy();
    expect(webgpu.adapter?.maxBufferSize).toBeGreaterThan(2 ** 20);
    expect(webgpu.adapter?.maxStorageBufferBindingSize).toBeGreaterThan(2 ** 20);
    if (/swiftshader/i.test(webgpu.adapter?.architecture ?? '')) expect(webgpu.adapter?.software).toBe(true);
  });

  it('falls back to the next provider when the preferred one cannot load, and records why', async () => {
    // A real fallback on this machine: the CUDA provider is not installed here.
    const s = await ModelSession.create(tiny(), { provider: 'cuda', threads: 1 });
    expect(s.info.provider).toBe('cpu');
    expect(s.info.fallbacks[0]?.provider).toBe('cuda');
    expect(s.info.fallbacks[0]?.reason).toMatch(/load|shared library|backend/i);
    const out = await s.run({ x: new ort.Tensor('float32', Float32Array.from([1, 2, 3]), [3]) });
    expect(Array.from(out.y?.data as Float32Array)).toEqual([2, 4, 6]);
    await s.release();
    await expect(s.run({})).rejects.toThrow(/released/);
  });

  it('uses the first provider in order that accepts the model', async () => {
    const statuses = [
      status('cuda', true),
      status('dml', false),
      status('coreml', false),
      status('webgpu', false),
      status('cpu', true),
    ];
    const tried: string[] = [];
    const s = await ModelSession.create(
      tiny(),
      { provider: 'auto', threads: 1 },
      {
        statuses,
        factory: async (model, options) => {
          const name = String(options.executionProviders?.[0]);
          tried.push(name);
          // What ONNX Runtime does on a machine whose GPU runs out of memory while loading the model.
          if (name === 'cuda') throw new Error('CUDA failure 2: out of memory');
          return ort.InferenceSession.create(model as Uint8Array, options);
        },
      },
    );
    expect(tried).toEqual(['cuda', 'cpu']);
    expect(s.info).toMatchObject({
      provider: 'cpu',
      fallbacks: [{ provider: 'cuda', reason: 'CUDA failure 2: out of memory' }],
    });
    await s.release();
  });

  it('asks ONNX Runtime for threads that sleep instead of spinning when told spinning: false, and runs', async () => {
    const seen: unknown[] = [];
    const make = (spinning?: boolean) =>
      ModelSession.create(
        tiny(),
        { provider: 'cpu', threads: 2 },
        {
          statuses: [status('cpu', true)],
          spinning,
          factory: async (model, options) => {
            seen.push(options.extra);
            return ort.InferenceSession.create(model as Uint8Array, options);
          },
        },
      );
    for (const spinning of [false, undefined]) {
      const s = await make(spinning);
      const y = await s.run({ x: new ort.Tensor('float32', Float32Array.of(1, 2, 3), [3]) });
      expect([...((y.y as ort.Tensor).data as Float32Array)]).toEqual([2, 4, 6]);
      await s.release();
    }
    expect(seen).toEqual([{ session: { intra_op: { allow_spinning: '0' } } }, undefined]);
  });
});
