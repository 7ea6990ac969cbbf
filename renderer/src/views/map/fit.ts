/** The map's fit of a layout into a canvas: uniform scale, a margin, centred. Shared with the e2e test. */
export interface Fit {
  x0: number;
  y0: number;
  s: number;
  ox: number;
  oy: number;
}

export const MARGIN = 20;

export function fitPoints(points: readonly { x: number; y: number }[], width: number, height: number): Fit {
  let x0 = Number.POSITIVE_INFINITY;
  let x1 = Number.NEGATIVE_INFINITY;
  let y0 = Number.POSITIVE_INFINITY;
  let y1 = Number.NEGATIVE_INFINITY;
  for (const p of points) {
    x0 = Math.min(x0, p.x);
    x1 = Math.max(x1, p.x);
    y0 = Math.min(y0, p.y);
    y1 = Math.max(y1, p.y);
  }
  const s = Math.min((width - 2 * MARGIN) / Math.max(x1 - x0, 1e-9), (height - 2 * MARGIN) / Math.max(y1 - y0, 1e-9));
  return { x0, y0, s, ox: (width - (x1 - x0) * s) / 2, oy: (height - (y1 - y0) * s) / 2 };
}

/** Canvas position of a layout point (before zoom and pan). */
export function place(f: Fit, p: { x: number; y: number }): [number, number] {
  return [f.ox + (p.x - f.x0) * f.s, f.oy + (p.y - f.y0) * f.s];
}
