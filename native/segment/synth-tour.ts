/**
 * A synthetic "walking tour": a camera moving over a textured street-like background, with moving, occluding,
 * textured objects of a few categories. Every frame comes with its instance mask, category ids and counts, so
 * tracking, segmentation and counting can be measured against ground truth. Deterministic for a given seed.
 */
export interface TourOptions {
  width: number;
  height: number;
  fps: number;
  seconds: number;
  seed: number;
  /** Objects per category. */
  objectsPerCategory: number;
}

export const CATEGORIES = [
  { id: 1, name: 'disc' },
  { id: 2, name: 'box' },
  { id: 3, name: 'kite' },
] as const;

export interface Instance {
  id: number;
  category: number;
  /** World position (px) at t=0, velocity (px/s), radius (px), depth (higher is nearer). */
  x: number;
  y: number;
  vx: number;
  vy: number;
  r: number;
  depth: number;
  hue: [number, number, number];
  phase: number;
}

export interface FrameTruth {
  index: number;
  t: number;
  counts: Record<string, number>;
  boxes: { id: number; category: number; x: number; y: number; w: number; h: number; pixels: number }[];
}

export interface RenderedFrame {
  rgb: Uint8Array;
  /** Instance id per pixel, 0 for background. */
  mask: Uint8Array;
  truth: FrameTruth;
}

/** Mulberry32: small, fast, deterministic. */
export function rng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

function hash2(x: number, y: number, seed: number): number {
  let h = (x * 374761393 + y * 668265263 + seed * 2246822519) >>> 0;
  h = Math.imul(h ^ (h >>> 13), 1274126177) >>> 0;
  return ((h ^ (h >>> 16)) >>> 0) / 4294967296;
}

function valueNoise(x: number, y: number, seed: number): number {
  const xi = Math.floor(x);
  const yi = Math.floor(y);
  const fx = x - xi;
  const fy = y - yi;
  const sx = fx * fx * (3 - 2 * fx);
  const sy = fy * fy * (3 - 2 * fy);
  const a = hash2(xi, yi, seed);
  const b = hash2(xi + 1, yi, seed);
  const c = hash2(xi, yi + 1, seed);
  const d = hash2(xi + 1, yi + 1, seed);
  return a + (b - a) * sx + (c - a) * sy + (a - b - c + d) * sx * sy;
}

/** Background: cobbles below a horizon, façade blocks with windows above, both with noise. */
export function background(wx: number, wy: number, height: number, seed: number): [number, number, number] {
  const n = 0.6 * valueNoise(wx / 9, wy / 9, seed) + 0.4 * valueNoise(wx / 31, wy / 31, seed + 1);
  const horizon = height * 0.45;
  if (wy < horizon) {
    const bx = Math.floor(wx / 90);
    const shade = 0.55 + 0.35 * hash2(bx, 0, seed + 7);
    const win = wx % 90 > 20 && wx % 90 < 70 && wy % 40 > 12 && wy % 40 < 30;
    const [r, g, b] = win ? [70, 90, 120] : [190 * shade, 150 * shade, 120 * shade];
    return [r * (0.8 + 0.3 * n), g * (0.8 + 0.3 * n), b * (0.8 + 0.3 * n)];
  }
  const cx = Math.floor(wx / 22 + (Math.floor(wy / 14) % 2) * 0.5);
  const cy = Math.floor(wy / 14);
  const edge = (wx / 22 + (Math.floor(wy / 14) % 2) * 0.5) % 1 < 0.08 || (wy / 14) % 1 < 0.1;
  const g = edge ? 60 : 110 + 60 * hash2(cx, cy, seed + 3);
  return [g * (0.85 + 0.3 * n), g * (0.85 + 0.3 * n), g * (0.8 + 0.3 * n)];
}

/** Is (dx, dy) (relative to the centre, radius r) inside an object of this category? */
export function inside(category: number, dx: number, dy: number, r: number): boolean {
  if (category === 1) return dx * dx + dy * dy <= r * r;
  if (category === 2) return Math.abs(dx) <= r * 0.85 && Math.abs(dy) <= r * 0.85;
  return Math.abs(dx) / r + Math.abs(dy) / (r * 1.3) <= 1; // a diamond ("kite")
}

export function objectColour(
  o: Pick<Instance, 'category' | 'hue' | 'phase'>,
  dx: number,
  dy: number,
): [number, number, number] {
  const [r, g, b] = o.hue;
  let k: number;
  if (o.category === 1)
    k = Math.sin((dx + dy) * 0.6 + o.phase) > 0 ? 1 : 0.45; // stripes
  else if (o.category === 2)
    k = (Math.floor((dx + 100) / 5) + Math.floor((dy + 100) / 5)) % 2 ? 1 : 0.5; // checks
  else k = (Math.round(dx / 4) ** 2 + Math.round(dy / 4) ** 2) % 3 === 0 ? 0.4 : 1; // dots
  return [r * k, g * k, b * k];
}

export function makeInstances(o: TourOptions): Instance[] {
  const rand = rng(o.seed);
  const worldW = o.width + o.seconds * 40 + 200;
  const out: Instance[] = [];
  let id = 1;
  const palettes: Record<number, [number, number, number]> = { 1: [230, 60, 50], 2: [50, 110, 230], 3: [240, 200, 40] };
  for (const cat of CATEGORIES) {
    for (let i = 0; i < o.objectsPerCategory; i++) {
      const base = palettes[cat.id] as [number, number, number];
      const jitter = () => 0.8 + 0.4 * rand();
      out.push({
        id: id++,
        category: cat.id,
        x: rand() * worldW,
        y: o.height * (0.45 + 0.5 * rand()),
        vx: (rand() - 0.5) * 60,
        vy: (rand() - 0.5) * 14,
        r: o.height * (0.06 + 0.08 * rand()),
        depth: rand(),
        hue: [Math.min(255, base[0] * jitter()), Math.min(255, base[1] * jitter()), Math.min(255, base[2] * jitter())],
        phase: rand() * 6.28,
      });
    }
  }
  return out;
}

/** The camera's world offset at time t: walking right at 40 px/s with a small bob. */
export function cameraAt(t: number, height: number): { x: number; y: number } {
  return { x: 40 * t, y: Math.sin(t * 2 * Math.PI * 0.8) * height * 0.015 };
}

export function renderFrame(o: TourOptions, instances: readonly Instance[], index: number): RenderedFrame {
  const t = index / o.fps;
  const cam = cameraAt(t, o.height);
  const W = o.width;
  const H = o.height;
  const rgb = new Uint8Array(W * H * 3);
  const mask = new Uint8Array(W * H);
  // Nearest objects last so they occlude the others.
  const order = [...instances].sort((a, b) => a.depth - b.depth);
  const placed = order.map((ob) => {
    // Objects drift along the street and sway across it, staying in the street band.
    const y = Math.min(H - ob.r, Math.max(H * 0.45, ob.y + ob.vy * Math.sin(t + ob.phase)));
    return { ob, cx: ob.x + ob.vx * t - cam.x, cy: y - cam.y };
  });
  for (let py = 0; py < H; py++) {
    for (let px = 0; px < W; px++) {
      let c = background(px + cam.x, py + cam.y, H, o.seed);
      let id = 0;
      for (const p of placed) {
        const dx = px - p.cx;
        const dy = py - p.cy;
        if (Math.abs(dx) > p.ob.r * 1.3 || Math.abs(dy) > p.ob.r * 1.3) continue;
        if (inside(p.ob.category, dx, dy, p.ob.r)) {
          c = objectColour(p.ob, dx, dy);
          id = p.ob.id;
        }
      }
      const i = py * W + px;
      rgb[i * 3] = Math.max(0, Math.min(255, c[0]));
      rgb[i * 3 + 1] = Math.max(0, Math.min(255, c[1]));
      rgb[i * 3 + 2] = Math.max(0, Math.min(255, c[2]));
      mask[i] = id;
    }
  }
  // Ground truth from the mask itself: what is visible is what counts.
  const stats = new Map<number, { x0: number; y0: number; x1: number; y1: number; n: number }>();
  for (let py = 0; py < H; py++) {
    for (let px = 0; px < W; px++) {
      const id = mask[py * W + px] as number;
      if (!id) continue;
      const s = stats.get(id) ?? { x0: px, y0: py, x1: px, y1: py, n: 0 };
      s.x0 = Math.min(s.x0, px);
      s.y0 = Math.min(s.y0, py);
      s.x1 = Math.max(s.x1, px);
      s.y1 = Math.max(s.y1, py);
      s.n++;
      stats.set(id, s);
    }
  }
  const byId = new Map(instances.map((i) => [i.id, i]));
  const boxes = [...stats.entries()]
    .sort(([a], [b]) => a - b)
    .map(([id, s]) => ({
      id,
      category: byId.get(id)?.category ?? 0,
      x: s.x0,
      y: s.y0,
      w: s.x1 - s.x0 + 1,
      h: s.y1 - s.y0 + 1,
      pixels: s.n,
    }));
  const counts: Record<string, number> = {};
  for (const c of CATEGORIES) counts[c.name] = boxes.filter((b) => b.category === c.id && b.pixels >= 50).length;
  return { rgb, mask, truth: { index, t, counts, boxes } };
}
