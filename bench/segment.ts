/**
 * In-context segmentation (Hummingbird protocol) on the synthetic walking tour with its ground-truth masks:
 * a memory bank from 2 labelled frames, 20 held-out frames segmented, mIoU for the project's features vs two
 * baselines (majority class; kNN on raw colour patches). Features: a ViT-S/16 at initialisation (no pretrained
 * weights can be had here), and optionally ViT-Ti/16s trained on the tour's frames: `--trained STEPS` (at
 * initialisation and plain DINO) or `--compare STEPS` (also Dora, same budget). Training sees every frame of the
 * tour without labels (transductive, like Dora on its walking tour); labels come only from the 2 bank frames.
 *
 * Aspect ratio (`wideTour`): a 16:9 tour rendered for the run (480x270, tools/synth-tour.ts), the same encoder and
 * the same bank frames, features squashed to a square (`miou_square_S`) and at the frame's aspect ratio
 * (`miou_aspect_S`) at input sizes 224 and 448 (`--wide-sizes 224,448`; the plain `miou_square` / `miou_aspect` are
 * at 224) for the bundled default model (or `--model`); `wide_tour.miou_by_encoder` also has the main ViT-S/16.
 * `--wide-seconds N` (16 by default, frames at 1 fps); `--no-wide` skips it, `--wide-only` runs only it.
 */
import fs from 'node:fs';
import path from 'node:path';
import zlib from 'node:zlib';
import { Rng } from '../native/base/rng.js';
import { DEFAULT_MODEL_DIR, SAMPLE_VIDEO } from '../native/engine/engine.js';
import { frameGrid } from '../native/features/extract.js';
import { ExactKnn, f16RowsToF32, l2normalizeRows } from '../native/features/knn.js';
import { FrameStore } from '../native/media/frame-store.js';
import { resizeRgb } from '../native/models/preprocess.js';
import { encodeSafetensors } from '../native/models/safetensors.js';
import { presetConfig, vitParamShapes } from '../native/models/vit.js';
import { labelledBank, segmentPatches } from '../native/segment/hummingbird.js';
import { IoUMeter, type PatchGrid, patchLabels } from '../native/segment/labels.js';
import { initParams } from '../native/train/train-dino.js';
import { writeTour } from '../tools/synth-tour.js';
import { type TempEngine, tempEngine } from './engine.js';
import { VTEST, vtestLabels } from './vtest-labels.js';

const ROOT = path.resolve(import.meta.dirname, '..');

/** The small ViT-Ti/16 training recipe of the comparisons and of the default model (steps and method aside). */
export const TI16_RECIPE = {
  init: { kind: 'scratch', preset: 'vit_ti16' },
  batch: 8,
  globalSize: 96,
  localSize: 48,
  localCrops: 2,
  warmupSteps: 20,
  outDim: 1024,
  headHidden: 512,
  bottleneck: 128,
  checkpointEvery: 100,
  seed: 1,
} as const;
const FIX = path.join(ROOT, 'tests', 'fixtures', 'synthetic');
const CLASSES = ['background', 'disc', 'box', 'kite'];

interface Truth {
  options: { width: number; height: number };
  instances: { id: number; category: number }[];
}

function groundTruth(): { masks: Buffer; truth: Truth; categoryMask: (f: number) => Uint8Array } {
  const truth = JSON.parse(fs.readFileSync(path.join(FIX, 'tour.json'), 'utf8')) as Truth;
  const masks = zlib.gunzipSync(fs.readFileSync(path.join(FIX, 'tour.masks.gz')));
  const cat = new Uint8Array(256);
  for (const i of truth.instances) cat[i.id] = i.category;
  const { width: W, height: H } = truth.options;
  return {
    masks,
    truth,
    categoryMask: (f) => {
      const m = masks.subarray(f * W * H, (f + 1) * W * H);
      const out = new Uint8Array(W * H);
      for (let i = 0; i < out.length; i++) out[i] = cat[m[i] as number] as number;
      return out;
    },
  };
}

export async function benchSegment(args: string[]): Promise<Record<string, unknown>> {
  const compare = args.includes('--compare');
  const flag = compare ? '--compare' : '--trained';
  const trainedSteps = args.includes(flag) ? Number(args[args.indexOf(flag) + 1] ?? 300) : 0;
  const trainSeconds: Record<string, number> = {};
  /** Base learning rate (scaled by views/256 as DINO); default the trainer's 5e-4. */
  const lr = args.includes('--lr') ? Number(args[args.indexOf('--lr') + 1]) : undefined;
  /** DINO's freeze_last_layer, in steps. */
  const freeze = args.includes('--freeze') ? Number(args[args.indexOf('--freeze') + 1]) : undefined;
  /** KoLeo regulariser weight (DINOv2: 0.1). */
  const koleo = args.includes('--koleo') ? Number(args[args.indexOf('--koleo') + 1]) : undefined;
  /**
   * Also the real clip (samples/vtest-street.mp4 at 1 fps, 480x360), evaluated on its hand-labelled frames
   * (bench/vtest-labels.ts: bank from the 10 s frame, scored on 40 s and 70 s). Its frames join the training data.
   */
  const real = args.includes('--real');
  /** Extra input size(s) at which every model is also evaluated (e.g. the training crop size), comma-separated. */
  const extraSizes = args.includes('--eval-size')
    ? String(args[args.indexOf('--eval-size') + 1])
        .split(',')
        .map(Number)
        .filter((x) => x > 0 && x !== 224)
    : [];
  const { work, engine, call, close } = await tempEngine('flaneur-bench-segment-');
  const knn = new ExactKnn();
  const wideSizes = args.includes('--wide-sizes')
    ? String(args[args.indexOf('--wide-sizes') + 1])
        .split(',')
        .map(Number)
        .filter((x) => x >= 16)
    : [224, 448];
  const wideSeconds = args.includes('--wide-seconds') ? Number(args[args.indexOf('--wide-seconds') + 1]) : 16;
  const given = args.includes('--model') ? args[args.indexOf('--model') + 1] : undefined;
  /** Encoders of the aspect comparison: the bundled default model (or --model) first, then the main ViT-S/16. */
  const wideEncoders = () => [
    given
      ? { key: 'given', file: path.resolve(given) }
      : { key: 'default_model', file: path.join(DEFAULT_MODEL_DIR, 'flaneur-vit-ti16-dora-vtest.safetensors') },
    { key: 'vit_s16_init', file: path.join(work, 'vit_s16_init.safetensors') },
  ];
  try {
    if (args.includes('--wide-only')) {
      writeVitS16Init(work);
      return await wideTour({ work, engine, call }, knn, wideEncoders(), wideSizes, wideSeconds);
    }
    const runner = engine.requireProject().runner;
    const project = engine.requireProject().project;
    await call('library.add', {
      paths: [path.join(FIX, 'tour.mp4')],
      sampling: { policy: 'fps', fps: 10 },
      frameSize: { mode: 'short-side', size: 240 },
    });
    await runner.idle();
    const media = project.media.list().items[0];
    if (!media?.frameWidth || !media.frameHeight) throw new Error('the tour did not ingest');
    if (real) {
      await call('library.add', {
        paths: [SAMPLE_VIDEO],
        sampling: { policy: 'fps', fps: 1 },
        frameSize: { mode: 'short-side', size: VTEST.height },
      });
      await runner.idle();
    }
    const clip = real ? project.media.list().items.find((m) => m.id !== media.id) : undefined;
    if (real && (clip?.frameWidth !== VTEST.width || clip?.frameHeight !== VTEST.height))
      throw new Error('the sample clip did not ingest at 480x360');
    const { categoryMask, truth } = groundTruth();
    const W = media.frameWidth;
    const H = media.frameHeight;
    if (W !== truth.options.width || H !== truth.options.height)
      throw new Error('frame size differs from the ground truth');
    const bankFrames = [40, 120];
    const evalFrames = Array.from({ length: 20 }, (_, i) => 5 + 10 * i).filter((f) => !bankFrames.includes(f));
    const C = CLASSES.length;
    const store = new FrameStore(project.cacheDir);

    const evaluate = async (vectorsOf: (f: number) => Float32Array, grid: PatchGrid, dim: number) => {
      const vecs: Float32Array[] = [];
      const labs: Float32Array[] = [];
      for (const f of bankFrames) {
        vecs.push(vectorsOf(f));
        labs.push(patchLabels(categoryMask(f), W, H, grid, C));
      }
      const bank = labelledBank(concat(vecs), concat(labs), dim, C);
      const meter = new IoUMeter(C);
      for (const f of evalFrames) {
        const { mask } = await segmentPatches(knn, bank, vectorsOf(f), grid, W, H);
        meter.add(mask, categoryMask(f));
      }
      return meter;
    };

    // 1. The project's features: models registered in the project, extracted by the features job.
    const results: Record<string, { miou: number; perClass: (number | null)[] }> = {};
    const realResults: Record<string, { miou: number; perClass: (number | null)[] }> = {};
    const models: { key: string; id: number }[] = [];
    const file = writeVitS16Init(work);
    models.push({
      key: 'vit_s16_init',
      id: ((await call('models.import', { path: file, name: 'ViT-S/16 at initialisation' })) as { id: number }).id,
    });
    // A given encoder (--model FILE.safetensors), e.g. the bundled default model.
    if (given)
      models.push({
        key: 'given',
        id: ((await call('models.import', { path: path.resolve(given), name: 'Given model' })) as { id: number }).id,
      });
    // Trained ViT-Ti/16s on the tour's frames with the same budget (steps, frames per step, crop sizes): plain
    // DINO and, with --compare, Dora (clips of 4 frames 0.5 s apart, 3 objects); plus the same architecture at
    // initialisation as the floor.
    if (trainedSteps > 0) {
      const tiInit = initParams(vitParamShapes(presetConfig('vit_ti16')), new Rng(3));
      const tiFile = path.join(work, 'vit_ti16_init.safetensors');
      const tiShapes = vitParamShapes(presetConfig('vit_ti16'));
      fs.writeFileSync(
        tiFile,
        encodeSafetensors(new Map([...tiInit].map(([k, v]) => [k, { shape: tiShapes.get(k) as number[], data: v }])), {
          heads: '3',
        }),
      );
      models.push({
        key: 'vit_ti16_init',
        id: ((await call('models.import', { path: tiFile, name: 'ViT-Ti/16 at initialisation' })) as { id: number }).id,
      });
      const variants: { key: string; dora?: Record<string, number> }[] = [{ key: `vit_ti16_dino_${trainedSteps}` }];
      if (compare)
        variants.push({ key: `vit_ti16_dora_${trainedSteps}`, dora: { framesPerClip: 4, stride: 5, objects: 3 } });
      for (const v of variants) {
        const t0 = performance.now();
        const job = (await call('train.start', {
          ...TI16_RECIPE,
          steps: trainedSteps,
          ...(lr ? { lr } : {}),
          ...(freeze ? { freezeLastLayerSteps: freeze } : {}),
          ...(koleo ? { koleo } : {}),
          ...(v.dora ? { dora: v.dora } : {}),
        })) as { id: number };
        await runner.idle();
        const state = (await call('jobs.get', { id: job.id })) as { state: string; error?: { message: string } };
        if (state.state !== 'done') throw new Error(`training ${v.key}: ${state.error?.message ?? state.state}`);
        trainSeconds[v.key] = Number(((performance.now() - t0) / 1000).toFixed(1));
        await new Promise((r) => setTimeout(r, 500));
        const trained = ((await call('models.list', {})) as { id: number; name: string }[]).find((m) =>
          m.name.includes(`job ${job.id}`),
        );
        if (!trained) throw new Error(`the model of ${v.key} was not registered`);
        models.push({ key: v.key, id: trained.id });
      }
    }
    for (const m of models) {
      for (const size of [224, ...extraSizes]) {
        const key = size === 224 ? m.key : `${m.key}@${size}`;
        await call('features.extract', { modelId: m.id, size });
        await runner.idle();
        const run = project.features.runs().find((r) => r.modelId === m.id && r.inputSize === size);
        if (!run) throw new Error('no feature run');
        const vectorsOf = (f: number) => {
          const feat = project.features.get(run.id, media.id, f);
          if (!feat) throw new Error(`no features for frame ${f}`);
          return l2normalizeRows(f16RowsToF32(feat.patches), run.dim);
        };
        const meter = await evaluate(vectorsOf, frameGrid(run, W, H), run.dim);
        results[key] = { miou: meter.mean(), perClass: meter.perClass() };
        console.error(`segment: ${key}: mIoU ${(100 * meter.mean()).toFixed(1)}`);
        if (clip) {
          const clipVectors = (f: number) => {
            const feat = project.features.get(run.id, clip.id, f);
            if (!feat) throw new Error(`no features for clip frame ${f}`);
            return l2normalizeRows(f16RowsToF32(feat.patches), run.dim);
          };
          const rm = await evaluateReal(knn, clipVectors, frameGrid(run, VTEST.width, VTEST.height), run.dim);
          realResults[key] = { miou: rm.mean(), perClass: rm.perClass() };
          console.error(`segment (real clip): ${key}: mIoU ${(100 * rm.mean()).toFixed(1)}`);
        }
      }
    }

    // 2. Raw colour patches: the 16x16x3 pixels of each patch of the same 224 px view, as a vector.
    const rawGrid = 14;
    const rawOf = (f: number) => {
      const img = resizeRgb({ width: W, height: H, data: store.read(media.id, f, W * H * 3) }, 224, 224, 'bilinear');
      const P = 16;
      const out = new Float32Array(rawGrid * rawGrid * P * P * 3);
      for (let gy = 0; gy < rawGrid; gy++)
        for (let gx = 0; gx < rawGrid; gx++)
          for (let y = 0; y < P; y++)
            for (let x = 0; x < P; x++)
              for (let c = 0; c < 3; c++)
                out[(((gy * rawGrid + gx) * P + y) * P + x) * 3 + c] =
                  (img.data[((gy * P + y) * 224 + gx * P + x) * 3 + c] as number) / 255;
      return l2normalizeRows(out, P * P * 3);
    };
    const raw = await evaluate(rawOf, { gridH: rawGrid, gridW: rawGrid }, 16 * 16 * 3);
    console.error(`segment: raw colour patches: mIoU ${(100 * raw.mean()).toFixed(1)}`);

    // 3. Majority class of the bank's pixels.
    const counts = new Float64Array(C);
    for (const f of bankFrames) for (const c of categoryMask(f)) counts[c] = (counts[c] as number) + 1;
    const majority = counts.indexOf(Math.max(...counts));
    const maj = new IoUMeter(C);
    for (const f of evalFrames) maj.add(new Uint8Array(W * H).fill(majority), categoryMask(f));

    const wide = args.includes('--no-wide')
      ? null
      : await wideTour({ work, engine, call }, knn, wideEncoders(), wideSizes, wideSeconds);

    const r = (x: number) => Number((100 * x).toFixed(2));
    const best = models[models.length - 1]?.key as string;
    return {
      dataset: 'tests/fixtures/synthetic (320x240, 4 classes incl. background)',
      bank_frames: bankFrames.length,
      eval_frames: evalFrames.length,
      k: 30,
      temperature: 0.02,
      input: 224,
      ...Object.fromEntries(Object.entries(results).map(([k, v]) => [`miou_${k}`, r(v.miou)])),
      miou_features: r(results[best]?.miou ?? 0),
      miou_raw_colour: r(raw.mean()),
      miou_majority: r(maj.mean()),
      per_class_features: results[best]?.perClass.map((x) => (x === null ? null : r(x))),
      ...(trainedSteps > 0
        ? {
            train_steps: trainedSteps,
            train_lr: lr ?? 5e-4,
            train_freeze_last_layer: freeze ?? 0,
            train_koleo: koleo ?? 0,
            train_seconds: trainSeconds,
          }
        : {}),
      per_class_raw_colour: raw.perClass().map((x) => (x === null ? null : r(x))),
      classes: CLASSES,
      ...(wide ?? {}),
      ...(real
        ? {
            real_clip: {
              dataset: 'samples/vtest-street.mp4 at 1 fps, hand-labelled frames (tests/fixtures/vtest-labels)',
              bank_seconds: [REAL_BANK],
              eval_seconds: REAL_EVAL,
              classes: vtestLabels().classes,
              ...Object.fromEntries(Object.entries(realResults).map(([k, v]) => [`miou_${k}`, r(v.miou)])),
              per_class: Object.fromEntries(
                Object.entries(realResults).map(([k, v]) => [k, v.perClass.map((x) => (x === null ? null : r(x)))]),
              ),
            },
          }
        : {}),
    };
  } finally {
    await knn.release();
    await close();
  }
}

const REAL_BANK = 10;
const REAL_EVAL = [40, 70];

/** Hummingbird on the real clip: a bank from the hand-labelled 10 s frame, scored on the 40 s and 70 s frames. */
async function evaluateReal(
  knn: ExactKnn,
  vectorsOf: (frame: number) => Float32Array,
  grid: PatchGrid,
  dim: number,
): Promise<IoUMeter> {
  const labels = vtestLabels();
  const C = labels.classes.length;
  const { width: W, height: H } = VTEST;
  // 1 fps sampling: the frame index is the second.
  const bank = labelledBank(vectorsOf(REAL_BANK), patchLabels(labels.mask(REAL_BANK), W, H, grid, C), dim, C);
  const meter = new IoUMeter(C);
  for (const t of REAL_EVAL) {
    const { mask } = await segmentPatches(knn, bank, vectorsOf(t), grid, W, H);
    meter.add(mask, labels.mask(t));
  }
  return meter;
}

/**
 * The same encoder and bank on a 16:9 tour, squashed to a square vs at the frame's aspect ratio, at each input size:
 * `miou_square_S`, `miou_aspect_S` (and the first size's as `miou_square`, `miou_aspect`), with the grids used.
 */
async function wideTour(
  t: Pick<TempEngine, 'work' | 'engine' | 'call'>,
  knn: ExactKnn,
  encoders: { key: string; file: string }[],
  sizes: number[],
  seconds: number,
): Promise<Record<string, unknown>> {
  const t0 = performance.now();
  const { call } = t;
  const runner = t.engine.requireProject().runner;
  const project = t.engine.requireProject().project;
  const W = 480;
  const H = 270;
  const FPS = 5;
  const dir = path.join(t.work, 'wide-tour');
  await writeTour(dir, { width: W, height: H, fps: FPS, seconds, seed: 7, objectsPerCategory: 4 });
  const before = new Set(project.media.list().items.map((m) => m.id));
  await call('library.add', {
    paths: [path.join(dir, 'tour.mp4')],
    sampling: { policy: 'fps', fps: 1 },
    frameSize: { mode: 'short-side', size: H },
  });
  await runner.idle();
  const media = project.media.list().items.find((m) => !before.has(m.id));
  if (media?.frameWidth !== W || media.frameHeight !== H) throw new Error('the 16:9 tour did not ingest at 480x270');
  const masks = zlib.gunzipSync(fs.readFileSync(path.join(dir, 'tour.masks.gz')));
  const truth = JSON.parse(fs.readFileSync(path.join(dir, 'tour.json'), 'utf8')) as Truth;
  const cat = new Uint8Array(256);
  for (const i of truth.instances) cat[i.id] = i.category;
  // Frames are sampled at 1 fps: frame i is the tour's frame i × FPS.
  const categoryMask = (f: number) =>
    Uint8Array.from(masks.subarray(f * FPS * W * H, (f * FPS + 1) * W * H), (v) => cat[v] as number);
  const frames = media.frameCount ?? seconds;
  const bankFrames = [Math.floor(frames / 4), Math.floor((3 * frames) / 4)];
  const evalFrames = Array.from({ length: frames }, (_, i) => i).filter((f) => !bankFrames.includes(f));
  const C = CLASSES.length;
  const byEncoder: Record<string, Record<string, number>> = {};
  const grids: Record<string, string> = {};
  for (const enc of encoders) {
    const modelId = (
      (await call('models.import', { path: enc.file, name: `Aspect comparison: ${enc.key}` })) as {
        id: number;
      }
    ).id;
    const out: Record<string, number> = {};
    for (const size of sizes) {
      for (const resize of ['square', 'aspect'] as const) {
        await call('features.extract', { modelId, size, resize, media: [media.id] });
        await runner.idle();
        const run = project.features
          .runs()
          .find(
            (r) =>
              r.modelId === modelId &&
              r.inputSize === size &&
              (r.preprocessing.resize === 'aspect') === (resize === 'aspect'),
          );
        if (!run) throw new Error(`no ${resize} feature run at ${size}`);
        const grid = frameGrid(run, W, H);
        const vectorsOf = (f: number) => {
          const feat = project.features.get(run.id, media.id, f);
          if (!feat) throw new Error(`no features for frame ${f}`);
          return l2normalizeRows(f16RowsToF32(feat.patches), run.dim);
        };
        const vecs: Float32Array[] = [];
        const labs: Float32Array[] = [];
        for (const f of bankFrames) {
          vecs.push(vectorsOf(f));
          labs.push(patchLabels(categoryMask(f), W, H, grid, C));
        }
        const bank = labelledBank(concat(vecs), concat(labs), run.dim, C);
        const meter = new IoUMeter(C);
        for (const f of evalFrames)
          meter.add((await segmentPatches(knn, bank, vectorsOf(f), grid, W, H)).mask, categoryMask(f));
        out[`${resize}_${size}`] = Number((100 * meter.mean()).toFixed(2));
        grids[`${resize}_${size}`] = `${grid.gridH}x${grid.gridW}`;
        console.error(
          `segment (16:9 tour): ${enc.key}, ${resize} at ${size}: ${grid.gridH}x${grid.gridW} patches, mIoU ${(100 * meter.mean()).toFixed(1)}`,
        );
      }
    }
    byEncoder[enc.key] = out;
  }
  const first = byEncoder[encoders[0]?.key as string] ?? {};
  return {
    miou_square: first[`square_${sizes[0]}`],
    miou_aspect: first[`aspect_${sizes[0]}`],
    ...Object.fromEntries(Object.entries(first).map(([k, v]) => [`miou_${k}`, v])),
    wide_tour: {
      dataset: `tools/synth-tour.ts ${W}x${H}, ${seconds} s at ${FPS} fps, seed 7, sampled at 1 fps (4 classes incl. background)`,
      encoder: encoders[0]?.key,
      bank_frames: bankFrames,
      eval_frames: evalFrames.length,
      sizes,
      grids,
      miou_by_encoder: byEncoder,
      seconds: Number(((performance.now() - t0) / 1000).toFixed(1)),
    },
  };
}

function writeVitS16Init(work: string): string {
  const cfg = presetConfig('vit_s16');
  const weights = initParams(vitParamShapes(cfg), new Rng(3));
  const file = path.join(work, 'vit_s16_init.safetensors');
  fs.writeFileSync(
    file,
    encodeSafetensors(
      new Map([...weights].map(([k, v]) => [k, { shape: vitParamShapes(cfg).get(k) as number[], data: v }])),
      { heads: '6' },
    ),
  );
  return file;
}

function concat(parts: Float32Array[]): Float32Array {
  const out = new Float32Array(parts.reduce((a, p) => a + p.length, 0));
  let o = 0;
  for (const p of parts) {
    out.set(p, o);
    o += p.length;
  }
  return out;
}
