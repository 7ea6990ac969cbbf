/**
 * Label masks in the usual encodings give the intended classes, and masks whose values do not match the bank's
 * classes say so (the warning the Segment view and the CLI show).
 */
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { findBinaries } from '../../../native/media/ffmpeg.js';
import { encodePng } from '../../../native/media/png.js';
import { IGNORE } from '../../../native/segment/labels.js';
import { readMask } from '../../../native/segment/masks.js';
import { tmpDir } from '../../helpers/tmp.js';

const W = 48;
const H = 27;
/** Three classes: background, a disc (1) on the left, a box (2) on the right. */
const truth = Uint8Array.from({ length: W * H }, (_, i) => {
  const x = i % W;
  const y = Math.floor(i / W);
  if ((x - 12) ** 2 + (y - 13) ** 2 < 64) return 1;
  if (x >= 30 && x < 42 && y >= 6 && y < 20) return 2;
  return 0;
});
const COLOURS: [number, number, number][] = [
  [0, 0, 0],
  [220, 30, 40],
  [30, 200, 60],
];

function agreement(a: Uint8Array, b: Uint8Array): number {
  let same = 0;
  for (let i = 0; i < a.length; i++) if (a[i] === b[i]) same++;
  return same / a.length;
}

function toJpeg(png: string): string {
  const out = png.replace(/\.png$/, '.jpg');
  execFileSync(findBinaries().ffmpeg.path, ['-v', 'error', '-y', '-i', png, '-q:v', '12', out]);
  return out;
}

describe('label mask encodings', () => {
  const dir = tmpDir();
  const write = (name: string, data: Uint8Array, channels: 1 | 3 = 1, palette?: [number, number, number][]) => {
    const file = path.join(dir, name);
    fs.writeFileSync(file, encodePng(data, W, H, 6, channels, palette));
    return file;
  };
  const binary = Uint8Array.from(truth, (c) => (c === 1 ? 1 : 0));
  const rgb = new Uint8Array(W * H * 3);
  truth.forEach((c, i) => {
    rgb.set(COLOURS[c] as number[], i * 3);
  });

  it('reads class ids as they are, with no warning', async () => {
    const r = await readMask(write('ids.png', truth), W, H, { kind: 'auto' }, 3);
    expect(r.read).toBe('class ids');
    expect(r.warnings).toEqual([]);
    expect(Array.from(r.labels)).toEqual(Array.from(truth));
  });

  it('reads a 0/255 binary mask as two classes and says so; 0/1 is class ids already', async () => {
    const r = await readMask(
      write(
        'b255.png',
        Uint8Array.from(binary, (v) => v * 255),
      ),
      W,
      H,
      { kind: 'auto' },
      2,
      ['background', 'disc'],
    );
    expect(r.read).toBe('binary 0/255');
    expect(Array.from(r.labels)).toEqual(Array.from(binary));
    expect(r.warnings[0]).toMatch(/only values 0 and 255: 255 was read as the second class \('disc'\)/);
    // Asked for as class ids, 255 is 'ignore' (what it meant before).
    const ids = await readMask(path.join(dir, 'b255.png'), W, H, { kind: 'ids' }, 2);
    expect(ids.labels.filter((v) => v === IGNORE).length).toBe(binary.filter((v) => v === 1).length);
    const one = await readMask(write('b1.png', binary), W, H, { kind: 'auto' }, 2);
    expect(one.warnings).toEqual([]);
    expect(Array.from(one.labels)).toEqual(Array.from(binary));
  });

  it('thresholds a binary JPEG mask with compression noise', async () => {
    const jpg = toJpeg(
      write(
        'bj.png',
        Uint8Array.from(binary, (v) => v * 255),
      ),
    );
    const r = await readMask(jpg, W, H, { kind: 'auto' }, 2);
    expect(r.read).toBe('binary (thresholded)');
    expect(r.warnings[0]).toMatch(/compression noise/);
    expect(agreement(r.labels, binary)).toBeGreaterThan(0.98);
  });

  it('reads a palette PNG by its indices, whatever its colours', async () => {
    const r = await readMask(write('pal.png', truth, 1, COLOURS), W, H, { kind: 'auto' }, 3);
    expect(r.read).toMatch(/palette PNG/);
    expect(Array.from(r.labels)).toEqual(Array.from(truth));
  });

  it('reads colour masks with a palette (snapping JPEG noise) and without one (darkest first, with a warning)', async () => {
    const png = write('colour.png', rgb, 3);
    const withPalette = await readMask(png, W, H, { kind: 'palette', colours: COLOURS }, 3);
    expect(Array.from(withPalette.labels)).toEqual(Array.from(truth));
    const noisy = await readMask(toJpeg(png), W, H, { kind: 'palette', colours: COLOURS }, 3);
    expect(agreement(noisy.labels, truth)).toBeGreaterThan(0.95);
    const own = await readMask(png, W, H, { kind: 'auto' }, 3);
    expect(own.labels.filter((v) => v === 0).length).toBe(truth.filter((v) => v === 0).length);
    expect(own.warnings[0]).toMatch(/colour mask without a palette: its colours were read as #000000 = class 0/);
  });

  it('warns when values are not classes of the bank, and ignores those pixels', async () => {
    const odd = Uint8Array.from(truth, (c) => (c === 2 ? 7 : c));
    const r = await readMask(write('odd.png', odd), W, H, { kind: 'auto' }, 3, ['bg', 'disc', 'box']);
    expect(r.warnings[0]).toMatch(/has values 7 .* not classes of the bank \(0–2: bg, disc, box; 255 = ignore\)/);
    expect(r.labels.filter((v) => v === IGNORE).length).toBe(truth.filter((v) => v === 2).length);
  });

  it('scales a mask made at the source resolution to the frame by nearest neighbour', async () => {
    const r = await readMask(path.join(dir, 'ids.png'), W * 2, H * 2, { kind: 'auto' }, 3);
    expect(r.labels.length).toBe(W * H * 4);
    expect(r.labels[(2 * 13 + 1) * W * 2 + 2 * 12]).toBe(1);
    expect(new Set(r.labels)).toEqual(new Set([0, 1, 2]));
  });
});
