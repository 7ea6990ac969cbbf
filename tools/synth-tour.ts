/**
 * Writes a synthetic walking tour with ground truth (see tools/synth/tour.ts):
 *
 *   node --import tsx tools/synth-tour.ts OUT_DIR [--seconds 20] [--fps 10] [--width 320] [--height 240] [--seed 1]
 *
 * OUT_DIR/tour.mp4 (H.264), OUT_DIR/tour.masks.gz (gzip of frames x height x width uint8 instance ids, 0 =
 * background), OUT_DIR/tour.json (options, categories, instances, per-frame boxes and counts).
 * The committed fixture tests/fixtures/synthetic/ is `tools/synth-tour.ts tests/fixtures/synthetic`.
 */
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { parseArgs } from 'node:util';
import zlib from 'node:zlib';
import { findBinaries } from '../native/media/ffmpeg.js';
import { encodePng } from '../native/media/png.js';
import { CATEGORIES, type FrameTruth, makeInstances, renderFrame, type TourOptions } from './synth/tour.js';

export async function writeTour(out: string, o: TourOptions): Promise<{ video: string; masks: string; truth: string }> {
  fs.mkdirSync(out, { recursive: true });
  const video = path.join(out, 'tour.mp4');
  const ff = spawn(
    findBinaries().ffmpeg.path,
    [
      '-v',
      'error',
      '-y',
      '-f',
      'rawvideo',
      '-pix_fmt',
      'rgb24',
      '-s',
      `${o.width}x${o.height}`,
      '-r',
      String(o.fps),
      '-i',
      'pipe:0',
      '-c:v',
      'libx264',
      '-preset',
      'medium',
      '-crf',
      '20',
      '-g',
      String(o.fps * 2),
      '-pix_fmt',
      'yuv420p',
      video,
    ],
    { stdio: ['pipe', 'inherit', 'inherit'] },
  );
  const done = new Promise<void>((resolve, reject) =>
    ff.on('close', (c) => (c === 0 ? resolve() : reject(new Error(`ffmpeg exited ${c}`)))),
  );
  const gz = zlib.createGzip({ level: 9 });
  const masks = path.join(out, 'tour.masks.gz');
  const maskOut = fs.createWriteStream(masks);
  gz.pipe(maskOut);
  const instances = makeInstances(o);
  const frames: FrameTruth[] = [];
  const n = Math.round(o.seconds * o.fps);
  // Category masks as grayscale PNGs (pixel value = category id, 0 = background) for in-context segmentation.
  const maskDir = path.join(out, 'masks');
  fs.mkdirSync(maskDir, { recursive: true });
  const category = new Uint8Array(256);
  for (const inst of instances) category[inst.id] = inst.category;
  for (let i = 0; i < n; i++) {
    const f = renderFrame(o, instances, i);
    if (i % o.fps === 0) {
      const cat = f.mask.map((id) => category[id] as number);
      fs.writeFileSync(
        path.join(maskDir, `${String(i).padStart(4, '0')}.png`),
        encodePng(cat, o.width, o.height, 9, 1),
      );
    }
    if (!ff.stdin.write(f.rgb)) await new Promise((r) => ff.stdin.once('drain', r));
    gz.write(f.mask);
    frames.push(f.truth);
  }
  ff.stdin.end();
  gz.end();
  await Promise.all([done, new Promise<void>((r) => maskOut.on('close', () => r()))]);
  const truth = path.join(out, 'tour.json');
  fs.writeFileSync(
    truth,
    JSON.stringify({
      generator: 'tools/synth-tour.ts',
      options: o,
      categories: CATEGORIES,
      instances: instances.map(({ id, category }) => ({ id, category })),
      frames,
    }),
  );
  return { video, masks, truth };
}

if (import.meta.url === `file://${process.argv[1]}`) {
  const { values, positionals } = parseArgs({
    allowPositionals: true,
    options: {
      seconds: { type: 'string', default: '20' },
      fps: { type: 'string', default: '10' },
      width: { type: 'string', default: '320' },
      height: { type: 'string', default: '240' },
      seed: { type: 'string', default: '1' },
      objects: { type: 'string', default: '4' },
    },
  });
  const out = positionals[0] ?? 'tests/fixtures/synthetic';
  const o: TourOptions = {
    width: Number(values.width),
    height: Number(values.height),
    fps: Number(values.fps),
    seconds: Number(values.seconds),
    seed: Number(values.seed),
    objectsPerCategory: Number(values.objects),
  };
  const t0 = performance.now();
  const files = await writeTour(out, o);
  console.log(`wrote ${Object.values(files).join(', ')} in ${((performance.now() - t0) / 1000).toFixed(1)} s`);
}
