/**
 * Feature extractors kept warm between calls: one extractor per (model file, input size, resize policy), made with the runtime
 * settings of the moment and dropped when those change. Building a ViT graph and its session takes about a second,
 * so per-frame work (counting, segmenting a frame without stored features) must not pay it on every call.
 */
import { FlaneurError } from '../api/errors.js';
import type { ResizePolicy } from '../models/preprocess.js';
import type { RuntimeSettings } from '../runtime/session.js';
import type { Project } from '../store/project.js';
import { FeatureExtractor, loadRegisteredModel } from './extract.js';

/** Sessions kept at once (most recently used last); each holds a model's weights. */
const KEPT = 4;

export class ExtractorCache {
  private kept = new Map<string, Promise<FeatureExtractor>>();
  /** The runtime settings the kept extractors were made with. */
  private madeWith = '';

  /** `runtime`: the engine's provider and thread settings (Device view), read at each call. */
  constructor(private readonly runtime: () => RuntimeSettings) {}

  async get(
    project: Project,
    modelId: number,
    size: number,
    policy: ResizePolicy = 'aspect',
  ): Promise<FeatureExtractor> {
    const settings = this.runtime();
    const madeWith = JSON.stringify(settings);
    if (madeWith !== this.madeWith) {
      // The Device settings changed: the kept sessions run on the old provider or thread count.
      await this.release();
      this.madeWith = madeWith;
    }
    const row = project.models.get(modelId);
    if (!row) throw new FlaneurError('NOT_FOUND', `No model ${modelId} in this project.`, { field: 'modelId' });
    // By content: a model id can be reused after a removal.
    const key = `${row.sha256}:${size}:${policy}`;
    const hit = this.kept.get(key);
    if (hit) {
      this.kept.delete(key);
      this.kept.set(key, hit);
      return hit;
    }
    const { model } = loadRegisteredModel(project, modelId);
    if (size % model.config.patchSize)
      throw new FlaneurError(
        'INVALID_ARGUMENT',
        `Input size ${size} is not a multiple of the model's patch size ${model.config.patchSize}.`,
        { field: 'size' },
      );
    const made = FeatureExtractor.create(model, size, settings, policy);
    this.kept.set(key, made);
    made.catch(() => {
      if (this.kept.get(key) === made) this.kept.delete(key);
    });
    while (this.kept.size > KEPT) {
      const [oldest, ex] = this.kept.entries().next().value as [string, Promise<FeatureExtractor>];
      this.kept.delete(oldest);
      await (await ex).release();
    }
    return made;
  }

  /** The runtime settings of the moment (for sessions made beside the kept extractors). */
  settings(): RuntimeSettings {
    return this.runtime();
  }

  async release(): Promise<void> {
    const all = [...this.kept.values()];
    this.kept.clear();
    for (const ex of all) await (await ex.catch(() => null))?.release();
  }
}
