import { type PointerEvent, useCallback, useEffect, useRef, useState } from 'react';
import { plural } from '../../shell/format';
import { ActionButton } from '../../shell/Why';

const IGNORE = 255;

export function classColour(c: number): [number, number, number] {
  if (c === 0) return [60, 60, 60];
  const h = ((c - 1) * 0.618034) % 1;
  const i = Math.floor(h * 6);
  const f = h * 6 - i;
  const v = 0.95;
  const p = v * 0.25;
  const q = v * (1 - 0.75 * f);
  const t = v * (1 - 0.75 * (1 - f));
  const rgb = [
    [v, t, p],
    [q, v, p],
    [p, v, t],
    [p, q, v],
    [t, p, v],
    [v, p, q],
  ][i % 6] as [number, number, number];
  return rgb.map((x) => Math.round(x * 255)) as [number, number, number];
}

/** Fills a polygon (pixel centres inside, even-odd rule) with `value`. */
export function fillPolygon(
  labels: Uint8Array,
  width: number,
  height: number,
  pts: [number, number][],
  value: number,
): void {
  if (pts.length < 3) return;
  const ys = pts.map((p) => p[1]);
  const y0 = Math.max(0, Math.floor(Math.min(...ys)));
  const y1 = Math.min(height - 1, Math.ceil(Math.max(...ys)));
  for (let y = y0; y <= y1; y++) {
    const cy = y + 0.5;
    const xs: number[] = [];
    for (let i = 0; i < pts.length; i++) {
      const [ax, ay] = pts[i] as [number, number];
      const [bx, by] = pts[(i + 1) % pts.length] as [number, number];
      if ((ay <= cy && by > cy) || (by <= cy && ay > cy)) xs.push(ax + ((cy - ay) / (by - ay)) * (bx - ax));
    }
    xs.sort((a, b) => a - b);
    for (let k = 0; k + 1 < xs.length; k += 2) {
      for (
        let x = Math.max(0, Math.ceil((xs[k] as number) - 0.5));
        x <= Math.min(width - 1, Math.floor((xs[k + 1] as number) - 0.5));
        x++
      )
        labels[y * width + x] = value;
    }
  }
}

/**
 * Draw a label mask over a frame: brush, eraser (back to "unlabelled", which the bank ignores) and polygon.
 * Starts from `initial` (class ids, width × height: a mask to correct) when given. Returns the class id per pixel
 * through `onSave`.
 */
export function MaskPainter(props: {
  src: string;
  width: number;
  height: number;
  classes: string[];
  initial?: Uint8Array | undefined;
  /** What unpainted pixels become (default: the bank's reading). */
  unpainted?: string;
  onSave(labels: Uint8Array): void;
  onCancel(): void;
}) {
  const { width, height, classes } = props;
  const canvas = useRef<HTMLCanvasElement>(null);
  const labels = useRef(
    props.initial?.length === width * height
      ? Uint8Array.from(props.initial)
      : new Uint8Array(width * height).fill(IGNORE),
  );
  const [tool, setTool] = useState<'brush' | 'eraser' | 'polygon'>('brush');
  const [cls, setCls] = useState(1 < classes.length ? 1 : 0);
  const [radius, setRadius] = useState(8);
  const [points, setPoints] = useState<[number, number][]>([]);
  const drawing = useRef(false);

  const redraw = useCallback(() => {
    const ctx = canvas.current?.getContext('2d');
    if (!ctx) return;
    const img = ctx.createImageData(width, height);
    const l = labels.current;
    for (let i = 0; i < l.length; i++) {
      const c = l[i] as number;
      if (c === IGNORE) continue;
      const [r, g, b] = classColour(c);
      img.data.set([r, g, b, 150], i * 4);
    }
    ctx.putImageData(img, 0, 0);
    if (points.length) {
      ctx.strokeStyle = '#00e5ff';
      ctx.lineWidth = 1.5;
      ctx.beginPath();
      for (const [i, [x, y]] of points.entries()) {
        if (i) ctx.lineTo(x, y);
        else ctx.moveTo(x, y);
      }
      ctx.stroke();
    }
  }, [width, height, points]);
  useEffect(redraw, [redraw]);

  const at = (e: PointerEvent<HTMLCanvasElement>): [number, number] => {
    const r = e.currentTarget.getBoundingClientRect();
    return [((e.clientX - r.left) / r.width) * width, ((e.clientY - r.top) / r.height) * height];
  };
  const paint = (x: number, y: number) => {
    const v = tool === 'eraser' ? IGNORE : cls;
    const l = labels.current;
    for (let yy = Math.max(0, Math.floor(y - radius)); yy <= Math.min(height - 1, Math.ceil(y + radius)); yy++) {
      for (let xx = Math.max(0, Math.floor(x - radius)); xx <= Math.min(width - 1, Math.ceil(x + radius)); xx++) {
        if ((xx + 0.5 - x) ** 2 + (yy + 0.5 - y) ** 2 <= radius * radius) l[yy * width + xx] = v;
      }
    }
    redraw();
  };
  const down = (e: PointerEvent<HTMLCanvasElement>) => {
    const [x, y] = at(e);
    if (tool === 'polygon') {
      setPoints((p) => [...p, [x, y]]);
      return;
    }
    drawing.current = true;
    e.currentTarget.setPointerCapture(e.pointerId);
    paint(x, y);
  };
  const move = (e: PointerEvent<HTMLCanvasElement>) => {
    if (drawing.current) paint(...at(e));
  };
  const closePolygon = () => {
    fillPolygon(labels.current, width, height, points, cls);
    setPoints([]);
  };

  return (
    <div className="painter" data-testid="mask-painter">
      <div className="toolbar">
        <fieldset className="segmented" aria-label="Tool">
          {(['brush', 'eraser', 'polygon'] as const).map((t) => (
            <button key={t} type="button" aria-pressed={tool === t} onClick={() => setTool(t)}>
              {t}
            </button>
          ))}
        </fieldset>
        <label>
          Class{' '}
          <select value={cls} onChange={(e) => setCls(Number(e.target.value))} aria-label="Class to paint">
            {classes.map((c, i) => (
              <option key={c} value={i}>
                {c}
              </option>
            ))}
          </select>
        </label>
        <label>
          Brush{' '}
          <input
            type="range"
            min={1}
            max={40}
            value={radius}
            onChange={(e) => setRadius(Number(e.target.value))}
            aria-label="Brush radius"
          />
        </label>
        {tool === 'polygon' && (
          <ActionButton onClick={closePolygon} why={points.length < 3 && 'Click at least three points on the frame.'}>
            Close polygon ({plural(points.length, 'point')})
          </ActionButton>
        )}
        <button
          type="button"
          onClick={() => {
            const l = labels.current;
            for (let i = 0; i < l.length; i++) if (l[i] === IGNORE) l[i] = 0;
            redraw();
          }}
        >
          Fill the rest with “{classes[0]}”
        </button>
      </div>
      <div className="painter-stage" style={{ aspectRatio: `${width} / ${height}` }}>
        <img src={props.src} alt="Frame to label" />
        <canvas
          ref={canvas}
          width={width}
          height={height}
          onPointerDown={down}
          onPointerMove={move}
          onPointerUp={() => {
            drawing.current = false;
          }}
          data-testid="paint-canvas"
        />
      </div>
      <div className="row-actions">
        <button type="button" className="primary" onClick={() => props.onSave(labels.current)}>
          Use this mask
        </button>
        <button type="button" onClick={props.onCancel}>
          Cancel
        </button>
        <span className="muted">{props.unpainted ?? 'Unpainted pixels are ignored by the bank.'}</span>
      </div>
    </div>
  );
}
