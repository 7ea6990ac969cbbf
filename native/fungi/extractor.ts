/**
 * FUNGI features of frames: the embedding (CLS of the KL view) and, per chosen objective, the projected per-sample
 * gradient, each L2-normalised, concatenated in the order [embedding, kl, dino, simclr].
 */

import { Rng } from '../base/rng.js';
import { l2normalizeRows } from '../features/knn.js';
import type { ImportedViT } from '../models/import-vit.js';
import type { RgbLike } from '../models/preprocess.js';
import { buildViTOnnx } from '../models/vit-onnx.js';
import { ModelSession, ort, type RuntimeSettings } from '../runtime/session.js';
import {
  buildFungiGraph,
  FUNGI_OBJECTIVES,
  type FungiObjective,
  type FungiSettings,
  type LinearHead,
  latentDim,
  objectiveHeads,
  projectionMatrix,
  viewsPerSample,
} from './graph.js';
import { objectiveViews, writeViews } from './views.js';

export interface FungiOptions {
  size: number;
  objectives: readonly FungiObjective[];
  settings: FungiSettings;
  /** Seeds the heads, the projection, the DINO crops and the choice of SimCLR negatives. */
  seed: number;
  /** Views per graph run (samples per run = max(1, floor(budget / views per sample))). */
  viewBudget?: number;
  /** Provider and threads of the sessions (the engine's settings in a job). */
  runtime?: RuntimeSettings;
}

interface ObjectiveRunner {
  objective: FungiObjective;
  session: ModelSession;
  samples: number;
  views: number;
  heads: { student: LinearHead; teacher?: LinearHead };
  weight: ort.Tensor;
  bias: ort.Tensor;
}

export class FungiExtractor {
  private negatives: ort.Tensor | null = null;

  private constructor(
    readonly model: ImportedViT,
    readonly options: FungiOptions,
    private readonly embedding: ModelSession,
    private readonly runners: ObjectiveRunner[],
    /** The ±1 projection of the gradients; none when no objective is asked for (embeddings only). */
    private readonly projection: ort.Tensor | null,
  ) {}

  static async create(model: ImportedViT, o: FungiOptions): Promise<FungiExtractor> {
    const D = model.config.dim;
    const last = `blocks.${model.config.depth - 1}.attn.proj`;
    const w = model.weights.get(`${last}.weight`);
    const bias = model.weights.get(`${last}.bias`);
    if (!w || !bias) throw new Error(`the model has no ${last}`);
    const embedding = await ModelSession.create(
      buildViTOnnx(model, { height: o.size, width: o.size, outputs: { cls: true }, fused: true }),
      o.runtime,
    );
    const runners: ObjectiveRunner[] = [];
    const budget = o.viewBudget ?? 48;
    const negatives = o.settings.simclr.negatives * viewsPerSample('simclr', o.settings, o.size);
    for (const objective of FUNGI_OBJECTIVES.filter((x) => o.objectives.includes(x))) {
      const views = viewsPerSample(objective, o.settings, o.size);
      const samples = Math.max(1, Math.floor(budget / views));
      const heads = objectiveHeads(objective, o.settings, D, o.seed);
      const g = buildFungiGraph(model, {
        objective,
        settings: o.settings,
        size: o.size,
        samples,
        heads,
        ...(objective === 'simclr' ? { negatives } : {}),
      });
      const wS = new Float32Array(samples * D * D);
      const bS = new Float32Array(samples * D);
      for (let s = 0; s < samples; s++) {
        wS.set(w, s * D * D);
        bS.set(bias, s * D);
      }
      runners.push({
        objective,
        session: await ModelSession.create(g.onnx, o.runtime),
        samples,
        views,
        heads,
        weight: new ort.Tensor('float32', wS, [samples, D, D]),
        bias: new ort.Tensor('float32', bS, [samples, 1, D]),
      });
    }
    const gradDim = D * (D + 1);
    const projection =
      runners.length > 0 ? new ort.Tensor('float32', projectionMatrix(gradDim, D, o.seed + 17), [gradDim, D]) : null;
    return new FungiExtractor(model, o, embedding, runners, projection);
  }

  /** Length of one feature vector. */
  get dim(): number {
    return this.model.config.dim * (1 + this.runners.length);
  }

  get provider(): string {
    return this.embedding.info.provider;
  }

  get needsNegatives(): boolean {
    return this.runners.some((r) => r.objective === 'simclr') && !this.negatives;
  }

  private get mean(): { mean: readonly [number, number, number]; std: readonly [number, number, number] } {
    return { mean: this.model.config.mean, std: this.model.config.std };
  }

  /** CLS of views, in batches of 32. */
  private async cls(views: readonly RgbLike[]): Promise<Float32Array> {
    const D = this.model.config.dim;
    const size = this.options.size;
    const out = new Float32Array(views.length * D);
    for (let i = 0; i < views.length; i += 32) {
      const chunk = views.slice(i, i + 32);
      const input = new Float32Array(chunk.length * 3 * size * size);
      writeViews(chunk, this.mean, input);
      const r = await this.embedding.run({ pixels: new ort.Tensor('float32', input, [chunk.length, 3, size, size]) }, [
        'cls',
      ]);
      out.set(r.cls?.data as Float32Array, i * D);
    }
    return out;
  }

  /**
   * SimCLR's fixed negative batch: every patch view of these frames through the model and the SimCLR head,
   * L2-normalised ([frames × views, latent]). Returned so the run can store it (a resume uses the same batch).
   */
  async computeNegatives(images: readonly RgbLike[]): Promise<Float32Array> {
    const r = this.runners.find((x) => x.objective === 'simclr');
    if (!r) return new Float32Array(0);
    const o = this.options;
    const need = o.settings.simclr.negatives;
    if (images.length === 0) throw new Error('SimCLR needs at least one frame for its negative batch');
    // Fewer frames than asked: repeat them (the graph's negative count is fixed by the settings).
    const chosen = Array.from({ length: need }, (_, i) => images[i % images.length] as RgbLike);
    const D = this.model.config.dim;
    const L = latentDim('simclr', o.settings, D);
    const h = r.heads.student;
    const rows = new Float32Array(need * r.views * L);
    let row = 0;
    for (const img of chosen) {
      const cls = await this.cls(objectiveViews('simclr', img, o.size, o.settings, 0));
      for (let v = 0; v < r.views; v++) {
        const z = rows.subarray(row * L, (row + 1) * L);
        for (let j = 0; j < L; j++) {
          let acc = h.bias[j] as number;
          for (let d = 0; d < D; d++) acc += (h.weight[j * D + d] as number) * (cls[v * D + d] as number);
          z[j] = acc;
        }
        row++;
      }
    }
    return l2normalizeRows(rows, L);
  }

  setNegatives(latents: Float32Array): void {
    const L = latentDim('simclr', this.options.settings, this.model.config.dim);
    this.negatives = new ort.Tensor('float32', latents, [latents.length / L, L]);
  }

  /** Frames' feature vectors (each part L2-normalised). `seed` of each frame drives its DINO crops. */
  async run(frames: readonly { img: RgbLike; seed: number }[]): Promise<Float32Array[]> {
    const D = this.model.config.dim;
    const o = this.options;
    const size = o.size;
    const plane = 3 * size * size;
    const out = frames.map(() => new Float32Array(this.dim));
    const emb = await this.cls(
      frames.map((f) => objectiveViews('embedding', f.img, size, o.settings, f.seed)[0] as RgbLike),
    );
    l2normalizeRows(emb, D);
    frames.forEach((_, i) => {
      out[i]?.set(emb.subarray(i * D, (i + 1) * D), 0);
    });
    for (const [k, r] of this.runners.entries()) {
      if (r.objective === 'simclr' && !this.negatives) throw new Error('SimCLR negatives were not set');
      for (let i = 0; i < frames.length; i += r.samples) {
        const chunk = frames.slice(i, i + r.samples);
        const input = new Float32Array(r.samples * r.views * plane);
        for (let s = 0; s < r.samples; s++) {
          // The last run is padded with its last frame; those outputs are dropped.
          const f = chunk[Math.min(s, chunk.length - 1)] as { img: RgbLike; seed: number };
          writeViews(
            objectiveViews(r.objective, f.img, size, o.settings, f.seed),
            this.mean,
            input,
            s * r.views * plane,
          );
        }
        const feeds: Record<string, ort.Tensor> = {
          pixels: new ort.Tensor('float32', input, [r.samples * r.views, 3, size, size]),
          proj_weight: r.weight,
          proj_bias: r.bias,
          projection: this.projection as ort.Tensor,
        };
        if (r.objective === 'simclr' && this.negatives) feeds.negatives = this.negatives;
        const res = await r.session.run(feeds, ['features']);
        const feats = l2normalizeRows(res.features?.data as Float32Array, D);
        chunk.forEach((_, s) => {
          out[i + s]?.set(feats.subarray(s * D, (s + 1) * D), (k + 1) * D);
        });
      }
    }
    return out;
  }

  async release(): Promise<void> {
    await this.embedding.release();
    for (const r of this.runners) await r.session.release();
  }
}

/** Seeded choice of up to n items (SimCLR negatives). */
export function chooseSeeded<T>(items: readonly T[], n: number, seed: number): T[] {
  return new Rng(seed).shuffle([...items]).slice(0, n);
}
