/**
 * Tracking quality on the synthetic tour (ground-truth instance masks): for each ground-truth object, the mean IoU
 * over the frames where it is visible of its best-matching track (patch-grid masks), averaged over objects — Dora's
 * discovery + cross-attention propagation vs a baseline that thresholds each frame's attention of the same heads
 * without propagation. Features: a ViT-S/16 at initialisation (no pretrained weights exist here), or `--model F`.
 */
import fs from 'node:fs';
import path from 'node:path';
import zlib from 'node:zlib';
import { Rng } from '../native/base/rng.js';
import { loadRegisteredModel } from '../native/features/extract.js';
import { FrameStore } from '../native/media/frame-store.js';
import { attentionMasks } from '../native/models/dora.js';
import { encodeSafetensors } from '../native/models/safetensors.js';
import { presetConfig, vitParamShapes } from '../native/models/vit.js';
import { AttentionExtractor } from '../native/track/attention.js';
import { initParams } from '../native/train/train-dino.js';
import { tempEngine } from './engine.js';

const ROOT = path.resolve(import.meta.dirname, '..');
const FIX = path.join(ROOT, 'tests', 'fixtures', 'synthetic');

/** Grid masks of each ground-truth instance: a cell belongs to an instance covering at least half of it. */
function gtGrid(
  mask: Uint8Array,
  W: number,
  H: number,
  { gridH, gridW }: { gridH: number; gridW: number },
): Map<number, Uint8Array> {
  const out = new Map<number, Uint8Array>();
  for (let gy = 0; gy < gridH; gy++) {
    for (let gx = 0; gx < gridW; gx++) {
      const counts = new Map<number, number>();
      const y0 = Math.floor((gy * H) / gridH);
      const y1 = Math.floor(((gy + 1) * H) / gridH);
      const x0 = Math.floor((gx * W) / gridW);
      const x1 = Math.floor(((gx + 1) * W) / gridW);
      for (let y = y0; y < y1; y++)
        for (let x = x0; x < x1; x++)
          counts.set(mask[y * W + x] as number, (counts.get(mask[y * W + x] as number) ?? 0) + 1);
      const cells = (y1 - y0) * (x1 - x0);
      for (const [id, c] of counts) {
        if (id === 0 || c < cells / 2) continue;
        const m = out.get(id) ?? new Uint8Array(gridH * gridW);
        out.set(id, m);
        m[gy * gridW + gx] = 1;
      }
    }
  }
  return out;
}

function iou(a: Uint8Array, b: Uint8Array): number {
  let i = 0;
  let u = 0;
  for (let k = 0; k < a.length; k++) {
    if (a[k] && b[k]) i++;
    if (a[k] || b[k]) u++;
  }
  return u ? i / u : 0;
}

/** Mean over ground-truth objects of the best track's mean IoU over the frames where the object is visible. */
function bestMatchIoU(gt: Map<number, Uint8Array>[], tracks: Uint8Array[][]): number {
  const ids = new Set(gt.flatMap((g) => [...g.keys()]));
  const scores: number[] = [];
  for (const id of ids) {
    const frames = gt
      .map((g, f) => ({ f, m: g.get(id) }))
      .filter((x): x is { f: number; m: Uint8Array } => Boolean(x.m));
    let best = 0;
    for (let c = 0; c < (tracks[0]?.length ?? 0); c++) {
      const s = frames.reduce((acc, { f, m }) => acc + iou(m, tracks[f]?.[c] as Uint8Array), 0) / frames.length;
      best = Math.max(best, s);
    }
    scores.push(best);
  }
  return scores.reduce((a, b) => a + b, 0) / scores.length;
}

export async function benchTrack(args: string[] = []): Promise<Record<string, unknown>> {
  /** A given encoder (e.g. models/default/…safetensors) instead of a ViT-S/16 at initialisation. */
  const given = args.includes('--model') ? args[args.indexOf('--model') + 1] : undefined;
  const { work, engine, call, close } = await tempEngine('flaneur-bench-track-');
  try {
    const { project, runner } = engine.requireProject();
    await call('library.add', {
      paths: [path.join(FIX, 'tour.mp4')],
      sampling: { policy: 'fps', fps: 2 },
      frameSize: { mode: 'short-side', size: 240 },
    });
    await runner.idle();
    const media = project.media.list().items[0];
    if (!media?.frameWidth || !media.frameHeight) throw new Error('no media');
    let file = given ? path.resolve(given) : path.join(work, 'vit.safetensors');
    if (!given) {
      const cfg = presetConfig('vit_s16');
      const shapes = vitParamShapes(cfg);
      file = path.join(work, 'vit.safetensors');
      fs.writeFileSync(
        file,
        encodeSafetensors(
          new Map(
            [...initParams(shapes, new Rng(3))].map(([k, v]) => [k, { shape: shapes.get(k) as number[], data: v }]),
          ),
          { heads: '6' },
        ),
      );
    }
    const model = (await call('models.import', { path: file })) as { id: number };
    const t0 = performance.now();
    await call('track.start', { modelId: model.id, mediaId: media.id, objects: 3, seed: 0 });
    await runner.idle();
    const seconds = (performance.now() - t0) / 1000;
    const run = project.tracks.run(1);
    if (!run) throw new Error('no track run');
    const grid = run.grid;
    const cells = grid.gridH * grid.gridW;
    const heads = (run.params as { heads: number[] }).heads;
    const W = media.frameWidth;
    const H = media.frameHeight;
    const masks = zlib.gunzipSync(fs.readFileSync(path.join(FIX, 'tour.masks.gz')));
    const gt = [...Array(media.frameCount).keys()].map((f) =>
      gtGrid(masks.subarray(f * 5 * W * H, (f * 5 + 1) * W * H), W, H, grid),
    );
    const boxes = project.tracks.boxes(run.id);
    const ours = [...Array(media.frameCount).keys()].map((f) =>
      heads.map((_, c) => boxes.find((b) => b.frameIdx === f && b.object === c + 1)?.mask ?? new Uint8Array(cells)),
    );
    // Baseline: the same heads' attention on each frame, thresholded, no propagation.
    const ex = await AttentionExtractor.create(loadRegisteredModel(project, model.id).model, 224, undefined, {
      width: W,
      height: H,
    });
    const store = new FrameStore(project.cacheDir);
    const base: Uint8Array[][] = [];
    for (let f = 0; f < media.frameCount; f++) {
      const a = await ex.run({ width: W, height: H, data: store.read(media.id, f, W * H * 3) });
      const m = attentionMasks(a.attention, heads, cells);
      base.push(heads.map((_, c) => m.subarray(c * cells, (c + 1) * cells)));
    }
    await ex.release();
    const r = (x: number) => Number((100 * x).toFixed(2));
    return {
      model: given ? path.relative(ROOT, path.resolve(given)) : 'vit_s16 at initialisation',
      frames: media.frameCount,
      objects_gt: new Set(gt.flatMap((g) => [...g.keys()])).size,
      tracks: heads.length,
      heads,
      grid,
      mean_best_iou_dora: r(bestMatchIoU(gt, ours)),
      mean_best_iou_attention_baseline: r(bestMatchIoU(gt, base)),
      s_per_frame: Number((seconds / media.frameCount).toFixed(3)),
    };
  } finally {
    await close();
  }
}
