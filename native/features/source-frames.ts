/**
 * Frames for an input size larger than the stored frames. Frames are stored at the import's frame size (shorter
 * side 224 by default); a run at 448 would only upsample them (more patches, no detail). Instead they are decoded
 * again from the source file at the run's size — the same frames (an image, or a video's frames at the recorded
 * timestamps: the ingest's sampling decoded again, matched by timestamp) — when the file is still there unchanged.
 * Otherwise the stored frames are upsampled and the note says so, and why.
 */
import fs from 'node:fs';
import path from 'node:path';
import { decodeStill, decodeVideo, type Sampling } from '../media/decode.js';
import { orientationFilters, readOrientation } from '../media/exif.js';
import type { FrameStore } from '../media/frame-store.js';
import type { RgbImage } from '../media/image.js';
import type { MediaRow } from '../store/media-repo.js';

export interface FramePlan {
  /** Where the frames come from. */
  from: 'stored' | 'source';
  width: number;
  height: number;
  /** Said per item when the frames are not simply the stored ones (decoded again, or upsampled and why). */
  note?: string;
}

/**
 * How the frames of an item are read for a run whose input's shorter side is `inputSize`; `shape`: the model input
 * the stored frame becomes (frameGrid), which is what a decode from the source is made at, so that the patch grid
 * is the one every reader of the run computes from the stored frame's size.
 */
export function planFrames(m: MediaRow, inputSize: number, shape: { width: number; height: number }): FramePlan {
  const fw = m.frameWidth as number;
  const fh = m.frameHeight as number;
  if (Math.min(fw, fh) >= inputSize) return { from: 'stored', width: fw, height: fh };
  const upsampled = (why: string): FramePlan => ({
    from: 'stored',
    width: fw,
    height: fh,
    note: `frames are stored at ${fw}x${fh} and ${why}: upsampled to the input size ${inputSize} (add the file again with a frame size of at least ${inputSize} for more detail)`,
  });
  let st: fs.Stats;
  try {
    st = fs.statSync(m.path);
  } catch {
    return upsampled(`the source file ${m.path} is gone`);
  }
  if (st.size !== m.bytes || Math.abs(st.mtimeMs - m.mtimeMs) > 1)
    return upsampled(`the source file ${m.path} changed since it was added`);
  if (m.kind === 'video' && !m.sampling) return upsampled('their sampling is not recorded');
  const size = { width: shape.width, height: shape.height };
  const p = (m.probe ?? {}) as { width?: number; height?: number };
  const small = p.width && p.height && Math.min(p.width, p.height) < inputSize;
  return {
    from: 'source',
    ...size,
    note: `decoded from the source at ${size.width}x${size.height} (stored frames are ${fw}x${fh})${small ? `; the source itself is ${p.width}x${p.height}, so it was upsampled` : ''}`,
  };
}

/**
 * The frames `idx` (in order) of an item as the plan says. A video's frames are decoded in one pass from just
 * before the first one wanted; frames the decode did not give again (a damaged stretch) come from the store.
 */
export async function* planFramesOf(
  m: MediaRow,
  plan: FramePlan,
  idx: readonly number[],
  store: FrameStore,
  frames: readonly { idx: number; pts: number }[],
  stats: { fromStore: number },
  signal?: AbortSignal,
): AsyncGenerator<{ idx: number; image: RgbImage }> {
  const fw = m.frameWidth as number;
  const fh = m.frameHeight as number;
  const stored = (i: number) => ({ idx: i, image: store.image(m.id, i, fw, fh) });
  if (plan.from === 'stored' || idx.length === 0) {
    for (const i of idx) yield stored(i);
    return;
  }
  const { width, height } = plan;
  if (m.kind === 'image') {
    const orientation = /jpe?g$/i.test(path.extname(m.path)) ? readOrientation(m.path) : 1;
    const data = await decodeStill(m.path, width, height, orientationFilters(orientation));
    for (const i of idx) yield { idx: i, image: { width, height, data } };
    return;
  }
  const key = (pts: number) => Math.round(pts * 1e6);
  const wanted = new Map<number, number>();
  for (const i of idx) {
    const f = frames[i];
    if (f) wanted.set(key(f.pts), i);
  }
  const first = Math.min(...idx.map((i) => frames[i]?.pts ?? 0));
  const given = new Set<number>();
  const probe = (m.probe ?? {}) as { fps?: number | null };
  try {
    for await (const f of decodeVideo(m.path, {
      sampling: m.sampling as Sampling,
      width,
      height,
      sourceFps: probe.fps ?? null,
      startS: Math.max(0, first - 1),
      ...(signal ? { signal } : {}),
    })) {
      const i = wanted.get(key(f.pts));
      if (i === undefined || given.has(i)) continue;
      given.add(i);
      yield { idx: i, image: { width, height, data: f.data } };
      if (given.size === wanted.size) break;
    }
  } catch (err) {
    if (signal?.aborted) throw err;
  }
  for (const i of idx)
    if (!given.has(i)) {
      stats.fromStore++;
      yield stored(i);
    }
}
