/**
 * An inference ONNX model of an imported ViT for one input size: parameters become initializers (the transposes
 * of Linear weights are folded by ONNX Runtime at session creation), outputs are chosen by the caller.
 */
import { GraphBuilder } from '../graph/builder.js';
import { toOnnx } from '../graph/onnx.js';
import { buildDinoHead, type DinoHeadConfig, dinoHeadParamShapes } from './dino-head.js';
import type { ImportedViT } from './import-vit.js';
import { buildViT, type ViTOutputsWanted, vitParamShapes } from './vit.js';

export interface ViTOnnxOptions {
  height: number;
  width: number;
  outputs: ViTOutputsWanted;
  /** Name of the batch dimension (symbolic), or a fixed batch size. */
  batch?: number | string;
  /**
   * Parameters as graph inputs named `w/<name>` instead of initializers (only shapes are read from `weights`,
   * which may be empty): one session serves weights that change, e.g. a teacher during training.
   */
  weightsAsInputs?: boolean;
  /**
   * Also a DINO head on the CLS, output `logits` (with `weightsAsInputs`: its parameters are inputs `w/head.*`):
   * a Dora teacher's logits and attention from one pass.
   */
  head?: DinoHeadConfig;
  /**
   * ONNX Runtime's fused kernels (com.microsoft Attention / MultiHeadAttention) where no attention map, query
   * or key is an output: faster on its CPU provider, equal within float rounding. For the app's own sessions; off by
   * default, so an ONNX file written for users (a trained encoder's encoder.onnx) stays a plain graph any runtime
   * reads.
   */
  fused?: boolean;
  /**
   * 'float16': the `patches` output cast to float16 in the graph (Cast rounds to nearest even, the bits
   * models/safetensors.ts `f32ToF16` gives): what feature extraction stores, without a conversion on the host.
   */
  patchesType?: 'float32' | 'float16';
}

export function buildViTOnnx(
  model: Pick<ImportedViT, 'config'> & Partial<Pick<ImportedViT, 'weights'>>,
  options: ViTOnnxOptions,
): Uint8Array {
  const { config } = model;
  const b = new GraphBuilder('vit');
  const shapes = new Map([...vitParamShapes(config), ...(options.head ? dinoHeadParamShapes(options.head) : [])]);
  const params = new Map<string, ReturnType<typeof b.initializer>>();
  const param = (name: string) => {
    let v = params.get(name);
    if (!v) {
      const shape = shapes.get(name);
      if (!shape) throw new Error(`parameter ${name} is not part of the architecture`);
      if (options.weightsAsInputs) v = b.input(`w/${name}`, 'float32', shape);
      else {
        const data = model.weights?.get(name);
        if (!data) throw new Error(`parameter ${name} is missing`);
        v = b.initializer(name, data, shape);
      }
      params.set(name, v);
    }
    return v;
  };
  const pixels = b.input('pixels', 'float32', [options.batch ?? 'batch', 3, options.height, options.width]);
  const want = options.head ? { ...options.outputs, cls: true } : options.outputs;
  const out = buildViT(b, config, param, pixels, want, 'conv', undefined, undefined, options.fused ?? false);
  if (options.head && out.cls) b.output(buildDinoHead(b, options.head, param, out.cls), 'logits');
  if (out.cls && options.outputs.cls) b.output(out.cls, 'cls');
  if (out.patches)
    b.output(options.patchesType === 'float16' ? b.cast(out.patches, 'float16') : out.patches, 'patches');
  if (out.q) b.output(out.q, 'q');
  if (out.k) b.output(out.k, 'k');
  if (out.attention) b.output(out.attention, 'attention');
  for (const [i, v] of out.blocks) b.output(v, `block${i}`);
  return toOnnx(b.build());
}
