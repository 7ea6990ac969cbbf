/**
 * `npm run bench -- gpu [--quick | --full]`: onnxruntime's WebGPU provider against its CPU provider on the same
 * machine, in the same run (bench/gpu-worker.ts): ViT-S/16 inference at batch 16, a DINO ViT-Ti/16 step at batch
 * 32, a Dora ViT-S/16 step, host<->device bytes per training step, CPU-fallback nodes.
 *
 * The adapter: a hardware one where the machine has a GPU driver (Vulkan / D3D12 / Metal); otherwise the software
 * Vulkan the tests use (tests/helpers/software-vulkan.ts: SwiftShader). On a software adapter the run is quick by
 * default — small inputs (64 px instead of 224, a Dora clip of 8 frames instead of 64), one timed repetition — so it
 * finishes in minutes on two cores; its speed means nothing, its bytes and fallback counts do. `--full` forces the
 * real sizes, `--quick` the small ones on any adapter. The JSON is also written under bench/results/.
 */
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { probeProviders } from '../native/runtime/providers.js';
import { findSoftwareVulkan, softwareVulkanEnv } from '../tests/helpers/software-vulkan.js';
import type { GpuBenchSizes } from './gpu-worker.js';
import { BENCH_HEAD } from './step-common.js';

const ROOT = path.resolve(import.meta.dirname, '..');

const FULL: GpuBenchSizes = {
  vitPreset: 'vit_s16',
  vitInput: 224,
  dinoDepth: 12,
  dinoInput: 224,
  head: BENCH_HEAD,
  doraPreset: 'vit_s16',
  doraDepth: 12,
  doraInput: 224,
  doraFrames: 64,
  doraObjects: 3,
  repeats: 3,
};
/**
 * A software adapter runs ONNX Runtime's shaders on the CPU at well under 1 GFLOP/s (ViT-S/16 at 64 px, batch 16:
 * 0.1 img/s here, the CPU provider 39 img/s): the quick sizes keep each graph to a few GFLOP.
 */
const QUICK: GpuBenchSizes = {
  vitPreset: 'vit_ti16',
  vitInput: 32,
  dinoDepth: 4,
  dinoInput: 32,
  head: { inDim: 192, hiddenDim: 256, bottleneckDim: 64, outDim: 1024, layers: 3 },
  doraPreset: 'vit_ti16',
  doraDepth: 4,
  doraInput: 64,
  doraFrames: 4,
  doraObjects: 3,
  repeats: 1,
};

export async function benchGpu(args: string[]): Promise<Record<string, unknown>> {
  // A hardware adapter with this process's environment? Else the software Vulkan, given to the worker at its start
  // (the Vulkan loader is found through LD_LIBRARY_PATH, read only when a process starts).
  const own = (await probeProviders()).find((p) => p.name === 'webgpu');
  let env: NodeJS.ProcessEnv = process.env;
  let software = own?.adapter?.software ?? true;
  if (!own?.available || !own.adapter || own.adapter.software) {
    const v = findSoftwareVulkan();
    if (v && !process.env.VK_ICD_FILENAMES) {
      env = { ...process.env, ...softwareVulkanEnv(v) };
      console.error(`gpu: no hardware WebGPU adapter here; using the software Vulkan from ${v.source} (${v.icd})`);
    } else if (!own?.available) {
      throw new Error(
        `The gpu benchmark needs a WebGPU adapter and none was found (${own?.reason ?? 'no probe'}); run npm ci for SwiftShader or set FLANEUR_VK_ICD.`,
      );
    }
    software = true;
  }
  const mode = args.includes('--full') ? 'full' : args.includes('--quick') || software ? 'quick' : 'full';
  const sizes = mode === 'full' ? FULL : QUICK;
  if (mode === 'quick')
    console.error(
      `gpu: QUICK run (software adapter or --quick): small models and inputs (see "sizes" in the result: ViT-Ti/16 at ${sizes.vitInput} px for inference, ${sizes.dinoDepth}-block ViT-Ti/16 with a small head for the steps, a Dora clip of ${sizes.doraFrames} frames), ${sizes.repeats} timed repetition; the keys keep their full-size names. --full for the real sizes.`,
    );
  const out = execFileSync(
    process.execPath,
    ['--import', 'tsx', path.join(ROOT, 'bench', 'gpu-worker.ts'), JSON.stringify(sizes)],
    {
      cwd: ROOT,
      env,
      encoding: 'utf8',
      stdio: ['ignore', 'pipe', 'inherit'],
      maxBuffer: 64 * 2 ** 20,
    },
  );
  const worker = JSON.parse(out.trim().split('\n').pop() as string) as Record<string, unknown>;
  if (worker.error) throw new Error(String(worker.error));
  const result = {
    ...worker,
    mode,
    sizes: {
      vit: `${sizes.vitPreset}, batch 16, ${sizes.vitInput} px`,
      dino: `vit_ti16 with ${sizes.dinoDepth} blocks + head ${sizes.head.hiddenDim}-${sizes.head.bottleneckDim}-${sizes.head.outDim}, batch 32 (2 global crops of 16), ${sizes.dinoInput} px`,
      dora: `${sizes.doraPreset} with ${sizes.doraDepth} blocks + head ${sizes.head.hiddenDim}-${sizes.head.bottleneckDim}-${sizes.head.outDim}, ${sizes.doraFrames} frames x ${sizes.doraObjects} objects, ${sizes.doraInput} px`,
    },
    note:
      mode === 'quick'
        ? 'quick run: small models and inputs (see sizes), not the sizes the keys name; on a software adapter the speed of WebGPU means nothing'
        : 'full sizes',
  };
  const dir = path.join(ROOT, 'bench', 'results');
  fs.mkdirSync(dir, { recursive: true });
  const slug = software ? 'software' : 'hardware';
  const file = path.join(dir, `gpu-${slug}-${mode}.json`);
  fs.writeFileSync(file, `${JSON.stringify({ date: new Date().toISOString(), ...result }, null, 2)}\n`);
  console.error(`gpu: written to ${path.relative(ROOT, file)}`);
  return result;
}
