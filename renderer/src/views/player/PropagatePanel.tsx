import { useEffect, useRef, useState } from 'react';
import type { CommandResult, MediaInfo } from '../../../../native/api/contract';
import { plural } from '../../shell/format';
import { frameSrc } from '../../shell/media';
import { ActionButton } from '../../shell/Why';
import { useApp } from '../../state/app-state';
import { classColour, MaskPainter } from '../segment/MaskPainter';
import { InputSizePicker } from '../segment/useCatalog';

type PropagationFrame = CommandResult<'track.propagation'>;

/** The instance ids of a propagated frame (base64, width × height). */
function decodeIds(ids: string): Uint8Array {
  return Uint8Array.from(atob(ids), (c) => c.charCodeAt(0));
}

/** A mask to correct: its objects painted, its background left unpainted (saved as background all the same). */
function objectsOnly(ids: Uint8Array): Uint8Array {
  return ids.map((v) => (v === 0 ? 255 : v));
}

const OBJECTS = ['background', 'object 1', 'object 2', 'object 3', 'object 4'];

/** A propagation run's mask of the shown frame: each object in its colour, translucent, over the frame. */
export function PropagationOverlay({ data, width, height }: { data: PropagationFrame; width: number; height: number }) {
  const ref = useRef<HTMLCanvasElement>(null);
  useEffect(() => {
    const ctx = ref.current?.getContext('2d');
    if (!ctx) return;
    ctx.clearRect(0, 0, width, height);
    if (!data.ids) return;
    const ids = decodeIds(data.ids);
    const img = ctx.createImageData(width, height);
    const sums = new Map<number, [number, number, number]>();
    for (let i = 0; i < ids.length && i < width * height; i++) {
      const o = ids[i] as number;
      if (!o) continue;
      const x = i % width;
      const y = Math.floor(i / width);
      // The object's outline opaque, its inside translucent.
      const edge =
        x === 0 ||
        y === 0 ||
        x === width - 1 ||
        y === height - 1 ||
        ids[i - 1] !== o ||
        ids[i + 1] !== o ||
        ids[i - width] !== o ||
        ids[i + width] !== o;
      const [r, g, b] = classColour(o);
      img.data.set([r, g, b, edge ? 255 : 120], i * 4);
      const s = sums.get(o) ?? [0, 0, 0];
      sums.set(o, [s[0] + x, s[1] + y, s[2] + 1]);
    }
    ctx.putImageData(img, 0, 0);
    // Each object's id at its centre, sized to the frame (the canvas is scaled to the stage).
    const font = Math.max(6, Math.round(Math.min(width, height) / 18));
    ctx.font = `${font}px sans-serif`;
    for (const [o, [sx, sy, n]] of sums) {
      const [r, g, b] = classColour(o);
      const x = Math.round(sx / n);
      const y = Math.round(sy / n);
      ctx.fillStyle = `rgb(${r}, ${g}, ${b})`;
      ctx.fillRect(x - font, y - font * 0.6, font * 2, font * 1.2);
      ctx.fillStyle = '#000';
      ctx.fillText(`#${o}`, x - font * 0.75, y + font * 0.35);
    }
  }, [data, width, height]);
  return <canvas ref={ref} width={width} height={height} className="track-canvas" data-testid="propagation-overlay" />;
}

/**
 * Mark objects once on a frame and follow them through the whole video (DINO's label propagation): draw the start
 * masks, run, scrub the coloured result, correct a frame and propagate again from there; every frame's palette PNG,
 * COCO RLE JSON and MOT boxes are written to the run's folder.
 */
export function PropagatePanel(props: {
  media: MediaInfo;
  modelId: number | null;
  frame: { index: number; pts: number } | undefined;
  jobId: number | null;
  onJob(id: number): void;
  shown: PropagationFrame | null;
}) {
  const { client, run, jobs } = useApp();
  const { media, frame } = props;
  const [painting, setPainting] = useState<'start' | 'correct' | null>(null);
  const [start, setStart] = useState<{ path: string; pts: number; frame: number } | null>(null);
  const [size, setSize] = useState(448);
  const [every, setEvery] = useState(1);
  const job = jobs.find((j) => j.id === props.jobId);
  const width = media.frameWidth ?? 0;
  const height = media.frameHeight ?? 0;

  const save = async (labels: Uint8Array) => {
    if (!frame) return;
    const bin = Array.from(labels, (v) => String.fromCharCode(v)).join('');
    const { path } = await client.call('segment.saveMask', {
      mediaId: media.id,
      frameIdx: frame.index,
      data: btoa(bin),
    });
    if (painting === 'correct' && props.shown) {
      // Propagate forward again from the corrected frame into the same folder: earlier frames stay.
      const j = await client.call('track.propagate', {
        modelId: props.modelId as number,
        mediaId: media.id,
        start: { mask: path },
        fromTime: frame.pts,
        size,
        every,
        direction: 'forward',
        outDir: props.shown.dir,
      });
      props.onJob(j.id);
    } else setStart({ path, pts: frame.pts, frame: frame.index });
    setPainting(null);
  };

  return (
    <section className="card" aria-labelledby="propagate-title">
      <h2 id="propagate-title">Follow objects through the video (mask propagation)</h2>
      <p className="muted">
        Draw the objects on one frame (object 1, 2, … in their colours); every frame of the video (or every Nth) is
        decoded and labelled from the first frame and the 3 most recent ones (DINO's protocol, with 3 recent frames
        instead of 7).
      </p>
      {painting && frame ? (
        <MaskPainter
          // A new painter for each frame and purpose: a correction starts from the frame's propagated mask.
          key={`${painting}-${frame.index}`}
          src={frameSrc(media.id, frame.index)}
          width={width}
          height={height}
          classes={OBJECTS}
          unpainted="Unpainted pixels are background."
          initial={painting === 'correct' && props.shown?.ids ? objectsOnly(decodeIds(props.shown.ids)) : undefined}
          onSave={(labels) => void run('Could not save the mask', () => save(labels))}
          onCancel={() => setPainting(null)}
        />
      ) : null}
      <div className="field-row">
        <InputSizePicker id="propagate-size" value={size} onChange={setSize} />
        <div className="field">
          <label htmlFor="propagate-every">Every Nth frame of the video</label>
          <input
            id="propagate-every"
            type="number"
            min={1}
            max={1000}
            value={every}
            onChange={(e) => setEvery(Math.max(1, Number(e.target.value) || 1))}
          />
        </div>
      </div>
      <div className="row-actions">
        <ActionButton
          why={!frame ? 'Waiting for the frame.' : painting !== null ? 'Finish the masks being drawn first.' : null}
          onClick={() => setPainting('start')}
        >
          Draw start masks on this frame
        </ActionButton>
        <ActionButton
          className="primary"
          why={!props.modelId ? 'Choose a model above first.' : !start ? 'Draw start masks on a frame first.' : null}
          onClick={() =>
            void run('Could not start the propagation', async () => {
              const j = await client.call('track.propagate', {
                modelId: props.modelId as number,
                mediaId: media.id,
                start: { mask: (start as { path: string }).path },
                fromTime: (start as { pts: number }).pts,
                size,
                every,
              });
              props.onJob(j.id);
            })
          }
        >
          Propagate
        </ActionButton>
        <ActionButton
          why={
            job?.state === 'running'
              ? 'Wait for the propagation to finish.'
              : !props.shown?.ids || !frame
                ? 'Propagate first: a frame with propagated masks can be corrected.'
                : painting !== null
                  ? 'Finish the masks being drawn first.'
                  : null
          }
          onClick={() => setPainting('correct')}
        >
          Correct this frame and propagate again
        </ActionButton>
      </div>
      {start && (
        <p className="muted" data-testid="propagate-start">
          Start masks on frame {start.frame + 1}.
        </p>
      )}
      {job && (
        <p className="muted" data-testid="propagate-status">
          Run #{job.id}: {job.state}
          {job.state === 'running' && job.progress.total
            ? ` — ${job.progress.done} of ${job.progress.total} frames${job.progress.rate ? `, ${job.progress.rate.toFixed(1)} frames/s` : ''}${job.progress.etaS ? `, ${Math.ceil(job.progress.etaS)} s left` : ''}`
            : ''}
          {job.error ? ` — ${job.error.message}` : ''}
        </p>
      )}
      {props.shown && job?.state === 'done' && (
        <p className="muted mono" data-testid="propagate-exported">
          {plural(props.shown.frames, 'frame')}, {plural(props.shown.objects, 'object')}: palette PNGs (DAVIS layout),
          coco.json (RLE) and mot.txt (boxes) in {props.shown.dir}
        </p>
      )}
      {props.shown?.frame !== null && props.shown?.frame !== undefined && (
        <p className="muted" data-testid="propagate-frame">
          Showing the run's frame {props.shown.frame + 1} of {props.shown.frames}.
        </p>
      )}
    </section>
  );
}
