/**
 * Counting for the engine: feature extractors per (model, input size) kept warm, counts on catalog frames, and the
 * last similarity maps kept so a threshold slider re-counts without recomputing features.
 */
import { FlaneurError } from '../api/errors.js';
import type { FeatureExtractor } from '../features/extract.js';
import type { ExtractorCache } from '../features/extractor-cache.js';
import type { ExactKnn } from '../features/knn.js';
import { FrameStore } from '../media/frame-store.js';
import type { Project } from '../store/project.js';
import { countAutomatically } from './auto.js';
import { type Box, countDense, countWithExemplars, findPeaks, type SimilarityMap } from './count.js';

export class CountService {
  private maps = new Map<string, { map: SimilarityMap; radius: number }>();
  private nextToken = 1;

  /** `extractors`: the engine's warm feature extractors (made with its Device settings). */
  constructor(private readonly extractors: ExtractorCache) {}

  private extractor(project: Project, modelId: number, size: number): Promise<FeatureExtractor> {
    return this.extractors.get(project, modelId, size);
  }

  private frame(project: Project, mediaId: number, frameIdx: number) {
    const m = project.media.get(mediaId);
    if (!m?.frameWidth || !m.frameHeight || frameIdx >= m.frameCount)
      throw new FlaneurError(
        'NOT_FOUND',
        m
          ? `This item has no frame ${frameIdx + 1}: it has ${m.frameCount} (1 to ${m.frameCount}).`
          : `No item ${mediaId}.`,
        { field: m ? 'frameIdx' : 'mediaId' },
      );
    const data = new FrameStore(project.cacheDir).read(mediaId, frameIdx, m.frameWidth * m.frameHeight * 3);
    return { width: m.frameWidth, height: m.frameHeight, data };
  }

  private remember(map: SimilarityMap, radius: number): number {
    const token = this.nextToken++;
    this.maps.set(String(token), { map, radius });
    // Keep the few most recent maps only.
    for (const k of [...this.maps.keys()].slice(0, Math.max(0, this.maps.size - 8))) this.maps.delete(k);
    return token;
  }

  async exemplar(
    project: Project,
    o: {
      modelId: number;
      mediaId: number;
      frameIdx: number;
      boxes: Box[];
      scales?: number[];
      size?: number;
      exemplarPatches?: number;
      threshold?: number;
    },
  ) {
    const img = this.frame(project, o.mediaId, o.frameIdx);
    for (const [x, y, w, h] of o.boxes) {
      if (w < 2 || h < 2 || x < 0 || y < 0 || x + w > img.width || y + h > img.height) {
        throw new FlaneurError(
          'INVALID_ARGUMENT',
          `The exemplar box [${x}, ${y}, ${w}, ${h}] is not inside the ${img.width}x${img.height} frame.`,
          { field: 'boxes' },
        );
      }
    }
    const threshold = o.threshold === undefined ? {} : { threshold: o.threshold };
    // Fixed sizes when asked for; otherwise the scale comes from the exemplar and large images are tiled.
    const r = o.scales
      ? {
          ...(await countWithExemplars(
            await Promise.all(o.scales.map((s) => this.extractor(project, o.modelId, s))),
            img,
            o.boxes,
            threshold,
          )),
          scale: null,
        }
      : await countDense(await this.extractor(project, o.modelId, o.size ?? 224), img, o.boxes, {
          ...threshold,
          ...(o.exemplarPatches ? { exemplarPatches: o.exemplarPatches } : {}),
        });
    const token = this.remember(r.map, r.radius);
    return {
      token,
      count: r.count,
      points: r.points,
      threshold: r.threshold,
      range: range(r.map),
      width: img.width,
      height: img.height,
      scale: r.scale,
    };
  }

  async auto(
    project: Project,
    knn: ExactKnn,
    o: { modelId: number; mediaId: number; frameIdx: number; scale?: number },
  ) {
    const img = this.frame(project, o.mediaId, o.frameIdx);
    const r = await countAutomatically(await this.extractor(project, o.modelId, o.scale ?? 448), knn, img);
    const token = this.remember(r.map, 0);
    return {
      token,
      count: r.count,
      points: r.points,
      threshold: r.threshold,
      range: range(r.map),
      clusters: r.clusters,
      chosen: r.chosen,
      width: img.width,
      height: img.height,
    };
  }

  /** Re-counts a recent map at another threshold (the slider). */
  peaks(token: number, threshold: number) {
    const m = this.maps.get(String(token));
    if (!m) throw new FlaneurError('NOT_FOUND', 'That count is no longer in memory; count again.', { field: 'token' });
    const points = findPeaks(m.map, threshold, m.radius || 1);
    return { count: points.length, points, threshold };
  }

  release(): void {
    this.maps.clear();
  }
}

function range(map: SimilarityMap): [number, number] {
  let lo = Number.POSITIVE_INFINITY;
  let hi = Number.NEGATIVE_INFINITY;
  for (const v of map.data) {
    lo = Math.min(lo, v);
    hi = Math.max(hi, v);
  }
  return [lo, hi];
}
