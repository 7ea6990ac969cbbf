/**
 * The catalog as the UI sees it: media items with their probe facts and problems, frames, and the frame images
 * served to the UI (PNG, cached).
 */
import fs from 'node:fs';
import path from 'node:path';
import type { MediaInfo, Sampling } from '../api/contract.js';
import { FlaneurError } from '../api/errors.js';
import { contentHash } from '../ingest/content-hash.js';
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

/**
 * Catalog items from references as people write them: a catalog id, a file path (relative to the working folder),
 * a file whose bytes are those of an item (a copy of a file already added: the content hash the import skipped it
 * by), or a file name that only one item has. A reference that names nothing, or several items, is refused by name.
 */
export async function resolveMedia(project: Project, refs: readonly string[]): Promise<MediaRow[]> {
  const out: MediaRow[] = [];
  for (const ref of refs) out.push(await resolveOne(project, ref));
  return out;
}

async function resolveOne(project: Project, ref: string): Promise<MediaRow> {
  if (/^\d+$/.test(ref)) {
    const row = project.media.get(Number(ref));
    if (!row) throw new FlaneurError('NOT_FOUND', `No item ${ref} in the catalog.`);
    return row;
  }
  const abs = path.resolve(ref);
  const byPath = project.media.byPath(abs);
  if (byPath) return byPath;
  const sameContent = await byContent(project, abs);
  if (sameContent) return sameContent;
  const named = ref.includes('/') || ref.includes('\\') ? [] : project.media.byFileName(ref);
  if (named.length === 1) return named[0] as MediaRow;
  if (named.length > 1)
    throw new FlaneurError(
      'INVALID_ARGUMENT',
      `${named.length} items are called ${ref} (ids ${named.map((m) => m.id).join(', ')}); use an id or the full path.`,
    );
  throw new FlaneurError(
    'NOT_FOUND',
    `${ref} is not in the catalog: add it to the library first, or name an item by its id.`,
  );
}

/** The ingested item with the same content as this file (hashed as an import hashes it), if the file exists. */
async function byContent(project: Project, file: string): Promise<MediaRow | undefined> {
  let size: number;
  try {
    const st = fs.statSync(file);
    if (!st.isFile() || st.size === 0) return undefined;
    size = st.size;
  } catch {
    return undefined;
  }
  const same = project.media.duplicateOf(await contentHash(file, size), file);
  return same?.status === 'done' ? same : undefined;
}

/** `/media/frame/<mediaId>/<index>.png` → the frame as PNG; null for paths that are not ours. */
export function mediaResource(project: Project, urlPath: string): { contentType: string; body: Buffer } | null {
  const m = /^\/media\/frame\/(\d+)\/(\d+)\.png$/.exec(urlPath);
  if (!m) return null;
  const row = project.media.get(Number(m[1]));
  const idx = Number(m[2]);
  if (!row?.frameWidth || !row.frameHeight || idx >= row.frameCount) {
    throw new FlaneurError('NOT_FOUND', `No frame ${idx + 1} of media ${m[1]} (frames are numbered from 1)`);
  }
  const body = new FrameStore(project.cacheDir).png(row.id, idx, row.frameWidth, row.frameHeight);
  return { contentType: 'image/png', body };
}
