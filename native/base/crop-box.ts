/** torchvision's RandomResizedCrop box, drawn from the seeded generator (DINO's and NeCo's crops, FUNGI's views). */
import type { Rng } from './rng.js';

/** torchvision RandomResizedCrop's box sampling (10 tries, then the centre crop): [x, y, w, h]. */
export function sampleCropBox(
  width: number,
  height: number,
  o: { scale: readonly [number, number]; ratio?: readonly [number, number] | undefined },
  rng: Rng,
): [number, number, number, number] {
  const area = width * height;
  const [r0, r1] = o.ratio ?? [3 / 4, 4 / 3];
  for (let i = 0; i < 10; i++) {
    const target = area * rng.uniform(o.scale[0], o.scale[1]);
    const ratio = Math.exp(rng.uniform(Math.log(r0), Math.log(r1)));
    const w = Math.round(Math.sqrt(target * ratio));
    const h = Math.round(Math.sqrt(target / ratio));
    if (w > 0 && h > 0 && w <= width && h <= height) return [rng.int(width - w + 1), rng.int(height - h + 1), w, h];
  }
  return [0, 0, Math.min(width, height), Math.min(width, height)];
}
