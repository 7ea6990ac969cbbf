/**
 * RoI-align of a feature grid to a box as a constant matrix: torchvision's roi_align (aligned=True, adaptive
 * sampling ratio, the default NeCo uses) computes each output cell as the mean of bilinear samples whose positions
 * depend only on the box, so for a given box it is a linear map W [out*out, height*width] of the grid. The host
 * computes W from the crop boxes (the same float32 arithmetic as torchvision's CPU kernel) and the graph applies it
 * with a MatMul — differentiable with the MatMul rule, no gather/scatter op needed.
 */
import type { GraphBuilder } from './builder.js';
import type { Value } from './ir.js';

const f = Math.fround;

/**
 * Weights of roi_align(input [1, C, height, width], [box], output_size=out, spatial_scale=scale,
 * sampling_ratio, aligned) as a row-major [out*out, height*width] matrix. `box` is [x1, y1, x2, y2] in input
 * coordinates before `scale`. samplingRatio <= 0: ceil(roi size / out) samples per bin and axis, as torchvision.
 */
export function roiAlignMatrix(
  box: readonly [number, number, number, number],
  height: number,
  width: number,
  o: { out?: number; scale?: number; samplingRatio?: number; aligned?: boolean } = {},
): Float32Array {
  const out = o.out ?? 7;
  const scale = o.scale ?? 1;
  const offset = (o.aligned ?? true) ? 0.5 : 0;
  const [x1, y1, x2, y2] = box.map(f) as [number, number, number, number];
  const startW = f(f(x1 * scale) - offset);
  const startH = f(f(y1 * scale) - offset);
  let roiW = f(f(f(x2 * scale) - offset) - startW);
  let roiH = f(f(f(y2 * scale) - offset) - startH);
  if (!(o.aligned ?? true)) {
    roiW = Math.max(roiW, 1);
    roiH = Math.max(roiH, 1);
  }
  const binH = f(roiH / out);
  const binW = f(roiW / out);
  const sr = o.samplingRatio ?? -1;
  const gridH = sr > 0 ? sr : Math.ceil(f(roiH / out));
  const gridW = sr > 0 ? sr : Math.ceil(f(roiW / out));
  const count = Math.max(gridH * gridW, 1);
  const W = new Float32Array(out * out * height * width);
  for (let ph = 0; ph < out; ph++) {
    for (let pw = 0; pw < out; pw++) {
      const row = (ph * out + pw) * height * width;
      for (let iy = 0; iy < gridH; iy++) {
        const y = f(f(startH + f(ph * binH)) + f(f((iy + 0.5) * binH) / gridH));
        for (let ix = 0; ix < gridW; ix++) {
          const x = f(f(startW + f(pw * binW)) + f(f((ix + 0.5) * binW) / gridW));
          // torchvision's bilinear_interpolate: outside [-1, size] contributes nothing; edges clamp.
          if (y < -1 || y > height || x < -1 || x > width) continue;
          let yy = Math.max(y, 0);
          let xx = Math.max(x, 0);
          let yLow = Math.floor(yy);
          let xLow = Math.floor(xx);
          let yHigh: number;
          let xHigh: number;
          if (yLow >= height - 1) {
            yHigh = yLow = height - 1;
            yy = yLow;
          } else yHigh = yLow + 1;
          if (xLow >= width - 1) {
            xHigh = xLow = width - 1;
            xx = xLow;
          } else xHigh = xLow + 1;
          const ly = f(yy - yLow);
          const lx = f(xx - xLow);
          const hy = f(1 - ly);
          const hx = f(1 - lx);
          W[row + yLow * width + xLow] = (W[row + yLow * width + xLow] as number) + (hy * hx) / count;
          W[row + yLow * width + xHigh] = (W[row + yLow * width + xHigh] as number) + (hy * lx) / count;
          W[row + yHigh * width + xLow] = (W[row + yHigh * width + xLow] as number) + (ly * hx) / count;
          W[row + yHigh * width + xHigh] = (W[row + yHigh * width + xHigh] as number) + (ly * lx) / count;
        }
      }
    }
  }
  return W;
}

/**
 * Applies RoI-align matrices to token grids: `weights` [..., out*out, H*W] times `tokens` [..., H*W, C] gives the
 * aligned tokens [..., out*out, C] (batched MatMul; the gradient reaches the tokens, not the constant weights).
 */
export function roiAlign(b: GraphBuilder, tokens: Value, weights: Value): Value {
  return b.matmul(weights, tokens, 'roi_align');
}
