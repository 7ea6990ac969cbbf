/**
 * Streaming frame decode through ffmpeg's rawvideo pipe: sampled at a chosen policy, scaled to a chosen size, with
 * each frame's exact source timestamp (from the showinfo filter). Back-pressure is the pipe's: when the consumer
 * stops pulling, ffmpeg blocks. Memory stays one frame plus the pipe buffer, whatever the video's length.
 */
import { spawn } from 'node:child_process';
import { findBinaries } from './ffmpeg.js';
import { classifyFfmpegError, MediaError, MediaToolError } from './probe.js';

export type Sampling =
  | { policy: 'fps'; fps: number }
  | { policy: 'every'; n: number }
  | { policy: 'keyframes' }
  | { policy: 'scene'; threshold: number };

export interface DecodeOptions {
  sampling: Sampling;
  width: number;
  height: number;
  /** Source frame rate (needed by 'every' to number frames from timestamps). */
  sourceFps?: number | null;
  /** Decode from this source time (seconds); frames keep absolute timestamps. */
  startS?: number;
  /** Stop at this source time (seconds). */
  endS?: number;
  /** Extra filters applied before scaling (e.g. EXIF orientation for stills). */
  preFilters?: string[];
  signal?: AbortSignal;
}

export interface DecodedFrame {
  /** Position in this decode run (0-based). */
  seq: number;
  /** Source presentation time in seconds. */
  pts: number;
  /** RGB24, width * height * 3 bytes. */
  data: Uint8Array;
}

export interface DecodeStats {
  frames: number;
  /** Decoder complaints (damaged packets, concealed errors), deduplicated. */
  warnings: string[];
}

export function samplingFilter(s: Sampling, sourceFps?: number | null): string | null {
  switch (s.policy) {
    case 'fps':
      return `fps=fps=${s.fps}:round=near`;
    case 'every':
      // Frame numbers from timestamps, so a resumed (seeked) decode keeps the same grid.
      return sourceFps ? `select='not(mod(round(t*${sourceFps})\\,${s.n}))'` : `select='not(mod(n\\,${s.n}))'`;
    case 'keyframes':
      return null; // -skip_frame nokey does it in the decoder: far faster than decoding everything
    case 'scene':
      // The first frame always, then frames that differ from the previous one by more than the threshold.
      return `select='eq(n\\,0)+gt(scene\\,${s.threshold})'`;
  }
}

/**
 * The video filter chain of a decode before `showinfo`: sampling, then bicubic scaling to the frame size. Shared with
 * `train.export`, whose exported program runs the same chain to decode the frames on another machine.
 */
export function videoFilters(
  sampling: Sampling,
  width: number,
  height: number,
  sourceFps?: number | null,
  preFilters: readonly string[] = [],
): string[] {
  const filters = [...preFilters];
  const sel = samplingFilter(sampling, sourceFps);
  if (sel) filters.push(sel);
  filters.push(`scale=${width}:${height}:flags=bicubic`);
  return filters;
}

const SHOWINFO = /\bn:\s*(\d+)\s+pts:\s*(-?\d+)\s+pts_time:\s*(-?[\d.]+(?:e[-+]?\d+)?)/;
const WARNING = /error|corrupt|invalid|concealing|missing|truncat|overread/i;

export async function* decodeVideo(
  file: string,
  o: DecodeOptions,
  stats: DecodeStats = { frames: 0, warnings: [] },
): AsyncGenerator<DecodedFrame> {
  const { ffmpeg } = findBinaries();
  const args = ['-hide_banner', '-nostdin', '-v', 'info'];
  if (o.sampling.policy === 'keyframes') args.push('-skip_frame', 'nokey');
  if (o.startS && o.startS > 0) args.push('-ss', o.startS.toFixed(6));
  args.push('-copyts', '-i', file);
  if (o.endS !== undefined) args.push('-to', o.endS.toFixed(6));
  const filters = [...videoFilters(o.sampling, o.width, o.height, o.sourceFps, o.preFilters), 'showinfo'];
  args.push(
    '-an',
    '-sn',
    '-dn',
    '-vf',
    filters.join(','),
    '-vsync',
    '0',
    '-f',
    'rawvideo',
    '-pix_fmt',
    'rgb24',
    'pipe:1',
  );

  const child = spawn(ffmpeg.path, args, { stdio: ['ignore', 'pipe', 'pipe'] });
  const onAbort = () => child.kill('SIGKILL');
  o.signal?.addEventListener('abort', onAbort, { once: true });

  const pts: number[] = [];
  let stderrTail = '';
  let partial = '';
  let wake: (() => void) | null = null;
  const seen = new Set<string>();
  child.stderr.setEncoding('utf8');
  child.stderr.on('data', (chunk: string) => {
    partial += chunk;
    const lines = partial.split(/\r?\n/);
    partial = lines.pop() ?? '';
    for (const line of lines) {
      const m = SHOWINFO.exec(line);
      if (m) {
        pts.push(Number(m[3]));
        wake?.();
        continue;
      }
      stderrTail = `${stderrTail}\n${line}`.slice(-4000);
      if (WARNING.test(line) && !line.startsWith('  ') && stats.warnings.length < 20) {
        const key = line.replace(/0x[0-9a-f]+/g, '').replace(/\d+/g, '#');
        if (!seen.has(key)) {
          seen.add(key);
          stats.warnings.push(line.trim());
        }
      }
    }
  });
  // A spawn failure ('error', e.g. ffmpeg not executable) must not be an unhandled event: it ends the engine.
  let spawnError: unknown = null;
  child.once('error', (err) => {
    spawnError = err;
  });
  const exited = new Promise<number | null>((resolve) => {
    child.once('close', (code) => resolve(code));
    child.once('error', () => resolve(null));
  });
  const stderrDone = new Promise<void>((resolve) => child.stderr.once('end', () => resolve()));

  const frameBytes = o.width * o.height * 3;
  let buf = Buffer.alloc(frameBytes);
  let filled = 0;
  let seq = 0;
  const nextPts = async (): Promise<number> => {
    while (pts.length === 0) {
      const ended = await Promise.race([
        new Promise<false>((r) => (wake = () => r(false))),
        stderrDone.then(() => true),
      ]);
      wake = null;
      if (ended && pts.length === 0) return Number.NaN;
    }
    return pts.shift() as number;
  };
  try {
    for await (const chunk of child.stdout as AsyncIterable<Buffer>) {
      let off = 0;
      while (off < chunk.length) {
        const n = Math.min(frameBytes - filled, chunk.length - off);
        chunk.copy(buf, filled, off, off + n);
        filled += n;
        off += n;
        if (filled === frameBytes) {
          const t = await nextPts();
          stats.frames++;
          yield { seq: seq++, pts: t, data: new Uint8Array(buf.buffer, buf.byteOffset, frameBytes) };
          buf = Buffer.alloc(frameBytes);
          filled = 0;
        }
      }
    }
    const code = await exited;
    if (o.signal?.aborted) return;
    if (spawnError) throw new MediaToolError('ffmpeg', ffmpeg.path, spawnError);
    if (code !== 0) {
      const { problem, reason } = classifyFfmpegError(stderrTail);
      throw new MediaError(problem, `${reason}`, stderrTail.trim());
    }
  } finally {
    o.signal?.removeEventListener('abort', onAbort);
    if (child.exitCode === null) child.kill('SIGKILL');
  }
}

/** One still image (or a video's frame at `atS`) as RGB at the given size. */
export async function decodeStill(
  file: string,
  width: number,
  height: number,
  preFilters: string[] = [],
): Promise<Uint8Array> {
  for await (const f of decodeVideo(file, { sampling: { policy: 'every', n: 1 }, width, height, preFilters }))
    return f.data;
  throw new MediaError('CORRUPT', 'no picture could be decoded');
}
