import { type KeyboardEvent, useEffect, useMemo, useRef, useState } from 'react';
import type { MediaInfo } from '../../../../native/api/contract';
import { formatDuration, formatTimestamp } from '../../shell/format';
import { useApp } from '../../state/app-state';

/**
 * A video's sampled frames with a frame-accurate scrubber. The overlay layer above the frame is where tracks and
 * masks are drawn by the views that produce them.
 */
export function PlayerView({ mediaId }: { mediaId: number }) {
  const { client, run } = useApp();
  const [media, setMedia] = useState<MediaInfo | null>(null);
  const [frames, setFrames] = useState<{ index: number; pts: number }[]>([]);
  const [index, setIndex] = useState(0);
  const [playing, setPlaying] = useState(false);
  const scrubber = useRef<HTMLInputElement>(null);

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
  const interval = useMemo(() => {
    if (!media?.sampling) return 200;
    if (media.sampling.policy === 'fps') return 1000 / media.sampling.fps;
    return 200;
  }, [media]);

  // Keep the next frames in the browser cache so stepping and playing stay smooth.
  useEffect(() => {
    for (let k = 1; k <= 4 && index + k < count; k++) {
      const img = new Image();
      img.src = `media/frame/${mediaId}/${index + k}.png`;
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
        <a href="#/library">← Library</a>
        <h1 className="media-title">{media.name}</h1>
      </header>
      <div className="stage" style={{ aspectRatio: `${media.frameWidth ?? 16} / ${media.frameHeight ?? 9}` }}>
        {frame && (
          <img
            className="frame"
            src={`media/frame/${mediaId}/${frame.index}.png`}
            alt={`Frame ${frame.index} at ${formatTimestamp(frame.pts)}`}
            data-testid="player-frame"
          />
        )}
        <div className="overlay-layer" data-testid="overlay-layer" />
      </div>
      <div className="transport">
        <button type="button" onClick={() => setPlaying((p) => !p)} aria-label={playing ? 'Pause' : 'Play'}>
          {playing ? '❚❚' : '▶'}
        </button>
        <button type="button" onClick={() => setIndex((i) => Math.max(0, i - 1))} aria-label="Previous frame">
          ◀︎
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
          aria-valuetext={frame ? `frame ${frame.index + 1} of ${count}, ${formatTimestamp(frame.pts)}` : ''}
          data-testid="scrubber"
        />
        <button type="button" onClick={() => setIndex((i) => Math.min(count - 1, i + 1))} aria-label="Next frame">
          ▶︎
        </button>
        <span className="mono" data-testid="frame-position">
          {frame ? `frame ${frame.index + 1}/${count} · ${formatTimestamp(frame.pts)}` : 'no frames'}
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
          {count} frames at {media.frameWidth}×{media.frameHeight},{' '}
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
      <p className="muted">Keys: ← → step a frame (Shift: 10), Home/End, Space plays.</p>
    </div>
  );
}
