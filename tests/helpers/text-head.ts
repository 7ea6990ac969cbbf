/**
 * A ShareLock head written (not trained) for tests of text search: one Linear layer W (visionDim × textDim) solved so
 * that the language model's feature of each class prompt ("a photo of a {class}") lands exactly on its class's mean
 * normalised CLS embedding in a feature run. Zero-shot with that one template is then a nearest-centroid classifier
 * by cosine, which a test computes on its own; a query "a photo of a trouser" ranks frames by cosine with the trouser
 * centroid. With a tiny random LLM nothing else is meaningful, so this is what tests of the product can check.
 */
import fs from 'node:fs';
import path from 'node:path';
import type { ModelInfo, TextModelInfo } from '../../native/api/contract.js';
import { classList, classNamesUnder } from '../../native/classify/knn-classify.js';
import { frameVectors } from '../../native/fungi/vectors.js';
import { Project } from '../../native/store/project.js';
import { textModelKey } from '../../native/text/feature-cache.js';
import { headMetadata } from '../../native/text/head-file.js';
import { LlamaEncoder, openLlama } from '../../native/text/llama.js';
import { encodeShareLockWeights, shareLockConfig } from '../../native/text/sharelock.js';
import type { dispatchEngine } from './dispatch.js';
import { fixturePath } from './fixtures.js';
import { randomLlamaWeights, tinyLlamaConfig, writeTinyLlama } from './llama-models.js';
import { writeInitViT } from './models.js';

/** x = A⁻¹ b for a small dense system (Gaussian elimination with partial pivoting), columns of b at once. */
function solve(A: number[][], B: number[][]): number[][] {
  const n = A.length;
  const a = A.map((r, i) => [...r, ...(B[i] as number[])]);
  for (let c = 0; c < n; c++) {
    let p = c;
    for (let r = c + 1; r < n; r++) if (Math.abs(a[r]?.[c] as number) > Math.abs(a[p]?.[c] as number)) p = r;
    [a[c], a[p]] = [a[p] as number[], a[c] as number[]];
    const piv = a[c] as number[];
    if (Math.abs(piv[c] as number) < 1e-12) throw new Error('the class prompts have linearly dependent features');
    for (let r = 0; r < n; r++) {
      if (r === c) continue;
      const row = a[r] as number[];
      const f = (row[c] as number) / (piv[c] as number);
      for (let k = c; k < row.length; k++) row[k] = (row[k] as number) - f * (piv[k] as number);
    }
  }
  return a.map((row, i) => row.slice(n).map((v) => v / (row[i] as number)));
}

/** The tiny GGUF language model of llama-models.ts in `dir`, as a head records it (its GGUF name is tiny-llama-test). */
export function writeTinyGgufLlm(dir: string): Pick<TextModelInfo, 'file' | 'key' | 'name'> {
  const config = tinyLlamaConfig();
  const file = writeTinyLlama(path.join(dir, 'llm'), 'gguf', randomLlamaWeights(config, 3), config);
  return { file, key: textModelKey(file), name: 'tiny-llama-test' };
}

export interface CentroidHead {
  file: string;
  classes: string[];
  /** Normalised class centroids [classes][dim] of the run's labelled frames. */
  centroids: Float32Array[];
  /** The run's frames with their class (null outside the folder) and normalised CLS embedding. */
  frames: { mediaId: number; frameIdx: number; label: string | null; vector: Float32Array }[];
}

/**
 * Writes the head beside `dir`. `projectDir`: a project (possibly owned by a running engine: read through a second
 * connection), `runId` its feature run of `vision`, `root` a labelled folder of the library.
 */
export async function writeCentroidHead(o: {
  dir: string;
  projectDir: string;
  runId: number;
  root: string;
  llm: Pick<TextModelInfo, 'file' | 'key' | 'name'>;
  vision: ModelInfo;
  template?: string;
}): Promise<CentroidHead> {
  const project = Project.attach(o.projectDir);
  let keys: { mediaId: number; frameIdx: number }[];
  let vectors: Float32Array;
  let dim: number;
  let labels: (string | null)[];
  try {
    ({ keys, vectors, dim } = await frameVectors(project, { kind: 'embedding', runId: o.runId }));
    labels = classNamesUnder(project, keys, [o.root])[0] as (string | null)[];
  } finally {
    project.close();
  }
  const classes = classList(labels);
  const centroids = classes.map((c) => {
    const m = new Float64Array(dim);
    labels.forEach((l, i) => {
      if (l === c) for (let d = 0; d < dim; d++) m[d] = (m[d] as number) + (vectors[i * dim + d] as number);
    });
    const norm = Math.sqrt(m.reduce((a, v) => a + v * v, 0));
    return Float32Array.from(m, (v) => v / norm);
  });
  const encoder = await LlamaEncoder.load(openLlama(o.llm.file), { runtime: { provider: 'cpu', threads: 1 } });
  const template = o.template ?? 'a photo of a {}';
  const T = await encoder.encodeTexts(classes.map((c) => template.replace('{}', c)));
  await encoder.close();
  const D = T[0]?.length as number;
  // W = M G⁻¹ Tᵀ with G = Tᵀ T: W t_c = μ_c for every class c
  const G = T.map((ti) => T.map((tj) => ti.reduce((a, v, k) => a + v * (tj[k] as number), 0)));
  const X = solve(
    G,
    T.map((t) => Array.from(t)),
  ); // G⁻¹ Tᵀ, [C][D]
  const W = new Float32Array(dim * D);
  for (let v = 0; v < dim; v++)
    for (let k = 0; k < D; k++) {
      let s = 0;
      for (let c = 0; c < classes.length; c++) s += (centroids[c]?.[v] as number) * (X[c]?.[k] as number);
      W[v * D + k] = s;
    }
  const config = shareLockConfig(D, dim, { layers: 1 });
  const P = 'language_projector.projection.0';
  const file = path.join(o.dir, 'centroid-head.safetensors');
  fs.mkdirSync(o.dir, { recursive: true });
  const a = o.vision.architecture;
  fs.writeFileSync(
    file,
    encodeShareLockWeights(
      {
        config,
        tensors: new Map([
          [`${P}.weight`, W],
          [`${P}.bias`, new Float32Array(dim)],
        ]),
      },
      headMetadata({
        textModel: { key: o.llm.key, name: o.llm.name, dim: D },
        vision: {
          modelId: o.vision.id,
          sha256: o.vision.sha256,
          name: o.vision.name,
          architecture: { family: a.family, patchSize: a.patchSize, dim: a.dim, registers: a.registers },
        },
        origin: `written by a test: "${template}" of each class of ${path.basename(o.root)} onto its centroid`,
      }),
    ),
  );
  return {
    file,
    classes,
    centroids,
    frames: keys.map((k, i) => ({ ...k, label: labels[i] ?? null, vector: vectors.slice(i * dim, (i + 1) * dim) })),
  };
}

/**
 * A project at `work`/p holding the Fashion-MNIST fixture (tests/fixtures/fashion/train, 300 images in 10 class
 * folders), a feature run of a ViT-Ti/16 at initialisation (32 px) and the tiny random Llama as GGUF registered:
 * what ShareLock training tests start from.
 */
export async function fashionShareLockProject(
  { engine, call }: Pick<ReturnType<typeof dispatchEngine>, 'engine' | 'call'>,
  work: string,
): Promise<{ runId: number; llm: TextModelInfo; vision: ModelInfo }> {
  const idle = () => engine.requireProject().runner.idle();
  await call('project.create', { path: path.join(work, 'p') });
  await call('library.add', { paths: [fixturePath('fashion', 'train')] });
  await idle();
  const vision = await call('models.import', { path: writeInitViT(path.join(work, 'vit.safetensors')) });
  await call('features.extract', { modelId: vision.id, size: 32 });
  await idle();
  const runId = (await call('features.runs', {}))[0]?.id ?? 0;
  const c = tinyLlamaConfig();
  const llm = await call('text.models.import', {
    path: writeTinyLlama(path.join(work, 'llm'), 'gguf', randomLlamaWeights(c, 3), c),
  });
  return { runId, llm, vision };
}
