/**
 * Positional-embedding interpolation as constant matrices, matching PyTorch's bicubic upsampling
 * (align_corners=False, A = -0.75, edge-clamped taps). Expressed as matrices so the same graph is differentiable.
 */
const A = -0.75;

function cubic1(x: number): number {
  return ((A + 2) * x - (A + 3)) * x * x + 1;
}
function cubic2(x: number): number {
  return ((A * x - 5 * A) * x + 8 * A) * x - 4 * A;
}

/**
 * Row-major [outSize, inSize] weights of 1-D bicubic resampling. `scale` is the scale factor PyTorch was given
 * (its source coordinate is (dst + 0.5) / scale - 0.5); by default out/in, as when a size is given.
 */
export function bicubicMatrix(inSize: number, outSize: number, scale = outSize / inSize): Float64Array {
  const m = new Float64Array(outSize * inSize);
  const inv = 1 / scale;
  for (let o = 0; o < outSize; o++) {
    const real = inv * (o + 0.5) - 0.5;
    const i0 = Math.floor(real);
    const t = real - i0;
    const w = [cubic2(t + 1), cubic1(t), cubic1(1 - t), cubic2(2 - t)];
    for (let k = 0; k < 4; k++) {
      const idx = Math.min(Math.max(i0 - 1 + k, 0), inSize - 1);
      m[o * inSize + idx] = (m[o * inSize + idx] as number) + (w[k] as number);
    }
  }
  return m;
}

export type PosInterpolation = 'offset' | 'size';

/**
 * The [outH*outW, inH*inW] matrix that resamples a row-major grid of position embeddings.
 * 'offset': the official DINO / DINOv2 code (scale factor (n + 0.1) / N). 'size': interpolation to a given size.
 */
export function posEmbedMatrix(inGrid: number, outH: number, outW: number, mode: PosInterpolation): Float32Array {
  const sh = mode === 'offset' ? (outH + 0.1) / inGrid : outH / inGrid;
  const sw = mode === 'offset' ? (outW + 0.1) / inGrid : outW / inGrid;
  const mh = bicubicMatrix(inGrid, outH, sh);
  const mw = bicubicMatrix(inGrid, outW, sw);
  const n = inGrid * inGrid;
  const out = new Float32Array(outH * outW * n);
  for (let oy = 0; oy < outH; oy++) {
    for (let ox = 0; ox < outW; ox++) {
      const row = (oy * outW + ox) * n;
      for (let iy = 0; iy < inGrid; iy++) {
        const wy = mh[oy * inGrid + iy] as number;
        if (wy === 0) continue;
        for (let ix = 0; ix < inGrid; ix++) {
          const wx = mw[ox * inGrid + ix] as number;
          if (wx !== 0) out[row + iy * inGrid + ix] = wy * wx;
        }
      }
    }
  }
  return out;
}
