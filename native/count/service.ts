/**
 * Counting for the engine: feature extractors per (model, input size) kept warm, counts on catalog frames, and the
 * last similarity maps kept so a threshold slider re-counts without recomputing features.
 */
import fs from 'node:fs';
import path from 'node:path';
import { FlaneurError } from '../api/errors.js';
import type { FeatureExtractor } from '../features/extract.js';
import type { ExtractorCache } from '../features/extractor-cache.js';
import type { ExactKnn } from '../features/knn.js';
import { decodeStill } from '../media/decode.js';
import { orientationFilters, readOrientation } from '../media/exif.js';
import { FrameStore } from '../media/frame-store.js';
import type { RgbLike } from '../models/preprocess.js';
import type { Project } from '../store/project.js';
import { countAutoDense } from './auto.js';
import { type Box, countDense, countWithExemplars, findPeaks, type SimilarityMap } from './count.js';
import { UNCO_SIZE } from './train-unco.js';
import { listUncoCounters, UncoCounter } from './unco-counter.js';

/** Longer side of a still image read at its source resolution for counting (a 48 MP photo is read at 4096). */
export const SOURCE_MAX_SIDE = 4096;

type Point = { x: number; y: number; score: number };

export class CountService {
  private maps = new Map<string, { map: SimilarityMap; radius: number; fx: number; fy: number }>();
  private nextToken = 1;
  /** Trained UnCo counters loaded, by their training job (and the decoder file, in case it changed). */
  private counters = new Map<string, Promise<UncoCounter>>();

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

  /**
   * The pixels to count exemplars on: a still image's own file at its resolution (up to SOURCE_MAX_SIDE), as the
   * stored frame is often much smaller (224 px on the shorter side by default) and a crowd's objects would shrink
   * to a few pixels there; else (videos, a file gone or changed since it was added, a frame stored at full size)
   * the stored frame. `fx`, `fy`: image pixels per frame pixel.
   */
  private async countImage(
    project: Project,
    mediaId: number,
    frameIdx: number,
  ): Promise<{ img: RgbLike; frame: { width: number; height: number }; fx: number; fy: number }> {
    const frame = this.frame(project, mediaId, frameIdx);
    const same = { img: frame, frame, fx: 1, fy: 1 };
    const m = project.media.get(mediaId);
    const probe = (m?.probe ?? {}) as { width?: number; height?: number };
    if (m?.kind !== 'image' || !probe.width || !probe.height) return same;
    let st: fs.Stats;
    try {
      st = fs.statSync(m.path);
    } catch {
      return same;
    }
    if (st.size !== m.bytes || Math.abs(st.mtimeMs - m.mtimeMs) > 1) return same;
    // The source's sides in the frame's orientation (EXIF rotation swaps them).
    const frameWide = frame.width >= frame.height;
    const [sw, sh] =
      probe.width >= probe.height === frameWide ? [probe.width, probe.height] : [probe.height, probe.width];
    const k = Math.min(1, SOURCE_MAX_SIDE / Math.max(sw, sh));
    const width = Math.max(2, Math.round(sw * k));
    const height = Math.max(2, Math.round(sh * k));
    if (width <= frame.width * 1.05 && height <= frame.height * 1.05) return same;
    const orientation = /jpe?g$/i.test(path.extname(m.path)) ? readOrientation(m.path) : 1;
    try {
      const data = await decodeStill(m.path, width, height, orientationFilters(orientation));
      return { img: { width, height, data }, frame, fx: width / frame.width, fy: height / frame.height };
    } catch {
      return same;
    }
  }

  private remember(map: SimilarityMap, radius: number, fx = 1, fy = 1): number {
    const token = this.nextToken++;
    this.maps.set(String(token), { map, radius, fx, fy });
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
      negatives?: Box[];
      roi?: [number, number][];
    },
  ) {
    const frame = this.frame(project, o.mediaId, o.frameIdx);
    for (const [x, y, w, h] of [...o.boxes, ...(o.negatives ?? [])]) {
      if (w < 2 || h < 2 || x < 0 || y < 0 || x + w > frame.width || y + h > frame.height) {
        throw new FlaneurError(
          'INVALID_ARGUMENT',
          `The exemplar box [${x}, ${y}, ${w}, ${h}] is not inside the ${frame.width}x${frame.height} frame.`,
          { field: 'boxes' },
        );
      }
    }
    const threshold = o.threshold === undefined ? {} : { threshold: o.threshold };
    // Exemplar-chosen scales count a still image on its own file (boxes and points in frame pixels all the same).
    const { img, fx, fy } = o.scales
      ? { img: frame, fx: 1, fy: 1 }
      : await this.countImage(project, o.mediaId, o.frameIdx);
    const toImage = ([x, y, w, h]: Box) => [x * fx, y * fy, w * fx, h * fy] as Box;
    const boxes = o.boxes.map(toImage);
    const negatives = o.negatives?.map(toImage);
    const roi = o.roi?.map(([x, y]) => [x * fx, y * fy] as const);
    if (o.scales && (negatives?.length || roi))
      throw new FlaneurError(
        'INVALID_ARGUMENT',
        'Negative exemplars and a region of interest work with the scale chosen from the exemplar: leave out the fixed sizes.',
        { field: 'scales' },
      );
    // Fixed sizes when asked for; otherwise the scale comes from the exemplar and large images are tiled.
    const r = o.scales
      ? {
          ...(await countWithExemplars(
            await Promise.all(o.scales.map((s) => this.extractor(project, o.modelId, s))),
            img,
            boxes,
            threshold,
          )),
          scale: null,
        }
      : await countDense(await this.extractor(project, o.modelId, o.size ?? 224), img, boxes, {
          ...threshold,
          ...(o.exemplarPatches ? { exemplarPatches: o.exemplarPatches } : {}),
          ...(negatives?.length ? { negatives } : {}),
          ...(roi ? { roi } : {}),
        });
    const token = this.remember(r.map, r.radius, fx, fy);
    return {
      token,
      count: r.count,
      points: toFrame(r.points, fx, fy),
      threshold: r.threshold,
      range: range(r.map),
      width: frame.width,
      height: frame.height,
      scale: r.scale,
    };
  }

  async auto(
    project: Project,
    knn: ExactKnn,
    o: { modelId: number; mediaId: number; frameIdx: number; scale?: number; roi?: [number, number][] },
  ) {
    // At every scale, from the extractor's input size up: a still image on its own file, as exemplar counting.
    const { img, frame, fx, fy } = await this.countImage(project, o.mediaId, o.frameIdx);
    const roi = o.roi?.map(([x, y]) => [x * fx, y * fy] as const);
    const r = await countAutoDense(await this.extractor(project, o.modelId, o.scale ?? 224), knn, img, {
      ...(roi ? { roi } : {}),
    });
    const token = this.remember(r.map, r.radius, fx, fy);
    return {
      token,
      count: r.count,
      points: toFrame(r.points, fx, fy),
      threshold: r.threshold,
      range: range(r.map),
      clusters: r.clusters,
      chosen: r.chosen,
      width: frame.width,
      height: frame.height,
      scale: r.scale,
      trials: r.trials,
    };
  }

  /** Counts a frame with a trained UnCo counter: its density map (the frame squashed to a square), count = its sum. */
  async unco(
    project: Project,
    o: { jobId: number; mediaId: number; frameIdx: number; boxes?: Box[]; exemplarFrameIdx?: number },
  ) {
    const info = listUncoCounters(project).find((c) => c.jobId === o.jobId);
    if (!info)
      throw new FlaneurError('NOT_FOUND', `No trained counter from job ${o.jobId}: train one in the Train view.`, {
        field: 'jobId',
      });
    const key = `${project.dir}:${info.jobId}:${info.file}`;
    let made = this.counters.get(key);
    if (!made) {
      made = UncoCounter.load(info);
      this.counters.set(key, made);
      made.catch(() => this.counters.delete(key));
    }
    const counter = await made;
    const img = this.frame(project, o.mediaId, o.frameIdx);
    const extractor = await this.extractors.get(project, info.modelId, UNCO_SIZE, 'square');
    const from = o.exemplarFrameIdx;
    const exemplarImg = from === undefined || from === o.frameIdx ? img : this.frame(project, o.mediaId, from);
    const r = await counter.count(extractor, img, o.boxes ?? [], exemplarImg);
    return {
      count: r.count,
      density: [...r.density],
      side: counter.side,
      width: img.width,
      height: img.height,
      jobId: info.jobId,
    };
  }

  /** Re-counts a recent map at another threshold (the slider). */
  peaks(token: number, threshold: number) {
    const m = this.maps.get(String(token));
    if (!m) throw new FlaneurError('NOT_FOUND', 'That count is no longer in memory; count again.', { field: 'token' });
    const points = toFrame(findPeaks(m.map, threshold, m.radius || 1), m.fx, m.fy);
    return { count: points.length, points, threshold };
  }

  release(): void {
    this.maps.clear();
    for (const c of this.counters.values()) void c.then((x) => x.release()).catch(() => undefined);
    this.counters.clear();
  }
}

/** Points found on a still image's own pixels, in the stored frame's pixels. */
function toFrame(points: Point[], fx: number, fy: number): Point[] {
  return fx === 1 && fy === 1 ? points : points.map((p) => ({ ...p, x: p.x / fx, y: p.y / fy }));
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
