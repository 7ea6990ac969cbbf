/**
 * Dora's object discovery and tracking (ICLR 2024, METHODS.md): on the first frame of a clip, prototypes from the
 * CLS attention of k chosen heads applied to the patch queries, refined with Sinkhorn-Knopp against the
 * normalised queries; on every frame, each prototype's cross-attention with the frame's keys, L2-normalised per
 * object and binarised at its mean, is that object's mask. Every parameter is an argument.
 */
export interface DoraParams {
  /** Heads of the last block whose CLS attention seeds the prototypes (Dora: 3 random heads). */
  heads: number[];
  /** Sinkhorn-Knopp entropy and iterations (Dora: 0.05, 30). */
  epsilon: number;
  iterations: number;
}

export const DORA_DEFAULTS = { epsilon: 0.05, iterations: 30 } as const;

function normRows(x: Float32Array, d: number): Float32Array {
  const out = new Float32Array(x.length);
  for (let i = 0; i < x.length; i += d) {
    let s = 0;
    for (let j = 0; j < d; j++) s += (x[i + j] as number) ** 2;
    const inv = 1 / Math.sqrt(Math.max(s, 1e-24));
    for (let j = 0; j < d; j++) out[i + j] = (x[i + j] as number) * inv;
  }
  return out;
}

/**
 * Sinkhorn-Knopp on scores [n, k] with uniform marginals (as SwAV / Dora): Q = exp(scores / eps), alternately
 * normalised over objects and over patches. Returns the transport plan [n, k] (each row sums to 1).
 */
export function sinkhorn(
  scores: Float32Array,
  n: number,
  k: number,
  epsilon: number,
  iterations: number,
): Float32Array {
  const q = new Float64Array(n * k);
  let max = Number.NEGATIVE_INFINITY;
  for (const s of scores) max = Math.max(max, s);
  let total = 0;
  for (let i = 0; i < n * k; i++) {
    q[i] = Math.exp(((scores[i] as number) - max) / epsilon);
    total += q[i] as number;
  }
  for (let i = 0; i < n * k; i++) q[i] = (q[i] as number) / total;
  for (let it = 0; it < iterations; it++) {
    for (let c = 0; c < k; c++) {
      let s = 0;
      for (let i = 0; i < n; i++) s += q[i * k + c] as number;
      for (let i = 0; i < n; i++) q[i * k + c] = (q[i * k + c] as number) / (s * k || 1);
    }
    for (let i = 0; i < n; i++) {
      let s = 0;
      for (let c = 0; c < k; c++) s += q[i * k + c] as number;
      for (let c = 0; c < k; c++) q[i * k + c] = (q[i * k + c] as number) / (s * n || 1);
    }
  }
  const out = new Float32Array(n * k);
  for (let i = 0; i < n * k; i++) out[i] = (q[i] as number) * n;
  return out;
}

/**
 * Prototypes [k, d] from the first frame: P = A_I Q over the chosen heads, refined P' = M^T norm(Q) with the
 * Sinkhorn plan M of norm(Q) P^T. `q` [n, d] are the patch queries, `attention` [H, n] the CLS-to-patch attention.
 */
export function discover(q: Float32Array, attention: Float32Array, n: number, d: number, p: DoraParams): Float32Array {
  const k = p.heads.length;
  const proto = new Float32Array(k * d);
  p.heads.forEach((h, c) => {
    for (let i = 0; i < n; i++) {
      const a = attention[h * n + i] as number;
      for (let j = 0; j < d; j++) proto[c * d + j] = (proto[c * d + j] as number) + a * (q[i * d + j] as number);
    }
  });
  const x = normRows(q, d);
  const pn = normRows(proto, d);
  const logits = new Float32Array(n * k);
  for (let i = 0; i < n; i++) {
    for (let c = 0; c < k; c++) {
      let s = 0;
      for (let j = 0; j < d; j++) s += (x[i * d + j] as number) * (pn[c * d + j] as number);
      logits[i * k + c] = s;
    }
  }
  const m = sinkhorn(logits, n, k, p.epsilon, p.iterations);
  const refined = new Float32Array(k * d);
  for (let i = 0; i < n; i++) {
    for (let c = 0; c < k; c++) {
      const w = m[i * k + c] as number;
      for (let j = 0; j < d; j++) refined[c * d + j] = (refined[c * d + j] as number) + w * (x[i * d + j] as number);
    }
  }
  return refined;
}

/**
 * Masks [k, n] (1 = the object) of each prototype in a frame with keys `keys` [n, d]: softmax over patches of
 * P' K^T / sqrt(d), each object's row L2-normalised, binarised above its mean.
 */
export function trackMasks(prototypes: Float32Array, keys: Float32Array, n: number, d: number): Uint8Array {
  const k = prototypes.length / d;
  const out = new Uint8Array(k * n);
  const row = new Float64Array(n);
  const scale = 1 / Math.sqrt(d);
  for (let c = 0; c < k; c++) {
    let max = Number.NEGATIVE_INFINITY;
    for (let i = 0; i < n; i++) {
      let s = 0;
      for (let j = 0; j < d; j++) s += (prototypes[c * d + j] as number) * (keys[i * d + j] as number);
      row[i] = s * scale;
      max = Math.max(max, row[i] as number);
    }
    let sum = 0;
    for (let i = 0; i < n; i++) {
      row[i] = Math.exp((row[i] as number) - max);
      sum += row[i] as number;
    }
    let norm = 0;
    for (let i = 0; i < n; i++) {
      row[i] = (row[i] as number) / sum;
      norm += (row[i] as number) ** 2;
    }
    norm = Math.sqrt(norm);
    let mean = 0;
    for (let i = 0; i < n; i++) {
      row[i] = (row[i] as number) / norm;
      mean += row[i] as number;
    }
    mean /= n;
    for (let i = 0; i < n; i++) out[c * n + i] = (row[i] as number) > mean ? 1 : 0;
  }
  return out;
}

/** Baseline without propagation: each head's CLS attention of the frame itself, binarised above its mean. */
export function attentionMasks(attention: Float32Array, heads: number[], n: number): Uint8Array {
  const out = new Uint8Array(heads.length * n);
  heads.forEach((h, c) => {
    let mean = 0;
    for (let i = 0; i < n; i++) mean += attention[h * n + i] as number;
    mean /= n;
    for (let i = 0; i < n; i++) out[c * n + i] = (attention[h * n + i] as number) > mean ? 1 : 0;
  });
  return out;
}

/** Bounding box (x, y, w, h) in image pixels of a grid mask, or null when empty. */
export function maskBox(
  mask: Uint8Array,
  grid: { gridH: number; gridW: number },
  width: number,
  height: number,
): [number, number, number, number] | null {
  const { gridH, gridW } = grid;
  let x0 = gridW;
  let y0 = gridH;
  let x1 = -1;
  let y1 = -1;
  for (let i = 0; i < gridH * gridW; i++) {
    if (!mask[i]) continue;
    const x = i % gridW;
    const y = (i - x) / gridW;
    x0 = Math.min(x0, x);
    y0 = Math.min(y0, y);
    x1 = Math.max(x1, x);
    y1 = Math.max(y1, y);
  }
  if (x1 < 0) return null;
  const cw = width / gridW;
  const ch = height / gridH;
  return [x0 * cw, y0 * ch, (x1 - x0 + 1) * cw, (y1 - y0 + 1) * ch];
}
