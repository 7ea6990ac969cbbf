import { type PointerEvent, useCallback, useEffect, useMemo, useRef, useState, type WheelEvent } from 'react';
import { fitPoints, place } from './fit';

export interface MapPointView {
  x: number;
  y: number;
  /** Index into the palette. */
  colour: number;
}

/** Distinct colours (Tableau 20), then grey for "unlabelled". */
export const PALETTE = [
  '#4e79a7',
  '#f28e2b',
  '#e15759',
  '#76b7b2',
  '#59a14f',
  '#edc948',
  '#b07aa1',
  '#ff9da7',
  '#9c755f',
  '#bab0ac',
  '#1f77b4',
  '#aec7e8',
  '#ff7f0e',
  '#ffbb78',
  '#2ca02c',
  '#98df8a',
  '#d62728',
  '#ff9896',
  '#9467bd',
  '#c5b0d5',
];
export const UNLABELLED = '#666666';

export function colourOf(i: number): string {
  return i < 0 ? UNLABELLED : (PALETTE[i % PALETTE.length] as string);
}

/** A sequential scale, low to high (viridis, 10 steps): similarity to a text. */
export const SCALE = [
  '#440154',
  '#482878',
  '#3e4989',
  '#31688e',
  '#26828e',
  '#1f9e89',
  '#35b779',
  '#6ece58',
  '#b5de2b',
  '#fde725',
];

export function scaleColour(step: number): string {
  return SCALE[Math.max(0, Math.min(SCALE.length - 1, step))] as string;
}

/** Is (x, y) inside the polygon (even-odd rule)? */
export function insidePolygon(x: number, y: number, poly: readonly [number, number][]): boolean {
  let inside = false;
  for (let i = 0, j = poly.length - 1; i < poly.length; j = i++) {
    const [xi, yi] = poly[i] as [number, number];
    const [xj, yj] = poly[j] as [number, number];
    if (yi > y !== yj > y && x < ((xj - xi) * (y - yi)) / (yj - yi) + xi) inside = !inside;
  }
  return inside;
}

interface View {
  scale: number;
  tx: number;
  ty: number;
}

/**
 * A zoomable scatter of up to ~10^5 points on one canvas (points grouped by colour, one fill style per group),
 * with pan (drag), zoom (wheel, at the cursor), lasso selection (lasso mode or Shift+drag) and hover.
 */
export function MapCanvas(props: {
  points: readonly MapPointView[];
  selected: ReadonlySet<number>;
  lasso: boolean;
  onSelect(indices: Set<number>): void;
  onHover(index: number | null, at: { x: number; y: number } | null): void;
  width?: number;
  height?: number;
  /** The colour of a point's `colour` value (default: the palette's). */
  paint?: (colour: number) => string;
}) {
  const paint = props.paint ?? colourOf;
  const W = props.width ?? 900;
  const H = props.height ?? 600;
  const ref = useRef<HTMLCanvasElement>(null);
  const fit = useMemo(() => fitPoints(props.points, W, H), [props.points, W, H]);
  const [view, setView] = useState<View>({ scale: 1, tx: 0, ty: 0 });
  // biome-ignore lint/correctness/useExhaustiveDependencies: a new map starts from the whole view
  useEffect(() => setView({ scale: 1, tx: 0, ty: 0 }), [props.points]);
  const [path, setPath] = useState<[number, number][] | null>(null);
  const drag = useRef<{ x: number; y: number; tx: number; ty: number; lasso: boolean } | null>(null);

  /** Screen position of point i. */
  const screen = useCallback(
    (p: MapPointView): [number, number] => {
      const [x, y] = place(fit, p);
      return [x * view.scale + view.tx, y * view.scale + view.ty];
    },
    [fit, view],
  );

  useEffect(() => {
    const c = ref.current;
    const ctx = c?.getContext('2d');
    if (!c || !ctx) return;
    ctx.fillStyle = '#111418';
    ctx.fillRect(0, 0, W, H);
    const r = props.points.length > 20000 ? 1.5 : 3;
    const groups = new Map<number, number[]>();
    props.points.forEach((p, i) => {
      const g = groups.get(p.colour);
      if (g) g.push(i);
      else groups.set(p.colour, [i]);
    });
    const dim = props.selected.size > 0;
    for (const [colour, idx] of groups) {
      ctx.fillStyle = paint(colour);
      ctx.globalAlpha = dim ? 0.25 : 0.85;
      for (const i of idx) {
        const [sx, sy] = screen(props.points[i] as MapPointView);
        if (sx < -r || sy < -r || sx > W + r || sy > H + r) continue;
        ctx.fillRect(sx - r, sy - r, 2 * r, 2 * r);
      }
    }
    if (dim) {
      ctx.globalAlpha = 1;
      ctx.strokeStyle = '#ffffff';
      ctx.lineWidth = 1;
      for (const i of props.selected) {
        const p = props.points[i];
        if (!p) continue;
        const [sx, sy] = screen(p);
        ctx.fillStyle = paint(p.colour);
        ctx.fillRect(sx - r - 1, sy - r - 1, 2 * r + 2, 2 * r + 2);
        ctx.strokeRect(sx - r - 1, sy - r - 1, 2 * r + 2, 2 * r + 2);
      }
    }
    ctx.globalAlpha = 1;
    if (path && path.length > 1) {
      ctx.strokeStyle = '#00e5ff';
      ctx.lineWidth = 2;
      ctx.setLineDash([6, 4]);
      ctx.beginPath();
      for (const [i, [x, y]] of path.entries()) {
        if (i) ctx.lineTo(x, y);
        else ctx.moveTo(x, y);
      }
      ctx.closePath();
      ctx.stroke();
      ctx.setLineDash([]);
    }
  }, [props.points, props.selected, screen, path, W, H, paint]);

  const local = (e: PointerEvent<HTMLCanvasElement> | WheelEvent<HTMLCanvasElement>): [number, number] => {
    const b = e.currentTarget.getBoundingClientRect();
    return [((e.clientX - b.left) * W) / b.width, ((e.clientY - b.top) * H) / b.height];
  };
  const onWheel = (e: WheelEvent<HTMLCanvasElement>) => {
    const [mx, my] = local(e);
    const f = Math.exp(-e.deltaY * 0.0015);
    setView((v) => {
      const scale = Math.min(200, Math.max(0.2, v.scale * f));
      const k = scale / v.scale;
      return { scale, tx: mx - (mx - v.tx) * k, ty: my - (my - v.ty) * k };
    });
  };
  const onDown = (e: PointerEvent<HTMLCanvasElement>) => {
    const [x, y] = local(e);
    e.currentTarget.setPointerCapture(e.pointerId);
    const lasso = props.lasso || e.shiftKey;
    drag.current = { x, y, tx: view.tx, ty: view.ty, lasso };
    if (lasso) setPath([[x, y]]);
  };
  const onMove = (e: PointerEvent<HTMLCanvasElement>) => {
    const [x, y] = local(e);
    const d = drag.current;
    if (d?.lasso) {
      setPath((p) => (p ? [...p, [x, y]] : [[x, y]]));
      return;
    }
    if (d) {
      setView((v) => ({ ...v, tx: d.tx + x - d.x, ty: d.ty + y - d.y }));
      return;
    }
    // Hover: the nearest point within 8 px.
    let best = -1;
    let bestD = 64;
    props.points.forEach((p, i) => {
      const [sx, sy] = screen(p);
      const dd = (sx - x) ** 2 + (sy - y) ** 2;
      if (dd < bestD) {
        bestD = dd;
        best = i;
      }
    });
    props.onHover(best >= 0 ? best : null, best >= 0 ? { x, y } : null);
  };
  const onUp = () => {
    const d = drag.current;
    drag.current = null;
    if (d?.lasso && path && path.length > 2) {
      const sel = new Set<number>();
      props.points.forEach((p, i) => {
        const [sx, sy] = screen(p);
        if (insidePolygon(sx, sy, path)) sel.add(i);
      });
      props.onSelect(sel);
    }
    setPath(null);
  };

  return (
    <canvas
      ref={ref}
      width={W}
      height={H}
      className={`map-canvas${props.lasso ? ' lasso' : ''}`}
      data-testid="map-canvas"
      aria-label="Embedding map: drag to pan, wheel to zoom, lasso (or Shift+drag) to select"
      onWheel={onWheel}
      onPointerDown={onDown}
      onPointerMove={onMove}
      onPointerUp={onUp}
      onPointerLeave={() => props.onHover(null, null)}
    />
  );
}
