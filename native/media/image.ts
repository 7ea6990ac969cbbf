/**
 * Still-image decoding to RGB through ffmpeg (JPEG, PNG, WebP, BMP, TIFF, the first frame of a GIF).
 */
import { execFile } from 'node:child_process';
import fs from 'node:fs';
import { promisify } from 'node:util';
import { FlaneurError } from '../api/errors.js';
import { findBinaries } from './ffmpeg.js';

const run = promisify(execFile);

export interface RgbImage {
  width: number;
  height: number;
  /** Interleaved RGB, row-major, 3 bytes per pixel. */
  data: Uint8Array;
}

function unreadable(file: string, why: string): FlaneurError {
  return new FlaneurError('UNREADABLE_MEDIA', `Cannot read the image ${file}: ${why}`);
}

/**
 * What a path is when it is not a regular file ("a named pipe", "a device", ...), or null for a regular file: a
 * user's image or mask path is checked before ffmpeg opens it (a named pipe would block it, /dev/zero never end).
 */
export function notRegularFile(st: fs.Stats): string | null {
  if (st.isFile()) return null;
  if (st.isDirectory()) return 'a folder';
  if (st.isFIFO()) return 'a named pipe';
  if (st.isCharacterDevice() || st.isBlockDevice()) return 'a device';
  if (st.isSocket()) return 'a socket';
  return 'not a regular file';
}

export async function decodeImage(file: string): Promise<RgbImage> {
  let st: fs.Stats;
  try {
    st = await fs.promises.stat(file);
  } catch {
    throw unreadable(file, 'no such file');
  }
  const kind = notRegularFile(st);
  if (kind) throw unreadable(file, `it is ${kind}, not an image file`);
  if (st.size === 0) throw unreadable(file, 'the file is empty');
  const { ffmpeg, ffprobe } = findBinaries();
  let width = 0;
  let height = 0;
  try {
    const { stdout } = await run(ffprobe.path, [
      '-v',
      'error',
      '-select_streams',
      'v:0',
      '-show_entries',
      'stream=width,height',
      '-of',
      'json',
      file,
    ]);
    const s = (JSON.parse(stdout) as { streams?: { width?: number; height?: number }[] }).streams?.[0];
    width = s?.width ?? 0;
    height = s?.height ?? 0;
  } catch (err) {
    throw unreadable(
      file,
      `not an image ffprobe can read (${((err as { stderr?: string }).stderr ?? '').trim().split('\n').pop() ?? 'unknown error'})`,
    );
  }
  if (!width || !height) throw unreadable(file, 'no picture in it');
  const { stdout } = await run(
    ffmpeg.path,
    ['-v', 'error', '-i', file, '-frames:v', '1', '-f', 'rawvideo', '-pix_fmt', 'rgb24', '-'],
    {
      encoding: 'buffer',
      maxBuffer: width * height * 3 + 1024,
    },
  ).catch((err: unknown) => {
    throw unreadable(
      file,
      `decoding failed (${String((err as { stderr?: Buffer }).stderr ?? '')
        .trim()
        .split('\n')
        .pop()})`,
    );
  });
  if (stdout.length !== width * height * 3)
    throw unreadable(file, `decoded ${stdout.length} bytes for ${width}x${height}`);
  return { width, height, data: new Uint8Array(stdout.buffer, stdout.byteOffset, stdout.length) };
}
