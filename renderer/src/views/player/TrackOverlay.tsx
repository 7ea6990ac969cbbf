import { useEffect, useRef } from 'react';
import type { CommandResult } from '../../../../native/api/contract';
import { classColour } from '../segment/MaskPainter';

type TrackFrame = CommandResult<'track.frame'>;

/** Tracked objects of the current frame: translucent patch masks, boxes and ids, in each object's colour. */
export function TrackOverlay({ data, width, height }: { data: TrackFrame; width: number; height: number }) {
  const ref = useRef<HTMLCanvasElement>(null);
  useEffect(() => {
    const c = ref.current;
    const ctx = c?.getContext('2d');
    if (!c || !ctx) return;
    ctx.clearRect(0, 0, c.width, c.height);
    // The grid keeps the frame's aspect ratio: gridH rows × gridW columns over the whole frame.
    const g = data.grid.gridW;
    const cw = width / data.grid.gridW;
    const ch = height / data.grid.gridH;
    for (const o of data.objects) {
      const [r, gg, b] = classColour(o.object);
      ctx.fillStyle = `rgba(${r}, ${gg}, ${b}, 0.35)`;
      o.mask.forEach((v, i) => {
        if (v) ctx.fillRect((i % g) * cw, Math.floor(i / g) * ch, cw, ch);
      });
      if (o.area > 0) {
        const [x, y, w, h] = o.box;
        ctx.strokeStyle = `rgb(${r}, ${gg}, ${b})`;
        ctx.lineWidth = 2;
        ctx.strokeRect(x, y, w, h);
        ctx.fillStyle = `rgb(${r}, ${gg}, ${b})`;
        ctx.fillRect(x, Math.max(0, y - 14), 22, 14);
        ctx.fillStyle = '#000';
        ctx.font = '11px sans-serif';
        ctx.fillText(`#${o.object}`, x + 3, Math.max(11, y - 3));
      }
    }
  }, [data, width, height]);
  return <canvas ref={ref} width={width} height={height} className="track-canvas" data-testid="track-overlay" />;
}
