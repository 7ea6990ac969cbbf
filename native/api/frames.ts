/**
 * How frames are numbered for people: from 1, as the player shows them ("frame 1/80"). The engine's `frameIdx`
 * counts from 0; file names and command lines that people read or type use the number.
 */
export const FIRST_FRAME = 1;

export const frameNumber = (frameIdx: number): number => frameIdx + FIRST_FRAME;

/** A frame number as used in file names: zero-padded to 6 digits so names sort in frame order. */
export const frameFileStem = (frameIdx: number): string => String(frameNumber(frameIdx)).padStart(6, '0');
