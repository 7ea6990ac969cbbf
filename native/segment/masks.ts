/**
 * Reading label masks from image files: grayscale (pixel value = class id) or colour with a palette (colour ->
 * class id; unknown colours are ignored). Scaled to the frame size with nearest-neighbour so ids never blend.
 */
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { FlaneurError } from '../api/errors.js';
import { findBinaries } from '../media/ffmpeg.js';
import { IGNORE } from './labels.js';

const run = promisify(execFile);

export type MaskEncoding = { kind: 'gray' } | { kind: 'palette'; colours: [number, number, number][] };

export async function readMask(
  file: string,
  width: number,
  height: number,
  encoding: MaskEncoding,
  classes: number,
): Promise<Uint8Array> {
  const channels = encoding.kind === 'gray' ? 1 : 3;
  let buf: Buffer;
  try {
    const { stdout } = await run(
      findBinaries().ffmpeg.path,
      [
        '-v',
        'error',
        '-i',
        file,
        '-frames:v',
        '1',
        '-vf',
        `scale=${width}:${height}:flags=neighbor`,
        '-f',
        'rawvideo',
        '-pix_fmt',
        channels === 1 ? 'gray' : 'rgb24',
        '-',
      ],
      { encoding: 'buffer', maxBuffer: width * height * channels + 1024 },
    );
    buf = stdout;
  } catch (err) {
    throw new FlaneurError(
      'UNREADABLE_MEDIA',
      `Cannot read the mask ${file}: ${String((err as { stderr?: Buffer }).stderr ?? '')
        .trim()
        .split('\n')
        .pop()}`,
      { field: 'mask' },
    );
  }
  if (buf.length !== width * height * channels)
    throw new FlaneurError('UNREADABLE_MEDIA', `The mask ${file} decoded to ${buf.length} bytes`, { field: 'mask' });
  const out = new Uint8Array(width * height);
  if (encoding.kind === 'gray') {
    for (let i = 0; i < out.length; i++) {
      const v = buf[i] as number;
      out[i] = v < classes ? v : IGNORE;
    }
    return out;
  }
  const lookup = new Map(encoding.colours.map(([r, g, b], c) => [(r << 16) | (g << 8) | b, c]));
  for (let i = 0; i < out.length; i++) {
    const key = ((buf[i * 3] as number) << 16) | ((buf[i * 3 + 1] as number) << 8) | (buf[i * 3 + 2] as number);
    out[i] = lookup.get(key) ?? IGNORE;
  }
  return out;
}

/** Distinct colours for classes (background dark), as RGB. */
export function classColours(n: number): [number, number, number][] {
  const out: [number, number, number][] = [[40, 40, 40]];
  for (let i = 1; i < n; i++) {
    const h = ((i - 1) * 0.618034) % 1;
    const [r, g, b] = hsv(h, 0.75, 0.95);
    out.push([r, g, b]);
  }
  return out;
}

function hsv(h: number, s: number, v: number): [number, number, number] {
  const i = Math.floor(h * 6);
  const f = h * 6 - i;
  const p = v * (1 - s);
  const q = v * (1 - f * s);
  const t = v * (1 - (1 - f) * s);
  const [r, g, b] = [
    [v, t, p],
    [q, v, p],
    [p, v, t],
    [p, q, v],
    [t, p, v],
    [v, p, q],
  ][i % 6] as [number, number, number];
  return [Math.round(r * 255), Math.round(g * 255), Math.round(b * 255)];
}
