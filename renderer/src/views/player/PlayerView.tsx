import { type KeyboardEvent, useEffect, useMemo, useRef, useState } from 'react';
import type { CommandResult, MediaInfo, ModelInfo } from '../../../../native/api/contract';
import { formatDuration, formatTimestamp, frameLabel, plural } from '../../shell/format';
import { Icon } from '../../shell/Icon';
import { JobStatus } from '../../shell/jobs';
import { frameSrc } from '../../shell/media';
import { ActionButton } from '../../shell/Why';
import { useApp } from '../../state/app-state';
import { downloadCsv } from '../count/CountCharts';
import { InputSizePicker, ModelPicker } from '../segment/useCatalog';
import { PropagatePanel, PropagationOverlay } from './PropagatePanel';
import { TrackOverlay } from './TrackOverlay';

/**
 * A video's sampled frames with a frame-accurate scrubber. The overlay layer above the frame is where tracks and
 * masks are drawn by the views that produce them.
 */
export function PlayerView({ mediaId }: { mediaId: number }) {
  const { client, run, jobs } = useApp();
  const [media, setMedia] = useState<MediaInfo | null>(null);
  const [frames, setFrames] = useState<{ index: number; pts: number }[]>([]);
  const [index, setIndex] = useState(0);
  const [playing, setPlaying] = useState(false);
  const scrubber = useRef<HTMLInputElement>(null);
  const [runs, setRuns] = useState<CommandResult<'track.runs'>>([]);
  const [trackRun, setTrackRun] = useState<number | null>(null);
  const [trackFrame, setTrackFrame] = useState<CommandResult<'track.frame'> | null>(null);
  const [exported, setExported] = useState<string | null>(null);
  /** Instance masks at the video's own resolution (as segment.batch exports) or at the stored frames' size. */
  const [maskSize, setMaskSize] = useState<'source' | 'frame'>('source');
  const [models, setModels] = useState<ModelInfo[]>([]);
  const [modelId, setModelId] = useState<number | null>(null);
  const [trackSize, setTrackSize] = useState(224);
  /** Bumped by every models.changed event (a listing asked for before one is older than it). */
  const modelChanges = useRef(0);
  const finished = jobs.filter((j) => j.kind === 'track.dora' && j.state === 'done').length;
  const [propJob, setPropJob] = useState<number | null>(null);
  const [propFrame, setPropFrame] = useState<CommandResult<'track.propagation'> | null>(null);
  const propProgress = jobs.find((j) => j.id === propJob)?.progress.done ?? 0;
  /** A click on "Discover and track objects" until the engine answered: a second click starts nothing. */
  const [starting, setStarting] = useState(false);
  /** This video's tracking job while it is queued or running: the button waits, its progress is shown beside it. */
  const tracking = jobs.find(
    (j) => j.kind === 'track.dora' && j.args.mediaId === mediaId && (j.state === 'running' || j.state === 'queued'),
  );
  // A model added from this view (the starter model's button) is chosen at once.
  useEffect(
    () =>
      client.subscribe((e) => {
        if (e.type !== 'models.changed') return;
        modelChanges.current++;
        setModels(e.models);
        setModelId((id) => id ?? e.models[0]?.id ?? null);
      }),
    [client],
  );
  // biome-ignore lint/correctness/useExhaustiveDependencies: reload when a tracking job finishes
  useEffect(() => {
    void run('Could not load the tracks', async () => {
      const asked = modelChanges.current;
      const [r, m] = await Promise.all([client.call('track.runs', { mediaId }), client.call('models.list', {})]);
      setRuns(r);
      // A model added while the listing was on its way is not taken back.
      if (asked === modelChanges.current) setModels(m);
      setModelId((id) => id ?? m[0]?.id ?? null);
      setTrackRun((id) => id ?? r[r.length - 1]?.id ?? null);
    });
  }, [client, run, mediaId, finished]);

  useEffect(() => {
    setIndex(0);
    setPlaying(false);
    void run('Could not open the video', async () => {
      const [m, f] = await Promise.all([
        client.call('library.get', { id: mediaId }),
        client.call('library.frames', { id: mediaId }),
      ]);
      setMedia(m);
      setFrames(f.frames);
    });
  }, [client, run, mediaId]);

  const count = frames.length;
  const frame = frames[Math.min(index, Math.max(0, count - 1))];
  useEffect(() => {
    if (trackRun === null || !frame) {
      setTrackFrame(null);
      return;
    }
    let live = true;
    void client.call('track.frame', { runId: trackRun, frameIdx: frame.index }).then(
      (t) => live && setTrackFrame(t),
      () => live && setTrackFrame(null),
    );
    return () => {
      live = false;
    };
  }, [client, trackRun, frame]);
  // The propagation run's mask of the shown frame; refreshed as the run writes frames.
  // biome-ignore lint/correctness/useExhaustiveDependencies: refetch as the run progresses
  useEffect(() => {
    if (propJob === null || !frame || !media?.frameWidth || !media.frameHeight) {
      setPropFrame(null);
      return;
    }
    let live = true;
    void client
      .call('track.propagation', { jobId: propJob, pts: frame.pts, width: media.frameWidth, height: media.frameHeight })
      .then(
        (p) => live && setPropFrame(p),
        () => live && setPropFrame(null),
      );
    return () => {
      live = false;
    };
  }, [client, propJob, frame, media, propProgress]);
  const interval = useMemo(() => {
    if (!media?.sampling) return 200;
    if (media.sampling.policy === 'fps') return 1000 / media.sampling.fps;
    return 200;
  }, [media]);

  // Keep the next frames in the browser cache so stepping and playing stay smooth.
  useEffect(() => {
    for (let k = 1; k <= 4 && index + k < count; k++) {
      const img = new Image();
      img.src = frameSrc(mediaId, index + k);
    }
  }, [index, count, mediaId]);

  useEffect(() => {
    if (!playing) return;
    const t = setInterval(() => {
      setIndex((i) => {
        if (i + 1 >= count) {
          setPlaying(false);
          return i;
        }
        return i + 1;
      });
    }, interval);
    return () => clearInterval(t);
  }, [playing, count, interval]);

  useEffect(() => {
    const onKey = (e: globalThis.KeyboardEvent) => {
      const target = e.target as HTMLElement | null;
      // Typing in a field is not scrubbing (the scrubber itself handles arrows natively, so skip it too).
      if (target && (target.tagName === 'INPUT' || target.tagName === 'SELECT' || target.tagName === 'TEXTAREA'))
        return;
      handleKey(e);
    };
    window.addEventListener('keydown', onKey);
    return () => window.removeEventListener('keydown', onKey);
  });

  const handleKey = (e: Pick<KeyboardEvent, 'key' | 'shiftKey' | 'preventDefault'>) => {
    const step = e.shiftKey ? 10 : 1;
    if (e.key === 'ArrowRight' || e.key === '.') setIndex((i) => Math.min(count - 1, i + step));
    else if (e.key === 'ArrowLeft' || e.key === ',') setIndex((i) => Math.max(0, i - step));
    else if (e.key === 'Home') setIndex(0);
    else if (e.key === 'End') setIndex(count - 1);
    else if (e.key === ' ') setPlaying((p) => !p);
    else return;
    e.preventDefault();
  };

  if (!media) return <p className="muted">Loading…</p>;
  return (
    <div className="view view-wide player">
      <header className="view-header">
        <a href="#/library" className="back-link">
          <Icon name="back" /> Library
        </a>
        <h1 className="media-title">{media.name}</h1>
      </header>
      <div
        className="stage"
        style={{
          aspectRatio: `${media.frameWidth ?? 16} / ${media.frameHeight ?? 9}`,
          // As wide as the frame can be within 65% of the window height, so overlays line up with the picture.
          maxWidth: `calc(65vh * ${(media.frameWidth ?? 16) / (media.frameHeight ?? 9)})`,
        }}
      >
        {frame && (
          <img
            className="frame"
            src={frameSrc(mediaId, frame.index)}
            alt={`Frame ${frame.index + 1} of ${count} at ${formatTimestamp(frame.pts)}`}
            data-testid="player-frame"
          />
        )}
        <div className="overlay-layer" data-testid="overlay-layer">
          {trackFrame && media.frameWidth && media.frameHeight && (
            <TrackOverlay data={trackFrame} width={media.frameWidth} height={media.frameHeight} />
          )}
          {propFrame && media.frameWidth && media.frameHeight && (
            <PropagationOverlay data={propFrame} width={media.frameWidth} height={media.frameHeight} />
          )}
        </div>
      </div>
      <div className="transport">
        <button
          type="button"
          className="icon-only"
          onClick={() => setPlaying((p) => !p)}
          aria-label={playing ? 'Pause' : 'Play'}
          title={playing ? 'Pause (Space)' : 'Play (Space)'}
        >
          <Icon name={playing ? 'pause' : 'play'} />
        </button>
        <button
          type="button"
          className="icon-only"
          onClick={() => setIndex((i) => Math.max(0, i - 1))}
          aria-label="Previous frame"
          title="Previous frame (Left arrow)"
        >
          <Icon name="previous" />
        </button>
        <input
          ref={scrubber}
          className="scrubber"
          type="range"
          min={0}
          max={Math.max(0, count - 1)}
          step={1}
          value={Math.min(index, Math.max(0, count - 1))}
          onChange={(e) => setIndex(Number(e.target.value))}
          aria-label="Frame"
          aria-valuetext={frame ? `${frameLabel(frame.index, count)}, ${formatTimestamp(frame.pts)}` : ''}
          data-testid="scrubber"
        />
        <button
          type="button"
          className="icon-only"
          onClick={() => setIndex((i) => Math.min(count - 1, i + 1))}
          aria-label="Next frame"
          title="Next frame (Right arrow)"
        >
          <Icon name="next" />
        </button>
        <span className="mono" data-testid="frame-position">
          {frame ? `${frameLabel(frame.index, count)} · ${formatTimestamp(frame.pts)}` : 'no frames'}
        </span>
      </div>
      <dl className="facts card">
        <dt>Source</dt>
        <dd>
          {media.width}×{media.height}
          {media.rotation ? ` (rotated ${media.rotation}°)` : ''}, {media.codec}, {media.fps?.toFixed(2)} fps,{' '}
          {formatDuration(media.durationS)}
          {media.keyframeIntervalS !== null && `, keyframe every ${media.keyframeIntervalS} s`}
        </dd>
        <dt>Sampled</dt>
        <dd>
          {plural(count, 'frame')} at {media.frameWidth}×{media.frameHeight},{' '}
          {media.sampling?.policy === 'fps' ? `${media.sampling.fps} per second` : media.sampling?.policy}
        </dd>
        <dt>File</dt>
        <dd className="mono">{media.path}</dd>
        {media.problem && (
          <>
            <dt>Problem</dt>
            <dd className="warn-text">{media.problem.message}</dd>
          </>
        )}
      </dl>
      <section className="card" aria-labelledby="tracks-title">
        <h2 id="tracks-title">Objects (Dora discovery and tracking)</h2>
        <div className="field-row">
          <ModelPicker id="track-model" models={models} value={modelId} onChange={setModelId} />
          <div className="field">
            <label htmlFor="track-run">Shown</label>
            <select
              id="track-run"
              value={trackRun ?? ''}
              onChange={(e) => setTrackRun(e.target.value ? Number(e.target.value) : null)}
            >
              <option value="">None</option>
              {runs.map((r) => (
                <option key={r.id} value={r.id}>
                  Run #{r.id}: {plural(r.objects, 'object')}, {plural(r.frames, 'frame')}, {r.grid.gridH}×{r.grid.gridW}{' '}
                  patches
                </option>
              ))}
            </select>
          </div>
          <InputSizePicker
            id="track-size"
            value={trackSize}
            onChange={setTrackSize}
            frameShort={media ? Math.min(media.frameWidth ?? 0, media.frameHeight ?? 0) || null : null}
          />
        </div>
        <div className="row-actions">
          <ActionButton
            why={!modelId && 'Needs a model: add the starter model above, or import one in Models.'}
            busy={
              starting
                ? 'Starting the tracking job…'
                : tracking &&
                  (tracking.state === 'queued'
                    ? `Tracking #${tracking.id} is queued.`
                    : `Tracking #${tracking.id}: ${tracking.progress.phase} ${tracking.progress.done}${tracking.progress.total !== null ? `/${tracking.progress.total}` : ''} ${tracking.progress.unit}`)
            }
            onClick={() => {
              setStarting(true);
              void run('Could not start tracking', () =>
                client.call('track.start', { modelId: modelId as number, mediaId, size: trackSize }),
              ).finally(() => setStarting(false));
            }}
          >
            Discover and track objects
          </ActionButton>
          {tracking?.state === 'running' && (
            <progress
              max={tracking.progress.total ?? 1}
              value={tracking.progress.total ? tracking.progress.done : undefined}
              aria-label="Tracking progress"
              data-testid="track-progress"
            />
          )}
          <ActionButton
            why={trackRun === null && 'No tracks yet: discover and track objects first.'}
            onClick={() =>
              void run('Could not export the tracks', async () => {
                const { csv } = await client.call('track.mot', { runId: trackRun as number });
                downloadCsv(`tracks-${mediaId}-${trackRun}.csv`, [csv]);
              })
            }
          >
            Export MOT CSV
          </ActionButton>
          <ActionButton
            why={trackRun === null && 'No tracks to export yet.'}
            onClick={() =>
              void run('Could not export the masks', async () => {
                const r = await client.call('track.exportMasks', { runId: trackRun as number, resolution: maskSize });
                setExported(`${r.frames} instance-mask PNGs in ${r.dir}`);
              })
            }
          >
            Export instance masks (PNG)
          </ActionButton>
          <label className="row-actions-label">
            at{' '}
            <select
              aria-label="Mask size"
              value={maskSize}
              onChange={(e) => setMaskSize(e.target.value as 'source' | 'frame')}
            >
              <option value="source">the video's own size</option>
              <option value="frame">the stored frames' size</option>
            </select>
          </label>
        </div>
        <JobStatus kinds={['track.dora']} jobs={jobs.filter((j) => j.args.mediaId === mediaId)} testId="track-status" />
        {exported && (
          <p className="muted mono" data-testid="track-exported">
            {exported}
          </p>
        )}
        {trackFrame && (
          <p className="muted" data-testid="track-summary">
            {plural(trackFrame.objects.filter((o) => o.area > 0).length, 'object')} in this frame.
          </p>
        )}
      </section>
      {media.kind === 'video' && (
        <PropagatePanel
          media={media}
          modelId={modelId}
          frame={frame}
          jobId={propJob}
          onJob={setPropJob}
          shown={propFrame}
        />
      )}
      <p className="muted">
        Keys: Left and Right arrows step a frame (with Shift: 10 frames), Home and End jump to the first and last, Space
        plays. Frames are numbered from 1.
      </p>
    </div>
  );
}
