/**
 * PCA of row vectors: the covariance XᵀX as one ONNX MatMul (fast for 10^4–10^5 rows), its eigenvectors by
 * ml-matrix's symmetric eigendecomposition, the top k kept. Used for FUNGI's reduction (to 512) and for the
 * embedding map's 2-D view. Stored as one f32 array: [mean (C), components (k × C)].
 */
import { EigenvalueDecomposition, Matrix } from 'ml-matrix';
import { GraphBuilder } from '../graph/builder.js';
import { toOnnx } from '../graph/onnx.js';
import { ModelSession, ort } from '../runtime/session.js';

export interface Pca {
  mean: Float32Array;
  /** k × C, row-major, unit rows, by decreasing variance. */
  components: Float32Array;
  k: number;
  dim: number;
  /** Variance along each component. */
  variance: Float64Array;
}

let gramSession: Promise<ModelSession> | null = null;

function gram(): Promise<ModelSession> {
  if (!gramSession) {
    const b = new GraphBuilder('gram');
    const x = b.input('x', 'float32', ['n', 'c']);
    b.output(b.matmul(b.transpose(x, [1, 0]), x), 'gram');
    gramSession = ModelSession.create(toOnnx(b.build()));
  }
  return gramSession;
}

/** Fits PCA on `rows` (n × dim, row-major) keeping k components. */
export async function fitPca(rows: Float32Array, dim: number, k: number): Promise<Pca> {
  const n = rows.length / dim;
  if (n < 2) throw new Error('PCA needs at least two vectors');
  const mean = new Float32Array(dim);
  for (let i = 0; i < n; i++)
    for (let j = 0; j < dim; j++) mean[j] = (mean[j] as number) + (rows[i * dim + j] as number);
  for (let j = 0; j < dim; j++) mean[j] = (mean[j] as number) / n;
  const centred = new Float32Array(rows.length);
  for (let i = 0; i < n; i++)
    for (let j = 0; j < dim; j++) centred[i * dim + j] = (rows[i * dim + j] as number) - (mean[j] as number);
  const out = await (await gram()).run({ x: new ort.Tensor('float32', centred, [n, dim]) }, ['gram']);
  const g = out.gram?.data as Float32Array;
  const cov = new Matrix(dim, dim);
  for (let i = 0; i < dim; i++)
    for (let j = 0; j < dim; j++)
      cov.set(i, j, ((g[i * dim + j] as number) + (g[j * dim + i] as number)) / (2 * (n - 1)));
  const evd = new EigenvalueDecomposition(cov, { assumeSymmetric: true });
  const values = evd.realEigenvalues;
  const vectors = evd.eigenvectorMatrix;
  const order = values.map((v, i) => [v, i] as const).sort((a, b) => b[0] - a[0]);
  const kk = Math.min(k, dim);
  const components = new Float32Array(kk * dim);
  const variance = new Float64Array(kk);
  for (let r = 0; r < kk; r++) {
    const [v, col] = order[r] as readonly [number, number];
    variance[r] = Math.max(0, v);
    // A deterministic sign: the largest-magnitude entry positive.
    let big = 0;
    for (let j = 0; j < dim; j++) if (Math.abs(vectors.get(j, col)) > Math.abs(big)) big = vectors.get(j, col);
    const s = big < 0 ? -1 : 1;
    for (let j = 0; j < dim; j++) components[r * dim + j] = s * vectors.get(j, col);
  }
  return { mean, components, k: kk, dim, variance };
}

let projectSession: Promise<ModelSession> | null = null;

function projector(): Promise<ModelSession> {
  if (!projectSession) {
    const b = new GraphBuilder('pca_project');
    const x = b.input('x', 'float32', ['n', 'c']);
    const mean = b.input('mean', 'float32', [1, 'c']);
    const comps = b.input('components', 'float32', ['k', 'c']);
    b.output(b.matmul(b.sub(x, mean), b.transpose(comps, [1, 0])), 'projected');
    projectSession = ModelSession.create(toOnnx(b.build()));
  }
  return projectSession;
}

/** Projects rows (n × dim) onto the components: n × k (one ONNX MatMul; retrieval calls this on every query). */
export async function applyPca(p: Pca, rows: Float32Array): Promise<Float32Array> {
  const n = rows.length / p.dim;
  if (n === 0) return new Float32Array(0);
  const out = await (await projector()).run(
    {
      x: new ort.Tensor('float32', rows, [n, p.dim]),
      mean: new ort.Tensor('float32', p.mean, [1, p.dim]),
      components: new ort.Tensor('float32', p.components, [p.k, p.dim]),
    },
    ['projected'],
  );
  return out.projected?.data as Float32Array;
}

export function packPca(p: Pca): Float32Array {
  const out = new Float32Array(p.dim + p.k * p.dim);
  out.set(p.mean, 0);
  out.set(p.components, p.dim);
  return out;
}

export function unpackPca(data: Float32Array, dim: number, k: number): Pca {
  return {
    mean: data.slice(0, dim),
    components: data.slice(dim, dim + k * dim),
    k,
    dim,
    variance: new Float64Array(k),
  };
}
