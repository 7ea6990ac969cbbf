/**
 * The query side of ShareLock (issue 29): texts → the LLM's features (cached per model and text) → the head's
 * language projector → normalised embeddings in the vision space, where the images are their normalised CLS
 * features (the vision projector has 0 layers). Retrieval ranks images by cosine with a text's embedding;
 * zero-shot classification compares each image with class prototypes: a class name put in several prompt templates,
 * each embedded, averaged and normalised again (CLIP's prompt ensembling; ShareLock evaluates with one template,
 * "A photo of a {class_name}", which comes first here).
 */
import { FlaneurError } from '../api/errors.js';
import { DEFAULT_RUNTIME, ModelSession, ort, type RuntimeSettings } from '../runtime/session.js';
import { cachedTextFeatures, type TextFeatureCache } from './feature-cache.js';
import type { LlamaEncoder } from './llama.js';
import { buildTextProjector, SHARELOCK_LOGIT_SCALE, type ShareLockWeights } from './sharelock.js';

/**
 * Prompt templates for class names (`{}` is the name): ShareLock's own (precompute_image_features_hf.py), then the
 * seven CLIP found best as an ensemble on ImageNet (openai/CLIP, notebooks/Prompt_Engineering_for_ImageNet).
 */
export const ZERO_SHOT_TEMPLATES: readonly string[] = [
  'A photo of a {}',
  'itap of a {}.',
  'a bad photo of the {}.',
  'a origami {}.',
  'a photo of the large {}.',
  'a {} in a video game.',
  'art of the {}.',
  'a photo of the small {}.',
];

/** Text features projected per run of the projector (bounds its activations: rows × hidden × 4 bytes). */
const PROJECT_CHUNK = 256;

export interface TextEmbedderParts {
  /** The language model (features of texts). */
  encoder: Pick<LlamaEncoder, 'encodeTexts'>;
  /** Its width: the head's text side must match it. */
  textDim: number;
  /** Where features are kept per (model, text), and the model's key in it (feature-cache.ts `textModelKey`). */
  cache: TextFeatureCache;
  modelKey: string;
  head: ShareLockWeights;
}

/** Texts to embeddings with one language model and one ShareLock head; the projector's session is kept warm. */
export class ShareLockTextEmbedder {
  private constructor(
    private readonly parts: TextEmbedderParts,
    private readonly projector: ModelSession,
  ) {}

  static async create(parts: TextEmbedderParts, runtime: RuntimeSettings = DEFAULT_RUNTIME) {
    const c = parts.head.config;
    if (c.textDim !== parts.textDim)
      throw new FlaneurError(
        'INVALID_ARGUMENT',
        `This ShareLock head reads text features of width ${c.textDim}, but the language model gives ${parts.textDim}: it was trained with another language model.`,
      );
    const projector = await ModelSession.create(buildTextProjector(c, parts.head.tensors), runtime);
    return new ShareLockTextEmbedder(parts, projector);
  }

  /** The embedding width (the vision features'). */
  get dim(): number {
    return this.parts.head.config.visionDim;
  }

  /** Text features [n][textDim] → normalised embeddings [n, dim], row-major. */
  async project(features: readonly Float32Array[]): Promise<Float32Array> {
    const { textDim } = this.parts.head.config;
    const out = new Float32Array(features.length * this.dim);
    for (let at = 0; at < features.length; at += PROJECT_CHUNK) {
      const part = features.slice(at, at + PROJECT_CHUNK);
      const x = new Float32Array(part.length * textDim);
      part.forEach((f, i) => {
        if (f.length !== textDim) throw new Error(`a text feature of ${f.length} values for a head of ${textDim}`);
        x.set(f, i * textDim);
      });
      const res = await this.projector.run({ text: new ort.Tensor('float32', x, [part.length, textDim]) });
      out.set((res.embedding as ort.Tensor).data as Float32Array, at * this.dim);
    }
    return out;
  }

  /** Texts → normalised embeddings [n, dim]; `computed`: how many texts the language model encoded now. */
  async embed(
    texts: readonly string[],
    onProgress?: (done: number, total: number) => void,
  ): Promise<{ embeddings: Float32Array; computed: number }> {
    const { encoder, cache, modelKey } = this.parts;
    const { features, computed } = await cachedTextFeatures(encoder, cache, modelKey, texts, {
      ...(onProgress ? { onProgress } : {}),
    });
    return { embeddings: await this.project(features), computed };
  }

  async release(): Promise<void> {
    await this.projector.release();
  }
}

/** Each class name in each template (`{}` replaced), class by class. */
export function promptsFor(classes: readonly string[], templates: readonly string[] = ZERO_SHOT_TEMPLATES): string[] {
  if (templates.length === 0 || templates.some((t) => !t.includes('{}')))
    throw new FlaneurError('INVALID_ARGUMENT', 'Every prompt template needs {} where the class name goes.');
  return classes.flatMap((c) => templates.map((t) => t.replaceAll('{}', c)));
}

/**
 * Class prototypes [classes, dim]: the normalised mean of each class's template embeddings (`embeddings` as
 * `promptsFor` orders them: `perClass` rows per class, each normalised).
 */
export function classPrototypes(embeddings: Float32Array, dim: number, perClass: number): Float32Array {
  const classes = embeddings.length / (dim * perClass);
  const out = new Float32Array(classes * dim);
  for (let c = 0; c < classes; c++) {
    const mean = new Float64Array(dim);
    for (let t = 0; t < perClass; t++) {
      const at = (c * perClass + t) * dim;
      for (let d = 0; d < dim; d++) mean[d] = (mean[d] as number) + (embeddings[at + d] as number);
    }
    let norm = 0;
    for (const v of mean) norm += v * v;
    const inv = 1 / Math.sqrt(Math.max(norm, 1e-24));
    for (let d = 0; d < dim; d++) out[c * dim + d] = (mean[d] as number) * inv;
  }
  return out;
}

export interface ZeroShotVotes {
  predicted: Int32Array;
  /** The winner's probability: softmax over classes of the cosines times ShareLock's logit scale. */
  confidence: Float32Array;
}

/** Per image, the class whose prototype is most similar; `scores` [classes, n] row-major (prototypes × images). */
export function zeroShotPredict(scores: Float32Array, classes: number): ZeroShotVotes {
  const n = scores.length / classes;
  const predicted = new Int32Array(n);
  const confidence = new Float32Array(n);
  for (let i = 0; i < n; i++) {
    let best = 0;
    for (let c = 1; c < classes; c++) if ((scores[c * n + i] as number) > (scores[best * n + i] as number)) best = c;
    const top = scores[best * n + i] as number;
    let z = 0;
    for (let c = 0; c < classes; c++) z += Math.exp(SHARELOCK_LOGIT_SCALE * ((scores[c * n + i] as number) - top));
    predicted[i] = best;
    confidence[i] = 1 / z;
  }
  return { predicted, confidence };
}
