/**
 * EXIF orientation of JPEG files, and the ffmpeg filters that apply it (the bundled ffmpeg does not).
 */
import fs from 'node:fs';

/** The EXIF Orientation tag (1-8) of a JPEG, or 1 when absent or unreadable. */
export function jpegOrientation(head: Uint8Array): number {
  const b = Buffer.from(head.buffer, head.byteOffset, head.byteLength);
  if (b.length < 4 || b[0] !== 0xff || b[1] !== 0xd8) return 1;
  let off = 2;
  while (off + 4 <= b.length) {
    if (b[off] !== 0xff) return 1;
    const marker = b[off + 1] as number;
    const len = b.readUInt16BE(off + 2);
    if (marker === 0xe1 && b.toString('latin1', off + 4, off + 10) === 'Exif\0\0') {
      const tiff = off + 10;
      if (tiff + 8 > b.length) return 1;
      const le = b.toString('latin1', tiff, tiff + 2) === 'II';
      const u16 = (o: number) => (le ? b.readUInt16LE(o) : b.readUInt16BE(o));
      const u32 = (o: number) => (le ? b.readUInt32LE(o) : b.readUInt32BE(o));
      const ifd = tiff + u32(tiff + 4);
      if (ifd + 2 > b.length) return 1;
      const n = u16(ifd);
      for (let i = 0; i < n; i++) {
        const e = ifd + 2 + i * 12;
        if (e + 12 > b.length) return 1;
        if (u16(e) === 0x0112) {
          const v = u16(e + 8);
          return v >= 1 && v <= 8 ? v : 1;
        }
      }
      return 1;
    }
    if (marker === 0xda || marker === 0xd9) return 1; // image data starts: no EXIF before it
    off += 2 + len;
  }
  return 1;
}

export function readOrientation(file: string): number {
  try {
    const fd = fs.openSync(file, 'r');
    try {
      const head = Buffer.alloc(128 * 1024);
      const n = fs.readSync(fd, head, 0, head.length, 0);
      return jpegOrientation(head.subarray(0, n));
    } finally {
      fs.closeSync(fd);
    }
  } catch {
    return 1;
  }
}

/** ffmpeg filters that turn a stored image into its upright view, per EXIF orientation. */
export function orientationFilters(orientation: number): string[] {
  switch (orientation) {
    case 2:
      return ['hflip'];
    case 3:
      return ['hflip', 'vflip'];
    case 4:
      return ['vflip'];
    case 5:
      return ['transpose=0'];
    case 6:
      return ['transpose=1'];
    case 7:
      return ['transpose=3'];
    case 8:
      return ['transpose=2'];
    default:
      return [];
  }
}

/** Orientations 5-8 swap width and height. */
export function swapsAxes(orientation: number): boolean {
  return orientation >= 5 && orientation <= 8;
}
