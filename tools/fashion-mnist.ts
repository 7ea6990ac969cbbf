/**
 * Writes a labelled folder of Fashion-MNIST images (PNG, 28x28 gray; sub-folder = class) from Debian's
 * dataset-fashion-mnist (/usr/share/datasets/fashion-mnist, or `--from DIR` with the four idx .gz files):
 *   node --import tsx tools/fashion-mnist.ts OUT [--train N] [--test N] [--from DIR]
 * N images per class from each split: the first N of each class in file order (deterministic).
 * Fashion-MNIST: Zalando Research, MIT licence.
 */
import fs from 'node:fs';
import path from 'node:path';
import zlib from 'node:zlib';
import { encodePng } from '../native/media/png.js';

export const FASHION_CLASSES = [
  'tshirt_top',
  'trouser',
  'pullover',
  'dress',
  'coat',
  'sandal',
  'shirt',
  'sneaker',
  'bag',
  'ankle_boot',
] as const;
export const FASHION_DIR = '/usr/share/datasets/fashion-mnist';

function idx(file: string): { dims: number[]; data: Uint8Array } {
  const b = zlib.gunzipSync(fs.readFileSync(file));
  const nd = b[3] as number;
  const dims = Array.from({ length: nd }, (_, i) => b.readUInt32BE(4 + 4 * i));
  return { dims, data: new Uint8Array(b.buffer, b.byteOffset + 4 + 4 * nd, b.length - 4 - 4 * nd) };
}

/** The first `perClass` images of each class of a split, in file order, with their labels (0..9). */
export function readSplit(
  from: string,
  split: 'train' | 't10k',
  perClass: number,
): { width: number; height: number; pixels: Uint8Array[]; labels: number[] } {
  const images = idx(path.join(from, `${split}-images-idx3-ubyte.gz`));
  const labels = idx(path.join(from, `${split}-labels-idx1-ubyte.gz`));
  const [n, h, w] = images.dims as [number, number, number];
  const counts = new Array<number>(10).fill(0);
  const out = { width: w, height: h, pixels: [] as Uint8Array[], labels: [] as number[] };
  for (let i = 0; i < n && out.labels.length < perClass * 10; i++) {
    const c = labels.data[i] as number;
    if ((counts[c] as number) >= perClass) continue;
    counts[c] = (counts[c] as number) + 1;
    out.pixels.push(images.data.slice(i * h * w, (i + 1) * h * w));
    out.labels.push(c);
  }
  return out;
}

/** Writes `perClass` images of each class of a split under out/<class>/; returns the files written. */
export function writeSplit(from: string, split: 'train' | 't10k', perClass: number, out: string): string[] {
  const images = idx(path.join(from, `${split}-images-idx3-ubyte.gz`));
  const labels = idx(path.join(from, `${split}-labels-idx1-ubyte.gz`));
  const [n, h, w] = images.dims as [number, number, number];
  const counts = new Array<number>(10).fill(0);
  const files: string[] = [];
  for (let i = 0; i < n && files.length < perClass * 10; i++) {
    const c = labels.data[i] as number;
    if ((counts[c] as number) >= perClass) continue;
    counts[c] = (counts[c] as number) + 1;
    const dir = path.join(out, FASHION_CLASSES[c] as string);
    fs.mkdirSync(dir, { recursive: true });
    const file = path.join(dir, `${split}_${String(i).padStart(5, '0')}.png`);
    fs.writeFileSync(file, encodePng(images.data.subarray(i * h * w, (i + 1) * h * w), w, h, 9, 1));
    files.push(file);
  }
  return files;
}

if (import.meta.url === `file://${process.argv[1]}`) {
  const args = process.argv.slice(2);
  const opt = (name: string, def: string) => (args.includes(name) ? (args[args.indexOf(name) + 1] as string) : def);
  const out = args[0];
  if (!out || out.startsWith('--'))
    throw new Error('usage: tools/fashion-mnist.ts OUT [--train N] [--test N] [--from DIR]');
  const from = opt('--from', FASHION_DIR);
  const train = writeSplit(from, 'train', Number(opt('--train', '100')), path.join(out, 'train'));
  const test =
    Number(opt('--test', '0')) > 0 ? writeSplit(from, 't10k', Number(opt('--test', '0')), path.join(out, 'test')) : [];
  console.log(JSON.stringify({ out, train: train.length, test: test.length }));
}
