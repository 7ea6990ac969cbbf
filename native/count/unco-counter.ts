/**
 * Counting with a trained UnCo decoder (train-unco.ts): the trained counters are the finished `train.unco` jobs'
 * exported decoders (`export/decoder.safetensors`, its configuration and backbone in the metadata); a frame is
 * squashed to the collages' square input, its patch features from the frozen backbone, the exemplars' features
 * (the patches under each box) and the decoder's density map, whose sum / scaling is the count. With several boxes
 * and a one-shot decoder, the maps of each box are averaged; a reference-less decoder (shots 0) needs none.
 */
import path from 'node:path';
import { FlaneurError } from '../api/errors.js';
import type { FeatureExtractor, FrameFeatures } from '../features/extract.js';
import type { RgbLike } from '../models/preprocess.js';
import { readSafetensors } from '../models/safetensors.js';
import { ModelSession, ort, type RuntimeSettings } from '../runtime/session.js';
import type { Project } from '../store/project.js';
import type { Box } from './count.js';
import { boxFeature } from './unco-data.js';
import { buildUncoForward, type UncoConfig } from './unco-step.js';

export interface UncoCounterInfo {
  jobId: number;
  name: string;
  modelId: number;
  shots: number;
  steps: number;
  heldoutMae: number | null;
  heldoutMeanMae: number | null;
  /** The decoder file (absolute). */
  file: string;
}

const finite = (s: string | undefined) => (s !== undefined && Number.isFinite(Number(s)) ? Number(s) : null);

/** The trained counters of a project: its finished `train.unco` (and `train.uncoImport`) jobs whose decoder file is still there. */
export function listUncoCounters(project: Project): UncoCounterInfo[] {
  const out: UncoCounterInfo[] = [];
  // Trained here, or with torchrun and brought back (unco-export.ts).
  for (const job of project.jobs.list({
    states: ['done'],
    kinds: ['train.unco', 'train.uncoImport'],
    limit: 100_000,
  })) {
    const item = project.jobs.items(job.id, { limit: 10 }).items.find((i) => i.key === 'export');
    const r = item?.result as { decoder?: unknown; name?: unknown } | null;
    if (typeof r?.decoder !== 'string') continue;
    const file = path.join(project.dir, r.decoder);
    let meta: Record<string, string>;
    try {
      meta = readSafetensors(file).metadata;
    } catch {
      continue;
    }
    const config = JSON.parse(meta.unco_config ?? '{}') as Partial<UncoConfig>;
    out.push({
      jobId: job.id,
      name: typeof r.name === 'string' ? r.name : `UnCo counter (job ${job.id})`,
      modelId: Number(meta.backbone_model),
      shots: config.shots ?? 0,
      steps: Number(meta.steps ?? 0),
      heldoutMae: finite(meta.heldout_mae),
      heldoutMeanMae: finite(meta.heldout_mean_mae),
      file,
    });
  }
  return out;
}

/** A trained decoder ready to count: its forward graph on a session, its weights. */
export class UncoCounter {
  private constructor(
    readonly info: Pick<UncoCounterInfo, 'jobId' | 'name'>,
    readonly config: UncoConfig,
    private readonly session: ModelSession,
    private readonly weights: Map<string, ort.Tensor>,
    /** Side of the density map. */
    readonly side: number,
  ) {}

  /** A trained counter's decoder file. */
  static async load(info: UncoCounterInfo, runtime?: RuntimeSettings): Promise<UncoCounter> {
    const st = readSafetensors(info.file);
    const config = JSON.parse(st.metadata.unco_config ?? '{}') as Omit<UncoConfig, 'batch'>;
    const weights = new Map<string, Float32Array>();
    for (const name of st.tensors.keys()) weights.set(name, st.float32(name));
    return UncoCounter.create(info, config, weights, runtime);
  }

  /** A decoder from its configuration and weights (the benchmark counts with the state it trained). */
  static async create(
    info: Pick<UncoCounterInfo, 'jobId' | 'name'>,
    config: Omit<UncoConfig, 'batch'>,
    params: ReadonlyMap<string, Float32Array>,
    runtime?: RuntimeSettings,
  ): Promise<UncoCounter> {
    const fwd = buildUncoForward({ ...config, batch: 1 });
    const weights = new Map<string, ort.Tensor>();
    for (const [name, shape] of fwd.params) {
      const w = params.get(name);
      if (!w)
        throw new FlaneurError('INVALID_MODEL', `The counter of job ${info.jobId} has no ${name}: train it again.`);
      weights.set(`p/${name}`, new ort.Tensor('float32', w, shape));
    }
    const session = await ModelSession.create(fwd.onnx, runtime);
    return new UncoCounter(info, { ...config, batch: 1 }, session, weights, fwd.size);
  }

  /**
   * The exemplars' features for this counter: one per box (the patches under it on `img`), or none for a
   * reference-less counter. A video counted with the exemplars of one frame computes them once.
   */
  async exemplars(extractor: FeatureExtractor, img: RgbLike, boxes: readonly Box[]): Promise<Float32Array[]> {
    return this.shots(this.config.shots > 0 ? await this.features(extractor, img) : null, img, boxes);
  }

  /**
   * Counts `img` with the extractor of the counter's backbone (square input, the collages' size): the density map
   * (side × side, objects per cell) and its sum / scaling.
   */
  async count(
    extractor: FeatureExtractor,
    img: RgbLike,
    boxes: readonly Box[],
    /** The image the boxes are drawn on (another frame of a video); default `img`. */
    exemplarImg: RgbLike = img,
  ): Promise<{ count: number; density: Float32Array }> {
    const f = await this.features(extractor, img);
    const e = this.config.shots > 0 && exemplarImg !== img ? await this.features(extractor, exemplarImg) : f;
    return this.decode(f, this.shots(e, exemplarImg, boxes));
  }

  /** Counts `img` with exemplar features from `exemplars` (one run per exemplar, the maps averaged). */
  async countWith(
    extractor: FeatureExtractor,
    img: RgbLike,
    exemplars: readonly Float32Array[],
  ): Promise<{ count: number; density: Float32Array }> {
    return this.decode(await this.features(extractor, img), exemplars);
  }

  private async features(extractor: FeatureExtractor, img: RgbLike): Promise<FrameFeatures> {
    const c = this.config;
    const [f] = await extractor.run([img]);
    if (!f || f.gridH !== c.grid || f.gridW !== c.grid)
      throw new Error(`counter features on a ${f?.gridH}x${f?.gridW} grid, not ${c.grid}`);
    return f;
  }

  /** The features of each box (the patches under it), none for a reference-less counter. */
  private shots(e: FrameFeatures | null, img: RgbLike, boxes: readonly Box[]): Float32Array[] {
    const c = this.config;
    if (c.shots === 0 || !e) return [];
    if (boxes.length === 0)
      throw new FlaneurError(
        'INVALID_ARGUMENT',
        `${this.info.name} counts what an exemplar shows: box one, or use a counter trained without exemplars (automatic).`,
        { field: 'boxes' },
      );
    return boxes.slice(0, 20).map(([x, y, w, h]) => boxFeature(e.patches, e, c.encoderDim, [x, y, x + w, y + h], img));
  }

  /** The decoder on a frame's features: one run per exemplar (or one with none), the maps averaged. */
  private async decode(
    f: FrameFeatures,
    exemplars: readonly Float32Array[],
  ): Promise<{ count: number; density: Float32Array }> {
    const c = this.config;
    const latent = new ort.Tensor('float32', f.patches, [1, c.grid * c.grid, c.encoderDim]);
    const runs: (Float32Array | null)[] = c.shots > 0 ? [...exemplars] : [null];
    const density = new Float32Array(this.side * this.side);
    for (const ex of runs) {
      const feeds: Record<string, ort.Tensor> = { latent, ...Object.fromEntries(this.weights) };
      if (ex) {
        const shots = new Float32Array(c.shots * c.encoderDim);
        for (let s = 0; s < c.shots; s++) shots.set(ex, s * c.encoderDim);
        feeds.exemplars = new ort.Tensor('float32', shots, [1, c.shots, c.encoderDim]);
      }
      const pred = (await this.session.run(feeds, ['pred'])).pred?.data as Float32Array;
      for (let i = 0; i < density.length; i++)
        density[i] = (density[i] as number) + (pred[i] as number) / c.scaling / runs.length;
    }
    let sum = 0;
    for (const v of density) sum += v;
    return { count: Math.max(0, sum), density };
  }

  async release(): Promise<void> {
    await this.session.release();
  }
}
