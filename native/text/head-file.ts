/**
 * A ShareLock head as a file of the project, and what it pairs with: the language model whose features it was
 * trained on and the vision encoder whose normalised CLS it was trained against. A head gives meaningless scores
 * with any other pair, so `checkHeadPairing` refuses them with a sentence.
 */
import path from 'node:path';
import { FlaneurError } from '../api/errors.js';
import type { HeadTextModel, HeadVisionModel } from '../api/text.js';
import type { WeightFile } from '../models/safetensors.js';
import { readShareLockWeights, type ShareLockWeights } from './sharelock.js';

/** Metadata keys of a head's .safetensors beside its configuration (sharelock.ts SHARELOCK_META_KEY). */
export const HEAD_META = {
  textModel: 'flaneur.sharelock.textModel',
  vision: 'flaneur.sharelock.vision',
  origin: 'flaneur.sharelock.origin',
} as const;

/** What a head expects and how it was made. */
export interface HeadProvenance {
  textModel: HeadTextModel;
  vision: HeadVisionModel;
  /** A sentence: trained here (data, steps) or imported (which checkpoint). */
  origin: string;
}

export interface ShareLockHead extends HeadProvenance {
  weights: ShareLockWeights;
}

/** The metadata a head's .safetensors carries (with its configuration, written by encodeShareLockWeights). */
export function headMetadata(p: HeadProvenance): Record<string, string> {
  return {
    [HEAD_META.textModel]: JSON.stringify(p.textModel),
    [HEAD_META.vision]: JSON.stringify(p.vision),
    [HEAD_META.origin]: p.origin,
  };
}

function notAHead(source: string, why: string): FlaneurError {
  return new FlaneurError(
    'INVALID_MODEL',
    `${source} is not a ShareLock head Flaneur can pair: ${why}. Import a head trained in Flaneur or an official ShareLock .ckpt.`,
  );
}

const isObj = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v);
const intOrNull = (v: unknown) => (v === null || (typeof v === 'number' && Number.isInteger(v)) ? v : undefined);
const strOrNull = (v: unknown) => (v === null || typeof v === 'string' ? v : undefined);

/** A head saved by Flaneur (.safetensors with its configuration and provenance in the metadata). */
export function readShareLockHead(file: WeightFile, source: string): ShareLockHead {
  const weights = readShareLockWeights(file, source);
  const parse = (key: string): unknown => {
    try {
      return JSON.parse(file.metadata[key] ?? '');
    } catch {
      throw notAHead(source, 'it does not say which language model and vision encoder it was trained with');
    }
  };
  const t = parse(HEAD_META.textModel);
  const v = parse(HEAD_META.vision);
  const a = isObj(v) ? v.architecture : undefined;
  if (
    !isObj(t) ||
    strOrNull(t.key) === undefined ||
    strOrNull(t.name) === undefined ||
    t.dim !== weights.config.textDim ||
    !isObj(v) ||
    intOrNull(v.modelId) === undefined ||
    strOrNull(v.sha256) === undefined ||
    strOrNull(v.name) === undefined ||
    !isObj(a) ||
    a.dim !== weights.config.visionDim ||
    intOrNull(a.patchSize) === undefined ||
    intOrNull(a.registers) === undefined ||
    !(a.family === null || a.family === 'dino' || a.family === 'dinov2' || a.family === 'dinov3')
  ) {
    throw notAHead(source, 'its record of the language model and vision encoder it was trained with is unreadable');
  }
  return {
    weights,
    textModel: { key: t.key as string | null, name: t.name as string | null, dim: t.dim as number },
    vision: {
      modelId: v.modelId as number | null,
      sha256: v.sha256 as string | null,
      name: v.name as string | null,
      architecture: {
        family: a.family as HeadVisionModel['architecture']['family'],
        patchSize: a.patchSize as number | null,
        dim: a.dim as number,
        registers: a.registers as number | null,
      },
    },
    origin: file.metadata[HEAD_META.origin] ?? 'origin not recorded',
  };
}

/** A language model as the pairing check sees it. */
export interface PairLlm {
  /** textModelKey of its file. */
  key: string;
  /** Names it goes by: the registered name, the file name, GGUF's general.name. */
  names: readonly string[];
  dim: number;
}

/** A registered vision model as the pairing check sees it. */
export interface PairVision {
  id: number;
  name: string;
  sha256: string;
  architecture: { family: string; patchSize: number; dim: number; registers: number };
}

/** Letters and digits only, lower case: "Meta-Llama-3-8B" and "Meta Llama 3 8B" alike. */
const squash = (s: string) => s.toLowerCase().replace(/[^a-z0-9]/g, '');

/**
 * Whether an LLM's names match a published one ("meta-llama/Meta-Llama-3-8B"): a name starting with the published
 * model's (a quantised GGUF "Meta-Llama-3-8B.Q4_K_M.gguf" does), but not its instruction-tuned sibling.
 */
export function llmNameMatches(published: string, names: readonly string[]): boolean {
  const want = squash(published.split('/').at(-1) ?? published);
  if (!want) return false;
  return names.some((n) => {
    const got = squash(path.basename(n));
    if (!got.startsWith(want)) return false;
    const rest = got.slice(want.length);
    return !/instruct|chat|it$/.test(rest) || /instruct|chat/.test(want);
  });
}

/** Refuses a head with a language model or vision encoder other than those it was trained with (a sentence). */
export function checkHeadPairing(
  headName: string,
  head: HeadProvenance,
  llm: PairLlm | null,
  vision: PairVision | null,
) {
  if (llm) {
    const t = head.textModel;
    const trained = t.name ?? 'another language model';
    const ok = llm.dim === t.dim && (t.key ? llm.key === t.key : t.name !== null && llmNameMatches(t.name, llm.names));
    if (!ok) {
      throw new FlaneurError(
        'INVALID_ARGUMENT',
        `The ShareLock head "${headName}" was trained on the features of ${trained} (width ${t.dim}); ${llm.names[0] ?? 'this language model'} (width ${llm.dim}) gives other features, so its scores would mean nothing. Choose the language model it was trained with, or train a head for this one.`,
        { field: 'textModel' },
      );
    }
  }
  if (vision) {
    const v = head.vision;
    const a = v.architecture;
    const want = v.name ?? `a ${a.family ?? 'vision'} encoder of width ${a.dim}`;
    const ok = v.sha256
      ? vision.sha256 === v.sha256
      : a.family !== null &&
        vision.architecture.family === a.family &&
        vision.architecture.dim === a.dim &&
        (a.patchSize === null || vision.architecture.patchSize === a.patchSize) &&
        (a.registers === null || vision.architecture.registers === a.registers);
    if (!ok) {
      throw new FlaneurError(
        'INVALID_ARGUMENT',
        `The ShareLock head "${headName}" was trained against the image features of ${want}; model #${vision.id} ${vision.name} (${vision.architecture.family}, width ${vision.architecture.dim}) places images elsewhere, so its scores would mean nothing. Use features of the model it was trained with, or train a head for this one.`,
        { field: 'modelId' },
      );
    }
  }
}

/** Widths of the vision encoders named in ShareLock's configs (sharelock/utils/misc.py feature_dimensions_vision). */
const OFFICIAL_VISION: Record<string, { family: 'dino' | 'dinov2' | null; patch: number | null; dim: number }> = {
  'clip-ViT-B+32': { family: null, patch: 32, dim: 512 },
  resnet50: { family: null, patch: null, dim: 2048 },
  resnet101: { family: null, patch: null, dim: 2048 },
  vit_b_16: { family: null, patch: 16, dim: 768 },
  vit_b_32: { family: null, patch: 32, dim: 768 },
  dino_vitb16: { family: 'dino', patch: 16, dim: 768 },
  dinov2_vits14: { family: 'dinov2', patch: 14, dim: 384 },
  dinov2_vitb14: { family: 'dinov2', patch: 14, dim: 768 },
  dinov2_vitl14: { family: 'dinov2', patch: 14, dim: 1024 },
  dinov2_vitg14: { family: 'dinov2', patch: 14, dim: 1536 },
};

/**
 * The vision encoder an official configuration names ("dinov2_vitl14_reg"), as an expectation: DINO / DINOv2 ones
 * by architecture (Flaneur runs them), others (CLIP, ResNet, torchvision ViT) with no family, so nothing pairs.
 */
export function officialVision(name: string, dim: number): HeadVisionModel {
  const reg = name.endsWith('_reg');
  const known = OFFICIAL_VISION[reg ? name.slice(0, -4) : name];
  return {
    modelId: null,
    sha256: null,
    name,
    architecture: {
      family: known?.family ?? null,
      patchSize: known?.patch ?? null,
      dim,
      registers: known?.family === 'dinov2' ? (reg ? 4 : 0) : known?.family === 'dino' ? 0 : null,
    },
  };
}
