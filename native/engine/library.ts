/**
 * The catalog as the UI sees it: media items with their probe facts and problems, frames, and the frame images
 * served to the UI (PNG, cached).
 */
import path from 'node:path';
import type { MediaInfo, Sampling } from '../api/contract.js';
import { FlaneurError } from '../api/errors.js';
import { FrameStore } from '../media/frame-store.js';
import type { ProbeResult } from '../media/probe.js';
import type { MediaRow } from '../store/media-repo.js';
import type { Project } from '../store/project.js';

export function mediaInfo(r: MediaRow): MediaInfo {
  const p = (r.probe ?? {}) as Partial<ProbeResult>;
  return {
    id: r.id,
    kind: r.kind,
    path: r.path,
    name: path.basename(r.path),
    bytes: r.bytes,
    status: r.status,
    problem: r.problem,
    width: p.width ?? null,
    height: p.height ?? null,
    rotation: p.rotation ?? 0,
    codec: p.codec ?? null,
    durationS: p.durationS ?? null,
    fps: p.fps ?? null,
    keyframeIntervalS: p.keyframeIntervalS ?? null,
    sampling: (r.sampling as Sampling | null) ?? null,
    frameWidth: r.frameWidth,
    frameHeight: r.frameHeight,
    frameCount: r.frameCount,
    addedAt: r.addedAt,
  };
}

export function requireMedia(project: Project, id: number): MediaRow {
  const row = project.media.get(id);
  if (!row) throw new FlaneurError('NOT_FOUND', `No media item ${id} in this project.`, { field: 'id' });
  return row;
}

/** `/media/frame/<mediaId>/<index>.png` → the frame as PNG; null for paths that are not ours. */
export function mediaResource(project: Project, urlPath: string): { contentType: string; body: Buffer } | null {
  const m = /^\/media\/frame\/(\d+)\/(\d+)\.png$/.exec(urlPath);
  if (!m) return null;
  const row = project.media.get(Number(m[1]));
  const idx = Number(m[2]);
  if (!row?.frameWidth || !row.frameHeight || idx >= row.frameCount) {
    throw new FlaneurError('NOT_FOUND', `No frame ${idx} of media ${m[1]}`);
  }
  const body = new FrameStore(project.cacheDir).png(row.id, idx, row.frameWidth, row.frameHeight);
  return { contentType: 'image/png', body };
}
