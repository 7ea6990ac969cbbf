/**
 * `npm run bench -- fungi [--train N] [--test N] [--size S] [--model FILE]`: kNN classification of Fashion-MNIST
 * (Debian's dataset-fashion-mnist: N train images per class as the labelled bank, N test images per class as
 * queries, gray replicated to RGB and resized to S px) with embeddings vs FUNGI features (KL + DINO + SimCLR with
 * the paper's views and heads, PCA to 512 fitted on the bank), for the bundled default model (models/default, when
 * present) and for the same architecture at random initialisation. Throughput: images per second of the
 * embedding pass alone and of the full FUNGI pass (embedding + three gradient objectives), same process.
 * Last line: {"images", "emb_imgs_per_s", "fungi_imgs_per_s", "knn_acc_emb", "knn_acc_fungi", ...}.
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { Rng } from '../native/base/rng.js';
import { knnClassify } from '../native/classify/knn-classify.js';
import { ExactKnn, l2normalizeRows } from '../native/features/knn.js';
import { applyPca, fitPca } from '../native/features/pca.js';
import { FungiExtractor } from '../native/fungi/extractor.js';
import { FUNGI_DEFAULTS, FUNGI_OBJECTIVES } from '../native/fungi/graph.js';
import { type ImportedViT, importViTFile } from '../native/models/import-vit.js';
import type { RgbLike } from '../native/models/preprocess.js';
import { presetConfig, vitParamShapes } from '../native/models/vit.js';
import { initParams } from '../native/train/train-dino.js';
import { FASHION_DIR, readSplit } from '../tools/fashion-mnist.js';

const ROOT = path.resolve(import.meta.dirname, '..');

function rgb(split: ReturnType<typeof readSplit>): RgbLike[] {
  return split.pixels.map((p) => {
    const data = new Uint8Array(p.length * 3);
    for (let i = 0; i < p.length; i++) data.fill(p[i] as number, 3 * i, 3 * i + 3);
    return { width: split.width, height: split.height, data };
  });
}

function randomViT(): ImportedViT {
  const config = presetConfig('vit_ti16');
  return {
    config,
    weights: initParams(vitParamShapes(config), new Rng(7)),
    scheme: 'official',
    sourceDtype: 'F32',
  } as ImportedViT;
}

async function evaluate(
  label: string,
  model: ImportedViT,
  bank: { images: RgbLike[]; labels: number[] },
  queries: { images: RgbLike[]; labels: number[] },
  size: number,
) {
  const D = model.config.dim;
  const fungi = await FungiExtractor.create(model, {
    size,
    objectives: FUNGI_OBJECTIVES,
    settings: FUNGI_DEFAULTS,
    seed: 0,
  });
  const all = [...bank.images, ...queries.images];
  const knn = new ExactKnn();
  try {
    // SimCLR's negative batch from the labelled bank (fungivision draws it from the training split).
    const rng = new Rng(3);
    fungi.setNegatives(
      await fungi.computeNegatives(rng.shuffle([...bank.images]).slice(0, FUNGI_DEFAULTS.simclr.negatives)),
    );
    const frames = all.map((img, i) => ({ img, seed: i }));
    // The embedding part alone: the first D entries of each vector come from the same pass.
    const embOnly = await FungiExtractor.create(model, { size, objectives: [], settings: FUNGI_DEFAULTS, seed: 0 });
    let t0 = performance.now();
    const emb: Float32Array[] = [];
    for (let i = 0; i < frames.length; i += 64) emb.push(...(await embOnly.run(frames.slice(i, i + 64))));
    const embS = (performance.now() - t0) / 1000;
    await embOnly.release();
    t0 = performance.now();
    const vecs: Float32Array[] = [];
    for (let i = 0; i < frames.length; i += 16) {
      vecs.push(...(await fungi.run(frames.slice(i, i + 16))));
      if (i % 160 === 0) console.error(`${label}: fungi ${i + 16}/${frames.length}`);
    }
    const fungiS = (performance.now() - t0) / 1000;
    const nb = bank.images.length;
    const stack = (rows: Float32Array[], dim: number) => {
      const out = new Float32Array(rows.length * dim);
      rows.forEach((r, i) => {
        out.set(r.subarray(0, dim), i * dim);
      });
      return out;
    };
    const acc = async (bankV: Float32Array, queryV: Float32Array, dim: number) => {
      const r = await knnClassify(
        knn,
        { vectors: bankV, labels: Int32Array.from(bank.labels), classes: 10 },
        queryV,
        dim,
      );
      return r.predicted.reduce((a, p, i) => a + (p === queries.labels[i] ? 1 : 0), 0) / queries.labels.length;
    };
    const E = stack(emb, D);
    const accEmb = await acc(E.subarray(0, nb * D), E.subarray(nb * D), D);
    const C = fungi.dim;
    const F = stack(vecs, C);
    const pca = await fitPca(F.subarray(0, nb * C), C, Math.min(512, C));
    const P = l2normalizeRows(await applyPca(pca, F), pca.k);
    const accFungi = await acc(P.subarray(0, nb * pca.k), P.subarray(nb * pca.k), pca.k);
    // Each part alone (after its own L2 normalisation), for the table.
    const parts: Record<string, number> = {};
    for (const [k, name] of ['kl', 'dino', 'simclr'].entries()) {
      const part = new Float32Array(vecs.length * D);
      vecs.forEach((v, i) => {
        part.set(v.subarray((k + 1) * D, (k + 2) * D), i * D);
      });
      parts[`knn_acc_${name}_only`] = await acc(part.subarray(0, nb * D), part.subarray(nb * D), D);
    }
    return {
      emb_imgs_per_s: all.length / embS,
      fungi_imgs_per_s: all.length / fungiS,
      knn_acc_emb: accEmb,
      knn_acc_fungi: accFungi,
      ...parts,
      provider: fungi.provider,
    };
  } finally {
    await fungi.release();
    await knn.release();
  }
}

export async function benchFungi(args: string[]): Promise<Record<string, unknown>> {
  const opt = (name: string, def: string) => (args.includes(name) ? (args[args.indexOf(name) + 1] as string) : def);
  const trainN = Number(opt('--train', '50'));
  const testN = Number(opt('--test', '20'));
  const size = Number(opt('--size', '64'));
  const from = opt('--from', FASHION_DIR);
  if (!fs.existsSync(path.join(from, 'train-images-idx3-ubyte.gz')))
    throw new Error(`Fashion-MNIST not found in ${from}: apt-get install dataset-fashion-mnist (or --from DIR)`);
  const tr = readSplit(from, 'train', trainN);
  const te = readSplit(from, 't10k', testN);
  const bank = { images: rgb(tr), labels: tr.labels };
  const queries = { images: rgb(te), labels: te.labels };
  const manifest = path.join(ROOT, 'models', 'default', 'manifest.json');
  const given = args.includes('--model') ? opt('--model', '') : null;
  const bundled =
    given ??
    (fs.existsSync(manifest)
      ? path.join(ROOT, 'models', 'default', (JSON.parse(fs.readFileSync(manifest, 'utf8')) as { file: string }).file)
      : null);
  const results: Record<string, unknown> = {};
  if (bundled) results.bundled = await evaluate('bundled', importViTFile(bundled, { heads: 3 }), bank, queries, size);
  results.random_init = await evaluate('random init', randomViT(), bank, queries, size);
  const main = (results.bundled ?? results.random_init) as Record<string, number>;
  return {
    dataset: `Fashion-MNIST (${trainN}/class train bank, ${testN}/class test queries), ${size} px`,
    model: bundled ? path.relative(ROOT, bundled) : 'vit_ti16 random init',
    images: bank.images.length + queries.images.length,
    cores: os.availableParallelism(),
    ...results,
    emb_imgs_per_s: Number(main.emb_imgs_per_s?.toFixed(2)),
    fungi_imgs_per_s: Number(main.fungi_imgs_per_s?.toFixed(2)),
    knn_acc_emb: main.knn_acc_emb,
    knn_acc_fungi: main.knn_acc_fungi,
  };
}
