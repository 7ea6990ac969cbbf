import { useEffect, useRef, useState } from 'react';
import type { CommandResult } from '../../../../native/api/contract';
import { frameNumber, plural } from '../../shell/format';
import { JobStatus } from '../../shell/jobs';
import { frameSrc } from '../../shell/media';
import { ActionButton } from '../../shell/Why';
import { useApp } from '../../state/app-state';
import { CountPlot, downloadCsv } from './CountCharts';

type Counter = CommandResult<'count.counters'>[number];
type Result = CommandResult<'count.unco'>;
type Box = [number, number, number, number];
type Rows = CommandResult<'count.results'>;

/** A density map drawn over the frame: each cell's mass as the opacity of a warm colour (the map's maximum opaque). */
function DensityOverlay({ result }: { result: Result }) {
  const canvas = useRef<HTMLCanvasElement>(null);
  useEffect(() => {
    const c = canvas.current;
    const ctx = c?.getContext('2d');
    if (!c || !ctx) return;
    const n = result.side;
    const img = ctx.createImageData(n, n);
    const max = Math.max(1e-9, ...result.density);
    result.density.forEach((v, i) => {
      const a = Math.max(0, Math.min(1, v / max));
      img.data.set([255, Math.round(200 * (1 - a)), 0, Math.round(220 * a)], i * 4);
    });
    ctx.putImageData(img, 0, 0);
  }, [result]);
  return (
    <canvas
      ref={canvas}
      width={result.side}
      height={result.side}
      className="density-overlay"
      data-testid="unco-density"
      aria-label={`Density map, ${result.side} × ${result.side}, summing to ${result.count.toFixed(1)}`}
    />
  );
}

/**
 * Counting with a trained UnCo counter (Train view → Counter): the frame's density map, whose sum is the count, with
 * the exemplars drawn on the frame above (a counter trained without exemplars counts automatically); for a video,
 * every frame with the exemplars of this one as a job (count.uncoVideo), drawn as a count curve over time.
 */
export function UncoPanel({
  mediaId,
  frameIdx,
  frameCount,
  boxes,
  width,
  height,
}: {
  mediaId: number;
  frameIdx: number;
  frameCount: number;
  boxes: Box[];
  width: number;
  height: number;
}) {
  const { client, run, jobs } = useApp();
  const [counters, setCounters] = useState<Counter[]>([]);
  const [jobId, setJobId] = useState<number | null>(null);
  const [result, setResult] = useState<Result | null>(null);
  const [busy, setBusy] = useState<string | null>(null);
  const [frames, setFrames] = useState<Rows | null>(null);
  /** The `count.uncoVideo` job started here, and the click until the engine answered (a second one starts nothing). */
  const [videoJob, setVideoJob] = useState<number | null>(null);
  const [starting, setStarting] = useState(false);
  const videoState = jobs.find((j) => j.id === videoJob)?.state ?? null;
  useEffect(() => {
    if (videoJob !== null && videoState === 'done')
      void run('Could not load the counts', async () =>
        setFrames(await client.call('count.results', { jobId: videoJob })),
      );
  }, [videoJob, videoState, client, run]);
  const finished = jobs.filter((j) => j.kind === 'train.unco' && j.state === 'done').length;
  useEffect(() => {
    void finished;
    void run('Could not list the trained counters', async () => {
      const list = await client.call('count.counters', {});
      setCounters(list);
      setJobId((j) => (j !== null && list.some((c) => c.jobId === j) ? j : (list.at(-1)?.jobId ?? null)));
    });
  }, [client, run, finished]);
  useEffect(() => {
    void mediaId;
    void frameIdx;
    setResult(null);
  }, [mediaId, frameIdx]);
  useEffect(() => {
    void mediaId;
    setFrames(null);
    setVideoJob(null);
  }, [mediaId]);
  const counter = counters.find((c) => c.jobId === jobId) ?? null;
  const why = !counter
    ? 'No trained counter yet: train one in the Train view (Method: Counter, UnCo).'
    : counter.shots > 0 && boxes.length === 0
      ? 'This counter counts what an exemplar shows: drag a box around one example first.'
      : null;
  const exemplars = counter && counter.shots > 0 ? boxes : [];
  const countFrame = () => {
    if (!counter) return;
    setBusy('Counting with the trained counter…');
    void run('Could not count', async () => {
      setResult(await client.call('count.unco', { jobId: counter.jobId, mediaId, frameIdx, boxes: exemplars }));
    }).finally(() => setBusy(null));
  };
  /** Every frame: the count.uncoVideo job (progress, cancel and resume in Jobs), its counts read when it is done. */
  const countEvery = () => {
    if (!counter) return;
    setFrames(null);
    setStarting(true);
    void run('Could not start counting the frames', async () => {
      const job = await client.call('count.uncoVideo', {
        jobId: counter.jobId,
        mediaId,
        boxes: exemplars,
        exemplarFrameIdx: frameIdx,
      });
      setVideoJob(job.id);
    }).finally(() => setStarting(false));
  };
  return (
    <section className="card" aria-label="Trained counter" data-testid="unco-panel">
      <h2>Trained counter (UnCo)</h2>
      <p className="muted">
        A counting decoder trained on Self-Collages of this project's frames (objects found without labels, pasted in
        known numbers): it predicts a density map whose sum is the count.
      </p>
      <div className="field-row">
        <div className="field">
          <label htmlFor="unco-counter">Counter</label>
          <select
            id="unco-counter"
            value={jobId ?? ''}
            onChange={(e) => setJobId(e.target.value ? Number(e.target.value) : null)}
          >
            {counters.length === 0 && <option value="">none trained yet</option>}
            {counters.map((c) => (
              <option key={c.jobId} value={c.jobId}>
                {c.name}
                {/* the kind, unless the counter's name already says it (default names do) */}
                {c.name.includes(c.shots ? 'with exemplars' : 'automatic')
                  ? ''
                  : ` (${c.shots ? 'with exemplars' : 'automatic'})`}
              </option>
            ))}
          </select>
          {counter?.heldoutMae != null && (
            <span className="muted" data-testid="unco-counter-note">
              held-out collage MAE {counter.heldoutMae.toFixed(2)} (always guessing their mean:{' '}
              {counter.heldoutMeanMae?.toFixed(2)}), {plural(counter.steps, 'step')}
            </span>
          )}
          {counter?.heldoutMae != null &&
            counter.heldoutMeanMae != null &&
            counter.heldoutMae >= 0.9 * counter.heldoutMeanMae && (
              <p className="warn-text" role="status" data-testid="unco-counter-weak">
                This counter is not clearly better than always guessing the mean count on its held-out collages: its
                counts are not to be trusted yet. Train it longer or on more images, or use the training-free counter.
              </p>
            )}
        </div>
        <ActionButton className="primary" why={why} busy={busy} onClick={countFrame}>
          Count with the counter{exemplars.length ? ` (${plural(exemplars.length, 'exemplar')})` : ''}
        </ActionButton>
        {frameCount > 1 && (
          <ActionButton
            why={why}
            busy={
              (starting || videoState === 'running' || videoState === 'queued') &&
              'Counting the frames with the counter (progress below).'
            }
            onClick={countEvery}
          >
            Count every frame with the counter ({frameCount})
          </ActionButton>
        )}
      </div>
      {videoJob !== null && (
        <JobStatus
          kinds={['count.uncoVideo']}
          jobs={jobs.filter((j) => j.id === videoJob)}
          testId="unco-frames-status"
        />
      )}
      {result && (
        <div className="count-layout">
          <div className="count-stage" style={{ aspectRatio: `${width} / ${height}` }}>
            <img src={frameSrc(mediaId, frameIdx)} alt="Frame counted" draggable={false} />
            <DensityOverlay result={result} />
          </div>
          <div>
            <p className="count-number" data-testid="unco-count" aria-live="polite">
              {result.count.toFixed(1)}
            </p>
            <p className="muted">
              The sum of the {result.side} × {result.side} density map drawn over the frame (the frame squashed to the
              counter's square input).
            </p>
          </div>
        </div>
      )}
      {frames && frames.length > 0 && (
        <div data-testid="unco-frames">
          <h3>Counts over {plural(frames.length, 'frame')} (trained counter)</h3>
          <p className="muted">
            Mean {(frames.reduce((a, r) => a + r.count, 0) / frames.length).toFixed(1)}, min{' '}
            {Math.min(...frames.map((r) => r.count)).toFixed(1)} (frame{' '}
            {frameNumber(frames.reduce((a, r) => (r.count < a.count ? r : a)).frameIdx)}), max{' '}
            {Math.max(...frames.map((r) => r.count)).toFixed(1)} (frame{' '}
            {frameNumber(frames.reduce((a, r) => (r.count > a.count ? r : a)).frameIdx)}): each frame's density map
            summed{exemplars.length ? `, with the exemplars of frame ${frameNumber(frameIdx)}` : ''}.
          </p>
          <CountPlot rows={frames} />
          <button
            type="button"
            onClick={() =>
              downloadCsv(`unco-counts-${mediaId}.csv`, [
                'media_id,frame,time_s,count',
                ...frames.map(
                  (r) => `${r.mediaId},${frameNumber(r.frameIdx)},${r.pts.toFixed(3)},${r.count.toFixed(2)}`,
                ),
              ])
            }
          >
            Export counts (CSV)
          </button>
        </div>
      )}
    </section>
  );
}
