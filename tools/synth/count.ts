/**
 * Synthetic counting scenes: a textured background with N objects of a target category (2 to 60, sizes varied,
 * not overlapping) among distractors of the other categories. Ground truth: the count and centre of every target.
 */
import { background, CATEGORIES, inside, objectColour, rng } from './tour.js';

export interface CountScene {
  width: number;
  height: number;
  rgb: Uint8Array;
  target: number;
  count: number;
  centres: [number, number][];
  /** Box of one target object (x, y, w, h), the exemplar a user would draw. */
  exemplar: [number, number, number, number];
  distractors: number;
}

export function makeCountScene(seed: number, o: { size?: number; min?: number; max?: number } = {}): CountScene {
  const W = o.size ?? 320;
  const H = W;
  const r = rng(seed);
  const count = Math.round((o.min ?? 2) + r() * ((o.max ?? 60) - (o.min ?? 2)));
  const target = 1 + Math.floor(r() * CATEGORIES.length);
  const distractors = Math.floor(r() * 12);
  // Smaller objects when there are many, as in real scenes.
  const radius = Math.max(6, Math.min(24, Math.round(W / (3.4 * Math.sqrt(count + distractors + 2)))));
  const placed: { x: number; y: number; r: number; category: number; hue: [number, number, number]; phase: number }[] =
    [];
  const palettes: Record<number, [number, number, number]> = { 1: [230, 60, 50], 2: [50, 110, 230], 3: [240, 200, 40] };
  const place = (category: number) => {
    for (let tries = 0; tries < 400; tries++) {
      const rr = radius * (0.8 + 0.4 * r());
      const x = rr + r() * (W - 2 * rr);
      const y = rr + r() * (H - 2 * rr);
      if (placed.every((p) => Math.hypot(p.x - x, p.y - y) > (p.r + rr) * 1.2)) {
        const base = palettes[category] as [number, number, number];
        const j = () => 0.85 + 0.3 * r();
        placed.push({
          x,
          y,
          r: rr,
          category,
          hue: [Math.min(255, base[0] * j()), Math.min(255, base[1] * j()), Math.min(255, base[2] * j())],
          phase: r() * 6,
        });
        return true;
      }
    }
    return false;
  };
  let n = 0;
  for (let i = 0; i < count; i++) if (place(target)) n++;
  let d = 0;
  for (let i = 0; i < distractors; i++)
    if (place(1 + ((target - 1 + 1 + Math.floor(r() * 2)) % CATEGORIES.length))) d++;
  const rgb = new Uint8Array(W * H * 3);
  const ox = r() * 500;
  for (let y = 0; y < H; y++) {
    for (let x = 0; x < W; x++) {
      let c = background(x + ox, y + H, H * 2, seed);
      for (const p of placed) {
        const dx = x - p.x;
        const dy = y - p.y;
        if (Math.abs(dx) <= p.r * 1.3 && Math.abs(dy) <= p.r * 1.3 && inside(p.category, dx, dy, p.r))
          c = objectColour(p, dx, dy);
      }
      rgb.set(
        [Math.max(0, Math.min(255, c[0])), Math.max(0, Math.min(255, c[1])), Math.max(0, Math.min(255, c[2]))],
        (y * W + x) * 3,
      );
    }
  }
  const targets = placed.filter((p) => p.category === target);
  return sceneOf({ width: W, height: H, rgb, target, count: n, distractors: d }, targets, radius);
}

/**
 * A scene's ground truth: the target count, the targets' centres, the first one's box as the exemplar (the image's
 * centre at `radius` when there is none).
 */
function sceneOf(
  scene: Omit<CountScene, 'centres' | 'exemplar'>,
  targets: readonly { x: number; y: number; r: number }[],
  radius: number,
): CountScene {
  const ex = targets[0] ?? { x: scene.width / 2, y: scene.height / 2, r: radius };
  return { ...scene, centres: targets.map((p) => [p.x, p.y]), exemplar: boxOf(ex) };
}

/** The box around an object (x, y, w, h), as a user would draw it. */
function boxOf(p: { x: number; y: number; r: number }): [number, number, number, number] {
  return [Math.round(p.x - p.r), Math.round(p.y - p.r), Math.round(2 * p.r), Math.round(2 * p.r)];
}

/** Paints an object within its own box: the pixels inside `shape` (within 1.3 radii), coloured by `colour`. */
function paint(
  rgb: Uint8Array,
  W: number,
  H: number,
  p: { x: number; y: number; r: number },
  shape: number,
  colour: (dx: number, dy: number) => [number, number, number],
): void {
  const e = Math.ceil(p.r * 1.3);
  for (let y = Math.max(0, Math.floor(p.y - e)); y <= Math.min(H - 1, Math.ceil(p.y + e)); y++)
    for (let x = Math.max(0, Math.floor(p.x - e)); x <= Math.min(W - 1, Math.ceil(p.x + e)); x++) {
      const dx = x - p.x;
      const dy = y - p.y;
      if (!inside(shape, dx, dy, p.r)) continue;
      const c = colour(dx, dy);
      for (let k = 0; k < 3; k++) rgb[(y * W + x) * 3 + k] = Math.max(0, Math.min(255, c[k] as number));
    }
}

/**
 * A dense counting scene, as crowd photos are: a large image (2000×1500 by default) with `count` small objects of
 * the target category (radius `radius` px, ±20 %, not overlapping) among a few distractors of the other categories.
 * Objects are drawn in their own boxes (the scene scan above would take minutes at this size), placed through a
 * grid of buckets.
 */
export function makeDenseCountScene(
  seed: number,
  o: { width?: number; height?: number; count: number; radius: number; distractors?: number },
): CountScene {
  const W = o.width ?? 2000;
  const H = o.height ?? 1500;
  const r = rng(seed);
  const target = 1 + Math.floor(r() * CATEGORIES.length);
  const palettes: Record<number, [number, number, number]> = { 1: [230, 60, 50], 2: [50, 110, 230], 3: [240, 200, 40] };
  const cell = Math.max(8, Math.ceil(o.radius * 3));
  const cols = Math.ceil(W / cell);
  const buckets = new Map<number, { x: number; y: number; r: number }[]>();
  type Placed = { x: number; y: number; r: number; category: number; hue: [number, number, number]; phase: number };
  const placed: Placed[] = [];
  const place = (category: number): boolean => {
    for (let tries = 0; tries < 200; tries++) {
      const rr = o.radius * (0.8 + 0.4 * r());
      const x = rr + r() * (W - 2 * rr);
      const y = rr + r() * (H - 2 * rr);
      const bx = Math.floor(x / cell);
      const by = Math.floor(y / cell);
      let free = true;
      for (let dy = -1; dy <= 1 && free; dy++)
        for (let dx = -1; dx <= 1 && free; dx++)
          for (const p of buckets.get((by + dy) * cols + bx + dx) ?? [])
            if (Math.hypot(p.x - x, p.y - y) <= (p.r + rr) * 1.2) free = false;
      if (!free) continue;
      const base = palettes[category] as [number, number, number];
      const j = () => 0.85 + 0.3 * r();
      const p: Placed = {
        x,
        y,
        r: rr,
        category,
        hue: [Math.min(255, base[0] * j()), Math.min(255, base[1] * j()), Math.min(255, base[2] * j())],
        phase: r() * 6,
      };
      placed.push(p);
      const key = by * cols + bx;
      buckets.set(key, [...(buckets.get(key) ?? []), p]);
      return true;
    }
    return false;
  };
  let n = 0;
  for (let i = 0; i < o.count; i++) if (place(target)) n++;
  let d = 0;
  for (let i = 0; i < (o.distractors ?? Math.round(o.count / 10)); i++)
    if (place(1 + ((target - 1 + 1 + Math.floor(r() * 2)) % CATEGORIES.length))) d++;
  const rgb = new Uint8Array(W * H * 3);
  const ox = r() * 500;
  for (let y = 0; y < H; y++)
    for (let x = 0; x < W; x++) {
      const c = background(x + ox, y + H, H * 2, seed);
      rgb[(y * W + x) * 3] = Math.max(0, Math.min(255, c[0]));
      rgb[(y * W + x) * 3 + 1] = Math.max(0, Math.min(255, c[1]));
      rgb[(y * W + x) * 3 + 2] = Math.max(0, Math.min(255, c[2]));
    }
  for (const p of placed) paint(rgb, W, H, p, p.category, (dx, dy) => objectColour(p, dx, dy));
  const targets = placed.filter((p) => p.category === target);
  return sceneOf({ width: W, height: H, rgb, target, count: n, distractors: d }, targets, o.radius);
}

/** A kind of look-alike distractor: what it shares with the target and what differs. */
export type LookAlike = 'colour' | 'shape' | 'texture';

/**
 * A counting scene with look-alike distractors, as real scenes have (other fruit among the apples): `count` targets
 * (8 to 50) and 2 or 3 kinds of distractors, each sharing all but one property with the target — another colour
 * (same shape and texture), another shape (same colour and texture) or another texture (same shape and colour) —
 * 8 to 30 of each, so that a counter that takes every look-alike overcounts several times over. Not overlapping.
 * `kinds[i].box`: one distractor of each kind, the negative exemplar a user would draw; `centres`: all of them.
 */
export function makeDistractorCountScene(
  seed: number,
  o: { size?: number } = {},
): CountScene & {
  kinds: { kind: LookAlike; count: number; box: [number, number, number, number]; centres: [number, number][] }[];
} {
  const W = o.size ?? 512;
  const H = W;
  const r = rng(seed);
  const target = 1 + Math.floor(r() * CATEGORIES.length);
  const other = (c: number) => 1 + ((c - 1 + 1 + Math.floor(r() * 2)) % CATEGORIES.length);
  const palettes: Record<number, [number, number, number]> = { 1: [230, 60, 50], 2: [50, 110, 230], 3: [240, 200, 40] };
  const all: LookAlike[] = ['colour', 'shape', 'texture'];
  // 2 or 3 kinds, in a seeded order.
  const order = [...all].sort(() => r() - 0.5);
  const kinds = order.slice(0, 2 + Math.floor(r() * 2)).map((kind) => ({
    kind,
    count: 8 + Math.floor(r() * 23),
    shape: kind === 'shape' ? other(target) : target,
    texture: kind === 'texture' ? other(target) : target,
    palette: kind === 'colour' ? other(target) : target,
  }));
  const count = 8 + Math.floor(r() * 43);
  const total = count + kinds.reduce((a, k) => a + k.count, 0);
  const radius = Math.max(6, Math.min(24, Math.round(W / (3.4 * Math.sqrt(total + 2)))));
  type Placed = { x: number; y: number; r: number; shape: number; texture: number; hue: [number, number, number] };
  const placed: (Placed & { phase: number; target: boolean; kind: number })[] = [];
  const place = (shape: number, texture: number, palette: number, kind: number): boolean => {
    for (let tries = 0; tries < 400; tries++) {
      const rr = radius * (0.8 + 0.4 * r());
      const x = rr + r() * (W - 2 * rr);
      const y = rr + r() * (H - 2 * rr);
      if (!placed.every((p) => Math.hypot(p.x - x, p.y - y) > (p.r + rr) * 1.3)) continue;
      const base = palettes[palette] as [number, number, number];
      const j = () => 0.85 + 0.3 * r();
      placed.push({
        x,
        y,
        r: rr,
        shape,
        texture,
        hue: [Math.min(255, base[0] * j()), Math.min(255, base[1] * j()), Math.min(255, base[2] * j())],
        phase: r() * 6,
        target: kind < 0,
        kind,
      });
      return true;
    }
    return false;
  };
  let n = 0;
  for (let i = 0; i < count; i++) if (place(target, target, target, -1)) n++;
  const placedKinds = kinds.map((k, ki) => {
    let c = 0;
    for (let i = 0; i < k.count; i++) if (place(k.shape, k.texture, k.palette, ki)) c++;
    const first = placed.find((p) => p.kind === ki) ?? { x: W / 2, y: H / 2, r: radius };
    const box = boxOf(first);
    const centres = placed.filter((p) => p.kind === ki).map((p) => [p.x, p.y] as [number, number]);
    return { kind: k.kind, count: c, box, centres };
  });
  const rgb = new Uint8Array(W * H * 3);
  const ox = r() * 500;
  for (let y = 0; y < H; y++)
    for (let x = 0; x < W; x++) {
      const c = background(x + ox, y + H, H * 2, seed);
      for (let k = 0; k < 3; k++) rgb[(y * W + x) * 3 + k] = Math.max(0, Math.min(255, c[k] as number));
    }
  for (const p of placed)
    paint(rgb, W, H, p, p.shape, (dx, dy) => objectColour({ category: p.texture, hue: p.hue, phase: p.phase }, dx, dy));
  const distractors = placedKinds.reduce((a, k) => a + k.count, 0);
  const scene = sceneOf(
    { width: W, height: H, rgb, target, count: n, distractors },
    placed.filter((p) => p.target),
    radius,
  );
  return { ...scene, kinds: placedKinds };
}
