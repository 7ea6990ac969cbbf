/**
 * The WebGPU adapter, probed in a child process. onnxruntime-node's WebGPU provider (Dawn) says nothing about the
 * adapter it picks, so the child asks Dawn itself (the `webgpu` package: Dawn's Node binding, same
 * high-performance preference as the provider) for the adapter's vendor, architecture, description, whether it is
 * a software (CPU) adapter and its buffer limits, and then runs a one-node session on onnxruntime's WebGPU provider.
 * Both Dawns print start-up noise on stderr (XDG_RUNTIME_DIR, "Couldn't load Vulkan", ...): in a child that noise
 * is kept as the probe's log for the Device view instead of reaching the terminal of every CLI call.
 */
import { spawn } from 'node:child_process';
import { createRequire } from 'node:module';
import { pathToFileURL } from 'node:url';

export interface WebGpuAdapter {
  vendor: string;
  architecture: string;
  device: string;
  description: string;
  /** A software (CPU) adapter: SwiftShader, llvmpipe/lavapipe, WARP. `auto` never picks one. */
  software: boolean;
  maxBufferSize: number;
  maxStorageBufferBindingSize: number;
  /** Half-precision shaders (the 'shader-f16' feature): without it f16 tensors cannot be cast on the GPU. */
  shaderF16: boolean;
}

export interface WebGpuProbe {
  /** The adapter Dawn picks, or null when none can be had (reason in `adapterError`). */
  adapter: WebGpuAdapter | null;
  adapterError: string | null;
  /** Whether onnxruntime's WebGPU provider ran a one-node graph, and why not. */
  runtime: { ok: boolean; reason: string | null };
  /** Dawn's and Vulkan's messages on stderr during the probe, one line each. */
  log: string[];
}

const SOFTWARE = /swiftshader|llvmpipe|lavapipe|softpipe|\bwarp\b|basic render/i;

/** Whether an adapter's identity names a software rasteriser (Dawn also flags them as fallback adapters). */
export function isSoftwareAdapter(info: {
  vendor: string;
  architecture: string;
  device: string;
  description: string;
  isFallbackAdapter?: boolean;
}): boolean {
  return Boolean(info.isFallbackAdapter) || SOFTWARE.test(`${info.architecture} ${info.device} ${info.description}`);
}

// Runs in the child (plain ESM, `node -e`). argv: webgpu's entry URL, onnxruntime-node's entry path, the model.
const CHILD = `
import { createRequire } from 'node:module';
const [webgpuUrl, ortPath, modelB64] = process.argv.slice(1);
const out = { adapter: null, adapterError: null, runtime: { ok: false, reason: null } };
try {
  const { create } = await import(webgpuUrl);
  const gpu = create([]);
  const a = await gpu.requestAdapter({ powerPreference: 'high-performance' });
  if (!a) out.adapterError = 'Dawn found no WebGPU adapter (no Vulkan, D3D12 or Metal driver it can use).';
  else {
    const i = a.info;
    out.adapter = {
      vendor: i.vendor, architecture: i.architecture, device: i.device, description: i.description,
      isFallbackAdapter: Boolean(i.isFallbackAdapter),
      maxBufferSize: Number(a.limits.maxBufferSize),
      maxStorageBufferBindingSize: Number(a.limits.maxStorageBufferBindingSize),
      shaderF16: a.features.has('shader-f16'),
    };
  }
} catch (e) { out.adapterError = String(e && e.message || e); }
try {
  const ort = createRequire(import.meta.url)(ortPath);
  ort.env.logLevel = 'fatal';
  const s = await ort.InferenceSession.create(Buffer.from(modelB64, 'base64'), { executionProviders: ['webgpu'], logSeverityLevel: 4 });
  const r = await s.run({ x: new ort.Tensor('float32', Float32Array.from([1, 2]), [2]) });
  const y = r.y.data;
  if (y[0] !== 2 || y[1] !== 4) throw new Error('wrong result from a probe session');
  await s.release();
  out.runtime.ok = true;
} catch (e) { out.runtime.reason = String(e && e.message || e); }
process.stdout.write(JSON.stringify(out));
process.exit(0);
`;

const TIMEOUT_MS = 60_000;

function oneLine(message: string): string {
  const line = message.split('\n').find((l) => l.trim()) ?? message;
  return line.replace(/\s+/g, ' ').trim().slice(0, 300);
}

/** Probes the WebGPU adapter and provider in a child process; `model` is a one-node graph y = x + x over [2]. */
export function probeWebGpu(model: Uint8Array): Promise<WebGpuProbe> {
  const require = createRequire(import.meta.url);
  let webgpuUrl: string;
  try {
    webgpuUrl = pathToFileURL(require.resolve('webgpu')).href;
  } catch {
    webgpuUrl = 'webgpu'; // the child reports that it cannot be loaded
  }
  const ortPath = require.resolve('onnxruntime-node');
  return new Promise((resolve) => {
    // Inside Electron's utility process execPath is Electron: run it as plain Node.
    const child = spawn(
      process.execPath,
      ['--input-type=module', '-e', CHILD, webgpuUrl, ortPath, Buffer.from(model).toString('base64')],
      { env: { ...process.env, ELECTRON_RUN_AS_NODE: '1' }, stdio: ['ignore', 'pipe', 'pipe'] },
    );
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d: Buffer) => {
      stdout += d.toString();
    });
    child.stderr.on('data', (d: Buffer) => {
      if (stderr.length < 64_000) stderr += d.toString();
    });
    const timer = setTimeout(() => child.kill('SIGKILL'), TIMEOUT_MS);
    let done = false;
    const finish = (failure: string | null) => {
      if (done) return;
      done = true;
      clearTimeout(timer);
      const log = stderr
        .split('\n')
        .map((l) => l.trimEnd())
        .filter((l) => l.trim());
      if (failure) {
        resolve({ adapter: null, adapterError: failure, runtime: { ok: false, reason: failure }, log });
        return;
      }
      try {
        const r = JSON.parse(stdout) as {
          adapter: (Omit<WebGpuAdapter, 'software'> & { isFallbackAdapter: boolean }) | null;
          adapterError: string | null;
          runtime: { ok: boolean; reason: string | null };
        };
        const adapter = r.adapter
          ? {
              vendor: r.adapter.vendor,
              architecture: r.adapter.architecture,
              device: r.adapter.device,
              description: r.adapter.description,
              software: isSoftwareAdapter(r.adapter),
              maxBufferSize: r.adapter.maxBufferSize,
              maxStorageBufferBindingSize: r.adapter.maxStorageBufferBindingSize,
              shaderF16: r.adapter.shaderF16,
            }
          : null;
        resolve({
          adapter,
          adapterError: r.adapterError ? oneLine(r.adapterError) : null,
          runtime: { ok: r.runtime.ok, reason: r.runtime.reason ? oneLine(r.runtime.reason) : null },
          log,
        });
      } catch {
        const why = `the WebGPU probe process ended without an answer${log.length ? `: ${oneLine(log.join(' '))}` : ''}`;
        resolve({ adapter: null, adapterError: why, runtime: { ok: false, reason: why }, log });
      }
    };
    child.on('error', (err) => finish(`the WebGPU probe process could not start: ${err.message}`));
    child.on('close', (code, signal) => {
      if (signal === 'SIGKILL' && !stdout) finish(`the WebGPU probe did not answer within ${TIMEOUT_MS / 1000} s`);
      else if (!stdout) finish(`the WebGPU probe process exited with ${signal ?? `code ${code}`}`);
      else finish(null);
    });
  });
}

/** One line for a person: "NVIDIA hopper — NVIDIA H200 (hardware; buffers up to 4 GiB, bindings up to 2 GiB)". */
export function adapterLine(a: WebGpuAdapter): string {
  const gib = (n: number) => (n >= 2 ** 30 ? `${+(n / 2 ** 30).toFixed(1)} GiB` : `${Math.round(n / 2 ** 20)} MiB`);
  const name = [a.vendor, a.architecture].filter(Boolean).join(' ') || 'unknown vendor';
  const desc = a.description || a.device;
  return `${name}${desc ? ` — ${desc}` : ''} (${a.software ? 'software adapter, on the CPU' : 'hardware'}; buffers up to ${gib(a.maxBufferSize)}, storage bindings up to ${gib(a.maxStorageBufferBindingSize)}${a.shaderF16 ? '' : '; no f16 shaders'})`;
}
