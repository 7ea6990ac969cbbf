/**
 * Mask propagation on synthetic videos (tools/synth/propagate.ts: textured objects that move, grow and shrink,
 * leave the frame and come back, and occlude one another), written in the DAVIS layout (JPEG frames, palette PNG
 * masks) and read back from it, so `flaneur eval davis` on the same folder gives the same J&F (tested). Figures on
 * the held-out seeds (the settings were chosen on the tuning seeds, reported apart under `tuning`):
 *
 * - `jf_propagate`: DINO's protocol (context 7, top-5, radius 12, τ 0.1) from the first frame's masks;
 * - `jf_copy_first`: the first mask copied to every frame (the scenes are hard enough that it scores < 0.5);
 * - `jf_bank_only`: what Flaneur did before: a Hummingbird bank (k 30, softmax(cos / 0.02)) of the first frame's
 *   patches, every frame segmented from it alone;
 * - `jf_ratio_vs_reference`: Flaneur's J&F / the PyTorch reference's (tools/propagate_reference.py) on the same
 *   features and masks;
 * - `ms_per_frame`: feature extraction + propagation + upsampling per frame, on this machine.
 *
 *   npm run bench -- propagate [--model F.safetensors] [--size 480] [--frames 40] [--no-reference] [--no-tuning] [--tuning-only]
 */
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import zlib from 'node:zlib';
import { ExactKnn, l2normalizeRows } from '../native/features/knn.js';
import { type ObjectScore, scoreSequence, summarise } from '../native/metrics/video.js';
import { importViTFile } from '../native/models/import-vit.js';
import { DEFAULT_RUNTIME } from '../native/runtime/session.js';
import { labelledBank, segmentPatches } from '../native/segment/hummingbird.js';
import { patchLabels } from '../native/segment/labels.js';
import { ContextSimilarity } from '../native/track/affinity.js';
import { davisSequences } from '../native/track/davis.js';
import { ImageFolderSource } from '../native/track/frames.js';
import { gridLabels, LabelPropagator, labelsToMask, PROPAGATE_DEFAULTS } from '../native/track/propagate.js';
import { loadExtractor, readInstanceMask } from '../native/track/propagate-job.js';
import { HELD_OUT_SEEDS, renderScene, TUNING_SEEDS, writeDavisFolder } from '../tools/synth/propagate.js';

const ROOT = path.resolve(import.meta.dirname, '..');
export const DEFAULT_MODEL = path.join(ROOT, 'models', 'default', 'flaneur-vit-ti16-dora-vtest.safetensors');

export interface SceneSetFigures {
  jf_propagate: number;
  jf_copy_first: number;
  jf_bank_only: number;
  jf_reference: number | null;
  jf_ratio_vs_reference: number | null;
  ms_per_frame: number;
  j_propagate: number;
  f_propagate: number;
  sequences: Record<string, { propagate: number; copy_first: number; bank_only: number; reference: number | null }>;
  frames: number;
}

/**
 * The figures on the sequences of a DAVIS-layout folder: frames decoded from its JPEGs, masks from its PNGs, the
 * same protocol (every frame but the first and the last scored) as `eval.davis`.
 */
export async function propagationFigures(
  root: string,
  o: { model: string; size: number; reference: boolean; work: string },
): Promise<SceneSetFigures> {
  const model = importViTFile(o.model);
  const knn = new ExactKnn(() => DEFAULT_RUNTIME);
  const all = {
    prop: [] as ObjectScore[],
    copy: [] as ObjectScore[],
    bank: [] as ObjectScore[],
    ref: [] as ObjectScore[],
  };
  const sequences: SceneSetFigures['sequences'] = {};
  let ms = 0;
  let frames = 0;
  try {
    for (const seq of davisSequences(root, '480p')) {
      const source = await ImageFolderSource.open(seq.frames, /\.jpe?g$/i);
      const { width: W, height: H } = source;
      const truth: Uint8Array[] = [];
      for (let i = 0; i < source.count; i++)
        truth.push(await readInstanceMask(path.join(seq.annotations, `${String(i).padStart(5, '0')}.png`), W, H));
      const objects = Math.max(...(truth[0] as Uint8Array));
      const C = objects + 1;
      const images = [];
      for (let i = 0; i < source.count; i++) images.push(await source.read(i));
      const extractor = await loadExtractor(model, o.size, DEFAULT_RUNTIME, { width: W, height: H });
      const shape = extractor.shapeOf(W, H);
      const grid = { gridH: shape.gridH, gridW: shape.gridW };
      const dim = model.config.dim;
      const target = { inputWidth: shape.width, inputHeight: shape.height, width: W, height: H };
      // Propagation, timed from the decoded frame to the mask (extraction included).
      const similarity = new ContextSimilarity(dim, DEFAULT_RUNTIME);
      const t0 = performance.now();
      const feats: Float32Array[] = [];
      const first = (await extractor.run([images[0] as (typeof images)[number]]))[0]?.patches as Float32Array;
      feats.push(first);
      const p = new LabelPropagator(grid, dim, C, first, gridLabels(truth[0] as Uint8Array, W, H, grid, C));
      const pred: Uint8Array[] = [truth[0] as Uint8Array];
      for (let i = 1; i < source.count; i++) {
        const f = (await extractor.run([images[i] as (typeof images)[number]]))[0]?.patches as Float32Array;
        feats.push(f);
        pred.push(labelsToMask(await p.stepWith(f, similarity.run), grid, C, target));
      }
      ms += performance.now() - t0;
      await similarity.release();
      frames += source.count - 1;
      await extractor.release();
      const prop = scoreSequence(pred, truth, W, H, objects);
      const copy = scoreSequence(
        truth.map(() => truth[0] as Uint8Array),
        truth,
        W,
        H,
        objects,
      );
      // Today's bank-only segmentation: a Hummingbird bank of the first frame's patches.
      const bank = labelledBank(
        l2normalizeRows(Float32Array.from(first), dim),
        patchLabels(truth[0] as Uint8Array, W, H, grid, C),
        dim,
        C,
      );
      const bankPred: Uint8Array[] = [truth[0] as Uint8Array];
      for (let i = 1; i < source.count; i++)
        bankPred.push(
          (
            await segmentPatches(
              knn,
              bank,
              l2normalizeRows(Float32Array.from(feats[i] as Float32Array), dim),
              grid,
              W,
              H,
            )
          ).mask,
        );
      const bankScore = scoreSequence(bankPred, truth, W, H, objects);
      let refJF: number | null = null;
      if (o.reference) {
        const ref = referenceScore(path.join(o.work, `reference-${seq.name}`), feats, truth, {
          ...PROPAGATE_DEFAULTS,
          frames: source.count,
          width: W,
          height: H,
          gridH: grid.gridH,
          gridW: grid.gridW,
          inputWidth: shape.width,
          inputHeight: shape.height,
          dim,
          classes: C,
        });
        all.ref.push(...ref.objects);
        refJF = ref.JF;
      }
      all.prop.push(...prop.objects);
      all.copy.push(...copy.objects);
      all.bank.push(...bankScore.objects);
      sequences[seq.name] = {
        propagate: r3(prop.JF),
        copy_first: r3(copy.JF),
        bank_only: r3(bankScore.JF),
        reference: refJF === null ? null : r3(refJF),
      };
      console.error(
        `propagate: ${seq.name}: J&F propagate ${r3(prop.JF)}, copy-first ${r3(copy.JF)}, bank-only ${r3(bankScore.JF)}${refJF === null ? '' : `, reference ${r3(refJF)}`}`,
      );
    }
  } finally {
    await knn.release();
  }
  const prop = summarise(all.prop);
  const ref = all.ref.length ? summarise(all.ref) : null;
  return {
    jf_propagate: r4(prop.JF),
    jf_copy_first: r4(summarise(all.copy).JF),
    jf_bank_only: r4(summarise(all.bank).JF),
    jf_reference: ref ? r4(ref.JF) : null,
    jf_ratio_vs_reference: ref ? r4(prop.JF / ref.JF) : null,
    ms_per_frame: Number((ms / Math.max(1, frames)).toFixed(1)),
    j_propagate: r4(prop.J),
    f_propagate: r4(prop.F),
    sequences,
    frames,
  };
}

/** The PyTorch reference (tools/propagate_reference.py) on the same features and masks. */
function referenceScore(
  dir: string,
  feats: Float32Array[],
  truth: Uint8Array[],
  meta: Record<string, number>,
): { JF: number; objects: ObjectScore[] } {
  fs.mkdirSync(dir, { recursive: true });
  const all = new Float32Array(feats.reduce((n, f) => n + f.length, 0));
  let at = 0;
  for (const f of feats) {
    all.set(f, at);
    at += f.length;
  }
  fs.writeFileSync(path.join(dir, 'features.f32'), Buffer.from(all.buffer));
  const masks = new Uint8Array(truth.reduce((n, m) => n + m.length, 0));
  at = 0;
  for (const m of truth) {
    masks.set(m, at);
    at += m.length;
  }
  fs.writeFileSync(path.join(dir, 'masks.u8.gz'), zlib.gzipSync(masks, { level: 1 }));
  fs.writeFileSync(path.join(dir, 'meta.json'), JSON.stringify(meta));
  execFileSync('/usr/bin/python3', [path.join(ROOT, 'tools', 'propagate_reference.py'), 'propagate', dir], {
    stdio: ['ignore', 'ignore', 'inherit'],
  });
  return JSON.parse(fs.readFileSync(path.join(dir, 'reference.json'), 'utf8')) as {
    JF: number;
    objects: ObjectScore[];
  };
}

const r3 = (x: number) => Number(x.toFixed(3));
const r4 = (x: number) => Number(x.toFixed(4));

/** Writes the scenes of these seeds as a DAVIS folder (sequence `seed-<seed>`). */
export async function writeScenes(root: string, seeds: readonly number[], frames: number): Promise<string> {
  return writeDavisFolder(
    root,
    seeds.map((seed) => ({ name: `seed-${seed}`, scene: renderScene(seed, { frames }) })),
  );
}

export async function benchPropagate(args: string[]): Promise<Record<string, unknown>> {
  const opt = (name: string) => (args.includes(name) ? args[args.indexOf(name) + 1] : undefined);
  const model = path.resolve(opt('--model') ?? DEFAULT_MODEL);
  const size = Number(opt('--size') ?? 480);
  const frames = Number(opt('--frames') ?? 40);
  const reference = !args.includes('--no-reference');
  const work = fs.mkdtempSync(path.join(os.tmpdir(), 'flaneur-bench-propagate-'));
  try {
    // While choosing settings: the tuning seeds only, never the held-out ones.
    if (args.includes('--tuning-only'))
      return {
        tuning: await propagationFigures(await writeScenes(path.join(work, 'tuning'), TUNING_SEEDS, frames), {
          model,
          size,
          reference: false,
          work,
        }),
      };
    const heldOut = await propagationFigures(await writeScenes(path.join(work, 'held-out'), HELD_OUT_SEEDS, frames), {
      model,
      size,
      reference,
      work,
    });
    const tuning = args.includes('--no-tuning')
      ? null
      : await propagationFigures(await writeScenes(path.join(work, 'tuning'), TUNING_SEEDS, frames), {
          model,
          size,
          reference: false,
          work,
        });
    return {
      dataset: `tools/synth/propagate.ts, 320x180, ${frames} frames, 3 objects; held-out seeds ${HELD_OUT_SEEDS.join(', ')} (tuning seeds ${TUNING_SEEDS.join(', ')} apart)`,
      model: path.relative(ROOT, model),
      size,
      params: PROPAGATE_DEFAULTS,
      ...heldOut,
      beats_baselines: heldOut.jf_propagate > heldOut.jf_copy_first && heldOut.jf_propagate > heldOut.jf_bank_only,
      ...(tuning
        ? {
            tuning: {
              jf_propagate: tuning.jf_propagate,
              jf_copy_first: tuning.jf_copy_first,
              jf_bank_only: tuning.jf_bank_only,
            },
          }
        : {}),
    };
  } finally {
    fs.rmSync(work, { recursive: true, force: true });
  }
}
