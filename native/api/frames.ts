/**
 * How frames are numbered for people: from 1, as the player shows them ("frame 1/80"). The engine's `frameIdx`
 * counts from 0; file names and command lines that people read or type use the number.
 */
export const FIRST_FRAME = 1;

export const frameNumber = (frameIdx: number): number => frameIdx + FIRST_FRAME;

/** A frame number as used in file names: zero-padded to 6 digits so names sort in frame order. */
export const frameFileStem = (frameIdx: number): string => String(frameNumber(frameIdx)).padStart(6, '0');

/**
 * The source file's displayed size (rotation applied) in the orientation of its stored frames: the pixels people
 * measure in their image viewer. Rotated videos and EXIF-oriented photos are stored upright, and the frame's
 * orientation tells which way round the probed size is. Without a probed size: the frame's.
 */
export function sourceFrameSize(m: {
  width?: number | null | undefined;
  height?: number | null | undefined;
  rotation?: number | null | undefined;
  frameWidth: number;
  frameHeight: number;
}): { width: number; height: number } {
  const fw = m.frameWidth;
  const fh = m.frameHeight;
  if (!m.width || !m.height) return { width: fw, height: fh };
  const swap =
    m.rotation === 90 || m.rotation === 270 || (fw !== fh && m.width !== m.height && fw > fh !== m.width > m.height);
  return swap ? { width: m.height, height: m.width } : { width: m.width, height: m.height };
}
