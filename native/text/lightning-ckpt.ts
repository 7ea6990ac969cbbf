/**
 * The official ShareLock checkpoints (FunAILab/ShareLock on Hugging Face: ShareLock-CC3M.ckpt, -CC12M.ckpt): PyTorch
 * Lightning .ckpt files. Besides `state_dict` they pickle the run's hyper-parameters as OmegaConf objects (DictConfig,
 * AnyNode, ContainerMetadata…) and the optimizer and callback states. They are read with the restricted unpickler
 * with `inertClasses`: those unknown classes become inert records that are never called (a REDUCE of any unknown
 * global — os.system — is still refused, and nothing in the file runs). The hyper-parameters say which language
 * model and vision encoder the head was trained with (config.model.language_encoder / vision_encoder).
 */
import path from 'node:path';
import { FlaneurError } from '../api/errors.js';
import { isInertObject, isTensor, isTuple, PickleDict, type PickleValue } from '../models/pickle.js';
import { readPytorchPickle } from '../models/pytorch.js';
import { modelFileSource } from '../models/safetensors.js';
import { officialVision, type ShareLockHead } from './head-file.js';
import { SHARELOCK_DEFAULTS, shareLockBufferShapes, shareLockConfig, shareLockParamShapes } from './sharelock.js';

/** A JSON-like value made of a pickle's data (hyper-parameters); OmegaConf nodes become their values. */
export type Plain = null | boolean | number | string | Plain[] | { [k: string]: Plain };

const MAX_DEPTH = 64;

/**
 * Plain data of a pickled value: dicts, lists, numbers, strings; an inert OmegaConf container becomes its content
 * (`_content`), a value node its value (`_val`), another inert object its state or items; tensors and anything
 * else become null. Bounded in depth (a crafted pickle may nest without end).
 */
export function plainData(v: PickleValue, depth = 0): Plain {
  if (depth > MAX_DEPTH) return null;
  if (v === null || typeof v === 'boolean' || typeof v === 'string') return v;
  if (typeof v === 'number') return Number.isFinite(v) ? v : null;
  if (typeof v === 'bigint') return Number(v);
  if (Array.isArray(v)) return v.map((x) => plainData(x, depth + 1));
  if (v instanceof PickleDict) {
    const out: { [k: string]: Plain } = {};
    for (const [k, x] of v)
      if (typeof k === 'string' || typeof k === 'number') out[String(k)] = plainData(x, depth + 1);
    return out;
  }
  if (isTuple(v)) return v.items.map((x) => plainData(x, depth + 1));
  if (isInertObject(v) || (typeof v === 'object' && (v as { kind?: string }).kind === 'object')) {
    const o = v as { state: PickleValue; items?: PickleDict; list?: PickleValue[] };
    if (o.state instanceof PickleDict) {
      if (o.state.has('_content')) return plainData(o.state.get('_content') as PickleValue, depth + 1);
      if (o.state.has('_val')) return plainData(o.state.get('_val') as PickleValue, depth + 1);
    }
    if (o.items) return plainData(o.items, depth + 1);
    if (o.list) return plainData(o.list, depth + 1);
    return plainData(o.state, depth + 1);
  }
  return null;
}

const isRecord = (v: Plain | undefined): v is { [k: string]: Plain } =>
  typeof v === 'object' && v !== null && !Array.isArray(v);

/** ShareLock's `model` section of the hyper-parameters (hyper_parameters.model, or nested one level deeper). */
function modelSection(hp: Plain): { [k: string]: Plain } | null {
  if (!isRecord(hp)) return null;
  if (isRecord(hp.model) && typeof hp.model.language_encoder === 'string') return hp.model;
  for (const v of Object.values(hp)) if (isRecord(v) && isRecord(v.model)) return modelSection(v);
  return null;
}

const P = 'language_projector.projection';

function refuse(source: string, why: string): FlaneurError {
  return new FlaneurError(
    'INVALID_MODEL',
    `${source} is not an official ShareLock checkpoint Flaneur can use: ${why}.`,
  );
}

/**
 * An official ShareLock Lightning checkpoint as a head: the language projector's parameters and BatchNorm
 * statistics (configuration from their shapes, checked against the hyper-parameters), and what it expects.
 */
export function readShareLockCheckpoint(file: string, source = path.basename(file)): ShareLockHead {
  const ck = readPytorchPickle(modelFileSource(file, source), source, { inertClasses: true });
  const root = ck.root;
  const sd = root instanceof PickleDict ? root.get('state_dict') : undefined;
  if (!(sd instanceof PickleDict)) throw refuse(source, 'it has no state_dict (a Lightning checkpoint has one)');
  const tensors = new Map<string, PickleValue>();
  for (const [k, v] of sd) if (typeof k === 'string' && isTensor(v)) tensors.set(k, v);
  const vision = [...tensors.keys()].filter((k) => k.startsWith('vision_projector.'));
  if (vision.length > 0)
    throw refuse(
      source,
      'its vision side has trained layers (Flaneur pairs heads whose vision side is the normalised CLS)',
    );
  // Linear layers at projection.0, .4, .8, …: the configuration from their shapes.
  const linears: number[][] = [];
  for (let i = 0; ; i += 4) {
    const t = tensors.get(`${P}.${i}.weight`);
    if (!t || !isTensor(t)) break;
    linears.push(t.shape);
  }
  const first = linears[0];
  const last = linears.at(-1);
  if (!first || !last || first.length !== 2 || last.length !== 2)
    throw refuse(source, `its state_dict has no ${P}.0.weight matrix`);
  const layers = linears.length;
  const textDim = first[1] as number;
  const visionDim = last[0] as number;
  const hidden = layers > 1 ? (first[0] as number) : SHARELOCK_DEFAULTS.hidden;
  const config = shareLockConfig(textDim, visionDim, { hidden, layers });

  const hp = plainData(root instanceof PickleDict ? (root.get('hyper_parameters') ?? null) : null);
  const model = modelSection(hp);
  const llmName = typeof model?.language_encoder === 'string' ? model.language_encoder : null;
  const visionName = typeof model?.vision_encoder === 'string' ? model.vision_encoder : null;
  if (!llmName || !visionName)
    throw refuse(
      source,
      'its hyper-parameters do not name the language model and vision encoder it was trained with (model.language_encoder, model.vision_encoder)',
    );
  const lp = isRecord(model?.language_projector) ? model.language_projector : null;
  const vp = isRecord(model?.vision_projector) ? model.vision_projector : null;
  if (lp && typeof lp.num_layers === 'number' && lp.num_layers !== layers)
    throw refuse(source, `its hyper-parameters say ${lp.num_layers} language layers but its state_dict has ${layers}`);
  if (vp && typeof vp.num_layers === 'number' && vp.num_layers !== 0)
    throw refuse(source, `its vision projector has ${vp.num_layers} layers (Flaneur pairs heads with 0)`);

  const out = new Map<string, Float32Array>();
  for (const [name, shape] of [...shareLockParamShapes(config), ...shareLockBufferShapes(config)]) {
    const t = tensors.get(name);
    if (!t || !isTensor(t) || t.shape.length !== shape.length || t.shape.some((d, i) => d !== shape[i]))
      throw refuse(source, `its state_dict lacks ${name} of shape [${shape.join(', ')}]`);
    const data = ck.float32(t, name);
    if (data.some((x) => !Number.isFinite(x))) throw refuse(source, `${name} holds values that are not finite`);
    out.set(name, data);
  }
  const step = root instanceof PickleDict ? root.get('global_step') : undefined;
  const version = root instanceof PickleDict ? root.get('pytorch-lightning_version') : undefined;
  return {
    weights: { config, tensors: out },
    textModel: { key: null, name: llmName, dim: textDim },
    vision: officialVision(visionName, visionDim),
    origin: `Imported from ${source}, an official ShareLock checkpoint (PyTorch Lightning${typeof version === 'string' ? ` ${version}` : ''}${typeof step === 'number' ? `, ${step} steps` : ''}) trained with ${llmName} and ${visionName}.`,
  };
}
