/**
 * Data for tools/dora_scale_reference.py, the PyTorch reference of the DINO-vs-Dora comparison of
 * `npm run bench -- segment --compare N --real` at budgets this machine's CPU cannot reach: the same frames (the
 * synthetic tour at 10 fps, the sample clip at 1 fps, 480x360, sampled as the ingest samples them) as JPEGs, and the
 * same evaluation labels (the tour's class masks of its bank and held-out frames; the hand labels of the clip's
 * 10 s, 40 s and 70 s frames) as raw uint8 maps.
 *
 *   node --import tsx tools/dora-scale-data.ts [OUT_DIR]     (default .tmp/dora-scale)
 */
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import zlib from 'node:zlib';
import { VTEST, vtestLabels } from '../bench/vtest-labels.js';
import { SAMPLE_VIDEO } from '../native/engine/engine.js';
import { findBinaries } from '../native/media/ffmpeg.js';

const ROOT = path.resolve(import.meta.dirname, '..');
const out = path.resolve(process.argv[2] ?? path.join(ROOT, '.tmp', 'dora-scale'));
const FIX = path.join(ROOT, 'tests', 'fixtures', 'synthetic');
const { ffmpeg } = findBinaries();

const frames = (video: string, dir: string, filter: string) => {
  fs.rmSync(dir, { recursive: true, force: true });
  fs.mkdirSync(dir, { recursive: true });
  execFileSync(ffmpeg.path, [
    '-loglevel',
    'error',
    '-i',
    video,
    '-vf',
    filter,
    '-q:v',
    '2',
    path.join(dir, '%04d.jpg'),
  ]);
  return fs.readdirSync(dir).length;
};
const tourFrames = frames(path.join(FIX, 'tour.mp4'), path.join(out, 'tour'), 'fps=fps=10:round=near');
const realFrames = frames(
  SAMPLE_VIDEO,
  path.join(out, 'real'),
  `fps=fps=1:round=near,scale=${VTEST.width}:${VTEST.height}`,
);

// The tour's class masks (instance id -> category), for bench/segment.ts's bank and held-out frames.
const truth = JSON.parse(fs.readFileSync(path.join(FIX, 'tour.json'), 'utf8')) as {
  options: { width: number; height: number };
  instances: { id: number; category: number }[];
};
const masks = zlib.gunzipSync(fs.readFileSync(path.join(FIX, 'tour.masks.gz')));
const cat = new Uint8Array(256);
for (const i of truth.instances) cat[i.id] = i.category;
const { width: W, height: H } = truth.options;
const bank = [40, 120];
const held = Array.from({ length: 20 }, (_, i) => 5 + 10 * i).filter((f) => !bank.includes(f));
fs.mkdirSync(path.join(out, 'labels'), { recursive: true });
for (const f of [...bank, ...held]) {
  const m = masks.subarray(f * W * H, (f + 1) * W * H);
  fs.writeFileSync(
    path.join(out, 'labels', `tour_${f}.u8`),
    Uint8Array.from(m, (id) => cat[id] as number),
  );
}
const labels = vtestLabels();
for (const s of labels.seconds) fs.writeFileSync(path.join(out, 'labels', `real_${s}.u8`), labels.mask(s));

fs.writeFileSync(
  path.join(out, 'meta.json'),
  JSON.stringify(
    {
      generator: 'tools/dora-scale-data.ts',
      tour: { dir: 'tour', frames: tourFrames, fps: 10, width: W, height: H, bank, eval: held },
      tour_classes: ['background', 'disc', 'box', 'kite'],
      real: {
        dir: 'real',
        frames: realFrames,
        fps: 1,
        width: VTEST.width,
        height: VTEST.height,
        bank: [10],
        eval: [40, 70],
      },
      real_classes: labels.classes,
    },
    null,
    1,
  ),
);
console.log(`${out}: tour ${tourFrames} frames, clip ${realFrames} frames`);
