/** Test media made on the fly with the bundled ffmpeg. */
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { findBinaries } from '../../native/media/ffmpeg.js';
import { encodePng } from '../../native/media/png.js';

export function ffmpeg(args: string[]): void {
  execFileSync(findBinaries().ffmpeg.path, ['-v', 'error', '-y', ...args], { stdio: ['ignore', 'ignore', 'inherit'] });
}

/** A still image from an ffmpeg test source (e.g. `testsrc2=size=320x240`, `mandelbrot=size=200x260`). */
export function makeImage(file: string, source = 'testsrc2=size=320x240'): string {
  ffmpeg(['-f', 'lavfi', '-i', source, '-frames:v', '1', file]);
  return file;
}

/** An H.264 MP4 of `seconds` of lavfi testsrc2 (a moving pattern with a frame counter). */
export function makeVideo(
  file: string,
  o: { seconds: number; fps?: number; width?: number; height?: number; gop?: number },
): string {
  const fps = o.fps ?? 30;
  ffmpeg([
    '-f',
    'lavfi',
    '-i',
    `testsrc2=size=${o.width ?? 320}x${o.height ?? 240}:rate=${fps}:duration=${o.seconds}`,
    '-c:v',
    'libx264',
    '-preset',
    'ultrafast',
    '-g',
    String(o.gop ?? fps),
    '-pix_fmt',
    'yuv420p',
    file,
  ]);
  return file;
}

/** An H.264 MP4 whose frames are the given RGB images (all the same size), `fps` a second. */
export function videoFromImages(
  file: string,
  frames: readonly { rgb: Uint8Array; width: number; height: number }[],
  fps = 4,
): string {
  const dir = `${file}.frames`;
  fs.mkdirSync(dir, { recursive: true });
  for (const [i, f] of frames.entries())
    fs.writeFileSync(path.join(dir, `f-${i + 1}.png`), encodePng(f.rgb, f.width, f.height));
  ffmpeg(['-framerate', String(fps), '-i', path.join(dir, 'f-%d.png'), '-c:v', 'libx264', '-pix_fmt', 'yuv420p', file]);
  return file;
}

/** A JPEG whose left half is red and right half blue, stored `width` x `height`, with an EXIF orientation tag. */
export function makeOrientedJpeg(file: string, width: number, height: number, orientation: number): string {
  const plain = `${file}.plain.jpg`;
  ffmpeg([
    '-f',
    'lavfi',
    '-i',
    `color=c=red:s=${width / 2}x${height}`,
    '-f',
    'lavfi',
    '-i',
    `color=c=blue:s=${width / 2}x${height}`,
    '-filter_complex',
    'hstack',
    '-frames:v',
    '1',
    '-q:v',
    '2',
    plain,
  ]);
  const jpeg = fs.readFileSync(plain);
  fs.rmSync(plain);
  // APP1 Exif: a little-endian TIFF header and one IFD with the Orientation tag (0x0112, SHORT, 1 value).
  const tiff = Buffer.alloc(8 + 2 + 12 + 4);
  tiff.write('II', 0, 'latin1');
  tiff.writeUInt16LE(42, 2);
  tiff.writeUInt32LE(8, 4);
  tiff.writeUInt16LE(1, 8);
  tiff.writeUInt16LE(0x0112, 10);
  tiff.writeUInt16LE(3, 12);
  tiff.writeUInt32LE(1, 14);
  tiff.writeUInt16LE(orientation, 18);
  const body = Buffer.concat([Buffer.from('Exif\0\0', 'latin1'), tiff]);
  const app1 = Buffer.alloc(4);
  app1.writeUInt16BE(0xffe1, 0);
  app1.writeUInt16BE(body.length + 2, 2);
  fs.writeFileSync(file, Buffer.concat([jpeg.subarray(0, 2), app1, body, jpeg.subarray(2)]));
  return file;
}
