/**
 * Mask propagation on synthetic videos (tools/synth/propagate.ts: textured objects that move, grow and shrink,
 * leave the frame and come back, and occlude one another), written in the DAVIS layout (JPEG frames, palette PNG
 * masks) and read back from it, so `flaneur eval davis` on the same folder gives the same J&F (tested). Figures on
 * the held-out seeds 104-111 (the settings were chosen on the tuning seeds, reported apart under `tuning`; the first
 * held-out set 101-103 was inspected per frame, so it is scored apart with `--with-inspected`):
 *
 * - `jf_propagate`: the product defaults (DINO's protocol with context 3 instead of 7 — top-5, radius 12, τ 0.1 — and
 *   lost objects re-identified, `reidentify` -0.05) from the first frame's masks; `jf_dino`: DINO's protocol exactly
 *   (context 7) on the same features;
 * - `jf_copy_first`: the first mask copied to every frame (the scenes are hard enough that it scores < 0.5);
 * - `jf_bank_only`: what Flaneur did before: a Hummingbird bank (k 30, softmax(cos / 0.02)) of the first frame's
 *   patches, every frame segmented from it alone;
 * - `jf_ratio_vs_reference`: Flaneur's J&F / the PyTorch reference's (tools/propagate_reference.py) on the same
 *   features and masks;
 * - `ms_per_frame`: feature extraction + propagation + upsampling per frame, on this machine.
 *
 *   npm run bench -- propagate [--model F.safetensors] [--size 480] [--frames 40] [--no-reference] [--no-tuning] [--tuning-only]
 *     [--held-out-limit N] [--with-inspected] [--cache-features]
 *   npm run bench -- propagate --sweep '[{"firstRadius":0},{"topk":10}]' [--size 480]
 *
 * `--sweep` scores each variant of the parameters (over the defaults) on the tuning seeds only, the features
 * extracted once per seed and size and cached in the temp folder (flaneur-propagate-features-*): how the product
 * defaults were chosen.
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
import {
  DINO_PROTOCOL,
  gridLabels,
  LabelPropagator,
  labelsToMask,
  normalizedRows,
  PROPAGATE_DEFAULTS,
  type PropagateOptions,
} from '../native/track/propagate.js';
import { loadExtractor, readInstanceMask } from '../native/track/propagate-job.js';
import {
  HELD_OUT_SEEDS,
  HELD_OUT_SEEDS_INSPECTED,
  renderScene,
  TUNING_SEEDS,
  writeDavisFolder,
} from '../tools/synth/propagate.js';

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
  /** DINO's protocol exactly (when the product defaults differ from it). */
  jf_dino: number | null;
  sequences: Record<
    string,
    { propagate: number; copy_first: number; bank_only: number; reference: number | null; dino?: number }
  >;
  frames: number;
}

/**
 * The figures on the sequences of a DAVIS-layout folder: frames decoded from its JPEGs, masks from its PNGs, the
 * same protocol (every frame but the first and the last scored) as `eval.davis`.
 */
export async function propagationFigures(
  root: string,
  o: { model: string; size: number; reference: boolean; work: string; cacheFeatures?: boolean },
): Promise<SceneSetFigures> {
  const model = importViTFile(o.model);
  const knn = new ExactKnn(() => DEFAULT_RUNTIME);
  const all = {
    prop: [] as ObjectScore[],
    copy: [] as ObjectScore[],
    bank: [] as ObjectScore[],
    ref: [] as ObjectScore[],
    dino: [] as ObjectScore[],
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
      const images: Awaited<ReturnType<typeof source.read>>[] = [];
      for (let i = 0; i < source.count; i++) images.push(await source.read(i));
      const extractor = await loadExtractor(model, o.size, DEFAULT_RUNTIME, { width: W, height: H });
      const shape = extractor.shapeOf(W, H);
      const grid = { gridH: shape.gridH, gridW: shape.gridW };
      const dim = model.config.dim;
      const target = { inputWidth: shape.width, inputHeight: shape.height, width: W, height: H };
      // Propagation, timed from the decoded frame to the mask (extraction included).
      const similarity = new ContextSimilarity(dim, DEFAULT_RUNTIME);
      // With --cache-features, the features (and the time their extraction took) are kept in the temp folder and
      // read back by a later run on the same frames, model and size.
      const cache = o.cacheFeatures
        ? path.join(
            os.tmpdir(),
            `flaneur-propagate-features-${path.basename(o.model, '.safetensors')}-${o.size}-${seq.name}-${source.count}`,
          )
        : null;
      const cached =
        cache && fs.existsSync(`${cache}.json`)
          ? (JSON.parse(fs.readFileSync(`${cache}.json`, 'utf8')) as { ms: number[] })
          : null;
      const cachedAll = cached ? new Float32Array(new Uint8Array(fs.readFileSync(`${cache}.f32`)).buffer) : null;
      const extractMs: number[] = [];
      const features = async (i: number): Promise<Float32Array> => {
        if (cachedAll && cached) {
          const per = cachedAll.length / source.count;
          extractMs.push(cached.ms[i] as number);
          return cachedAll.slice(i * per, (i + 1) * per);
        }
        const e0 = performance.now();
        const f = (await extractor.run([images[i] as (typeof images)[number]]))[0]?.patches as Float32Array;
        extractMs.push(performance.now() - e0);
        return f;
      };
      const t0 = performance.now();
      const feats: Float32Array[] = [];
      const first = await features(0);
      feats.push(first);
      const startLabels = gridLabels(truth[0] as Uint8Array, W, H, grid, C);
      const p = new LabelPropagator(grid, dim, C, first, startLabels, PROPAGATE_DEFAULTS);
      const pred: Uint8Array[] = [truth[0] as Uint8Array];
      for (let i = 1; i < source.count; i++) {
        const f = await features(i);
        feats.push(f);
        pred.push(labelsToMask(await p.stepWith(f, similarity.run), grid, C, target));
      }
      // Extraction + propagation + upsampling; a cached extraction counts as long as it took when it ran.
      ms += performance.now() - t0 + (cached ? extractMs.reduce((a, b) => a + b, 0) : 0);
      if (cache && !cached) {
        const all = new Float32Array(feats.reduce((n, f) => n + f.length, 0));
        feats.forEach((f, i) => {
          all.set(f, i * f.length);
        });
        fs.writeFileSync(`${cache}.f32`, Buffer.from(all.buffer));
        fs.writeFileSync(`${cache}.json`, JSON.stringify({ ms: extractMs }));
      }
      // DINO's protocol on the same features, when the product defaults differ from it.
      let dinoScore: ObjectScore[] | null = null;
      if (!sameOptions(PROPAGATE_DEFAULTS, DINO_PROTOCOL)) {
        const d = new LabelPropagator(grid, dim, C, first, startLabels, DINO_PROTOCOL);
        const dinoPred: Uint8Array[] = [truth[0] as Uint8Array];
        for (let i = 1; i < source.count; i++)
          dinoPred.push(labelsToMask(await d.stepWith(feats[i] as Float32Array, similarity.run), grid, C, target));
        dinoScore = scoreSequence(dinoPred, truth, W, H, objects).objects;
        all.dino.push(...dinoScore);
      }
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
        ...(dinoScore ? { dino: r3(summarise(dinoScore).JF) } : {}),
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
    jf_dino: all.dino.length ? r4(summarise(all.dino).JF) : null,
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
  meta: Record<string, number | null>,
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
const sameOptions = (a: PropagateOptions, b: PropagateOptions) =>
  a.context === b.context &&
  a.topk === b.topk &&
  a.radius === b.radius &&
  a.temperature === b.temperature &&
  (a.firstRadius ?? a.radius) === (b.firstRadius ?? b.radius) &&
  (a.firstPrior ?? 0) === (b.firstPrior ?? 0) &&
  (a.reidentify ?? null) === (b.reidentify ?? null);
const r4 = (x: number) => Number(x.toFixed(4));

/** Writes the scenes of these seeds as a DAVIS folder (sequence `seed-<seed>`). */
export async function writeScenes(root: string, seeds: readonly number[], frames: number): Promise<string> {
  return writeDavisFolder(
    root,
    seeds.map((seed) => ({ name: `seed-${seed}`, scene: renderScene(seed, { frames }) })),
  );
}

/**
 * J&F of each parameter variant (over the product defaults) on the tuning seeds, features extracted once per seed
 * and size (cached in the temp folder across runs). Never on the held-out seeds.
 */
export async function sweepTuning(
  variants: Partial<PropagateOptions>[],
  o: { model: string; size: number; frames: number },
): Promise<{ variant: PropagateOptions; jf: number; j: number; f: number; sequences: Record<string, number> }[]> {
  const model = importViTFile(o.model);
  const dim = model.config.dim;
  const key = `${path.basename(o.model, '.safetensors')}-${o.size}-${o.frames}`;
  const seqs = [];
  for (const seed of TUNING_SEEDS) {
    const scene = renderScene(seed, { frames: o.frames });
    const root = await writeScenes(
      path.join(os.tmpdir(), `flaneur-propagate-tuning-${seed}-${o.frames}`),
      [seed],
      o.frames,
    );
    const seq = davisSequences(root, '480p')[0];
    if (!seq) throw new Error('no sequence written');
    const source = await ImageFolderSource.open(seq.frames, /\.jpe?g$/i);
    const { width: W, height: H } = source;
    const truth: Uint8Array[] = [];
    for (let i = 0; i < source.count; i++)
      truth.push(await readInstanceMask(path.join(seq.annotations, `${String(i).padStart(5, '0')}.png`), W, H));
    const extractor = await loadExtractor(model, o.size, DEFAULT_RUNTIME, { width: W, height: H });
    const shape = extractor.shapeOf(W, H);
    const n = shape.gridH * shape.gridW;
    const cache = path.join(os.tmpdir(), `flaneur-propagate-features-${key}-${seed}.f32`);
    let all: Float32Array;
    if (fs.existsSync(cache) && fs.statSync(cache).size === source.count * n * dim * 4) {
      const buf = fs.readFileSync(cache);
      all = new Float32Array(buf.buffer.slice(buf.byteOffset, buf.byteOffset + buf.byteLength));
    } else {
      all = new Float32Array(source.count * n * dim);
      for (let i = 0; i < source.count; i++)
        all.set((await extractor.run([await source.read(i)]))[0]?.patches as Float32Array, i * n * dim);
      fs.writeFileSync(cache, Buffer.from(all.buffer));
    }
    await extractor.release();
    seqs.push({
      name: `seed-${seed}`,
      objects: scene.objects,
      truth,
      W,
      H,
      shape,
      feats: (i: number) => all.subarray(i * n * dim, (i + 1) * n * dim),
    });
  }
  // Every variant's context is the first frame and the most recent frames: their cosines to the target are the
  // same for all variants, computed once per frame for the largest context and sliced for each.
  const similarity = new ContextSimilarity(dim, DEFAULT_RUNTIME);
  const options = variants.map((v) => ({ ...PROPAGATE_DEFAULTS, ...v }));
  const K = Math.max(...options.map((o) => o.context));
  const scores = options.map(() => ({ objects: [] as ObjectScore[], sequences: {} as Record<string, number> }));
  try {
    for (const q of seqs) {
      const C = q.objects + 1;
      const grid = { gridH: q.shape.gridH, gridW: q.shape.gridW };
      const n = grid.gridH * grid.gridW;
      const target = { inputWidth: q.shape.width, inputHeight: q.shape.height, width: q.W, height: q.H };
      const start = gridLabels(q.truth[0] as Uint8Array, q.W, q.H, grid, C);
      const props = options.map((o) => new LabelPropagator(grid, dim, C, q.feats(0), start, o));
      const preds = options.map(() => [q.truth[0] as Uint8Array]);
      const normed = [normalizedRows(q.feats(0), dim)];
      for (let i = 1; i < q.truth.length; i++) {
        const f = q.feats(i);
        // The shared context: frame 0, then frames max(1, i - K) … i - 1.
        const recent = Array.from({ length: Math.min(K, i - 1) }, (_, j) => i - Math.min(K, i - 1) + j);
        const frames = [0, ...recent];
        const m = frames.length * n;
        const ctxT = new Float32Array(dim * m);
        frames.forEach((fr, c) => {
          const x = normed[fr] as Float32Array;
          for (let s = 0; s < n; s++) for (let d = 0; d < dim; d++) ctxT[d * m + c * n + s] = x[s * dim + d] as number;
        });
        const shared = await similarity.run(normalizedRows(f, dim), ctxT, m);
        normed.push(normalizedRows(f, dim));
        for (const [vi, p] of props.entries()) {
          const slice = async (_t: Float32Array, _c: Float32Array, mv: number) => {
            // This variant's context: frame 0 and the last mv / n - 1 frames of the shared one.
            const out = new Float32Array(n * mv);
            const tail = mv - n;
            for (let r = 0; r < n; r++) {
              out.set(shared.subarray(r * m, r * m + n), r * mv);
              if (tail > 0) out.set(shared.subarray(r * m + m - tail, r * m + m), r * mv + n);
            }
            return out;
          };
          (preds[vi] as Uint8Array[]).push(labelsToMask(await p.stepWith(f, slice), grid, C, target));
        }
      }
      for (const [vi, pred] of preds.entries()) {
        const score = scoreSequence(pred, q.truth, q.W, q.H, q.objects);
        scores[vi]?.objects.push(...score.objects);
        (scores[vi] as { sequences: Record<string, number> }).sequences[q.name] = r4(score.JF);
      }
      console.error(`sweep: ${q.name} done`);
    }
  } finally {
    await similarity.release();
  }
  const results = options.map((variant, vi) => {
    const { objects, sequences } = scores[vi] as { objects: ObjectScore[]; sequences: Record<string, number> };
    const s = summarise(objects);
    console.error(`sweep: ${JSON.stringify(variants[vi])}: J&F ${r4(s.JF)} ${JSON.stringify(sequences)}`);
    return { variant, jf: r4(s.JF), j: r4(s.J), f: r4(s.F), sequences };
  });
  return results;
}

export async function benchPropagate(args: string[]): Promise<Record<string, unknown>> {
  const opt = (name: string) => (args.includes(name) ? args[args.indexOf(name) + 1] : undefined);
  const model = path.resolve(opt('--model') ?? DEFAULT_MODEL);
  const size = Number(opt('--size') ?? 480);
  const frames = Number(opt('--frames') ?? 40);
  const reference = !args.includes('--no-reference');
  const sweep = opt('--sweep');
  if (sweep)
    return { sweep: await sweepTuning(JSON.parse(sweep) as Partial<PropagateOptions>[], { model, size, frames }) };
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
    // The reported set (104-111), or its first N seeds in their declared order (`--held-out-limit N`, when there is
    // not time for all); `--with-inspected` also scores the first, inspected set (101-103) apart.
    const limit = Number(opt('--held-out-limit') ?? HELD_OUT_SEEDS.length);
    const heldOutSeeds = HELD_OUT_SEEDS.slice(0, limit);
    const cacheFeatures = args.includes('--cache-features');
    const heldOut = await propagationFigures(await writeScenes(path.join(work, 'held-out'), heldOutSeeds, frames), {
      model,
      size,
      reference,
      work,
      cacheFeatures,
    });
    const inspected = args.includes('--with-inspected')
      ? await propagationFigures(await writeScenes(path.join(work, 'inspected'), HELD_OUT_SEEDS_INSPECTED, frames), {
          model,
          size,
          reference,
          work,
          cacheFeatures,
        })
      : null;
    const tuning = args.includes('--no-tuning')
      ? null
      : await propagationFigures(await writeScenes(path.join(work, 'tuning'), TUNING_SEEDS, frames), {
          model,
          size,
          reference: false,
          work,
        });
    return {
      dataset: `tools/synth/propagate.ts, 320x180, ${frames} frames, 3 objects; held-out seeds ${heldOutSeeds.join(', ')} (tuning seeds ${TUNING_SEEDS.join(', ')} apart; ${HELD_OUT_SEEDS_INSPECTED.join(', ')} inspected, under held_out_inspected)`,
      model: path.relative(ROOT, model),
      size,
      params: PROPAGATE_DEFAULTS,
      dino_protocol: DINO_PROTOCOL,
      ...heldOut,
      beats_baselines: heldOut.jf_propagate > heldOut.jf_copy_first && heldOut.jf_propagate > heldOut.jf_bank_only,
      ...(inspected ? { held_out_inspected: inspected } : {}),
      ...(tuning
        ? {
            tuning: {
              jf_propagate: tuning.jf_propagate,
              jf_copy_first: tuning.jf_copy_first,
              jf_bank_only: tuning.jf_bank_only,
              jf_dino: tuning.jf_dino,
            },
          }
        : {}),
    };
  } finally {
    fs.rmSync(work, { recursive: true, force: true });
  }
}
