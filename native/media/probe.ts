/**
 * ffprobe: what a media file is (image or video), its size, rotation, codec, duration, frame rate, frame count and
 * keyframe interval. Every failure becomes a typed error with a reason a person can act on.
 */
import { execFile } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { promisify } from 'node:util';
import { FlaneurError } from '../api/errors.js';
import { findBinaries } from './ffmpeg.js';

const run = promisify(execFile);

export const IMAGE_EXTENSIONS = ['jpg', 'jpeg', 'png', 'webp', 'bmp', 'tif', 'tiff', 'gif'] as const;
export const VIDEO_EXTENSIONS = [
  'mp4',
  'mov',
  'm4v',
  'mkv',
  'webm',
  'avi',
  'mpg',
  'mpeg',
  'ts',
  'mts',
  'm2ts',
  'wmv',
  'flv',
  '3gp',
  'ogv',
] as const;

/** Why a file could not be ingested; stable codes the UI groups by. */
export type MediaProblem =
  | 'ZERO_LENGTH'
  | 'NOT_MEDIA'
  | 'CORRUPT'
  | 'UNSUPPORTED_CODEC'
  | 'PERMISSION'
  | 'NOT_FOUND'
  | 'TOO_LARGE';

/** ffmpeg refuses pictures of more than 2^28 pixels (av_image_check_size2: (w + 128) * (h + 128) < INT_MAX / 8). */
export const MAX_PICTURE_PIXELS = 2 ** 28;

export class MediaError extends FlaneurError {
  constructor(
    readonly problem: MediaProblem,
    message: string,
    details?: string,
  ) {
    super('UNREADABLE_MEDIA', message, details ? { details } : {});
  }
}

/**
 * ffprobe or ffmpeg itself cannot be started (not executable, missing, wrong architecture): one error for the whole
 * job, not a CORRUPT reason on every file.
 */
export class MediaToolError extends FlaneurError {
  constructor(tool: 'ffprobe' | 'ffmpeg', binary: string, err: unknown) {
    const e = err as NodeJS.ErrnoException;
    const why =
      e.code === 'EACCES'
        ? 'permission denied (the file is not executable)'
        : e.code === 'ENOENT'
          ? 'the file does not exist'
          : e.code === 'ENOEXEC'
            ? 'it is not a program this system can run'
            : (e.message ?? String(err));
    super(
      'IO_ERROR',
      `${tool} cannot run: ${binary}: ${why}. Flaneur needs it to read media: reinstall the app's media tools (npm ci), or set ${tool === 'ffprobe' ? 'FFPROBE_PATH' : 'FFMPEG_PATH'} to a working ${tool}, then resume the job.`,
      { details: e.message, cause: err },
    );
  }
}

/** An error from starting a child process (spawn), as opposed to the program's own failure. */
export function isSpawnFailure(err: unknown): boolean {
  const e = err as { code?: unknown; syscall?: unknown } | null;
  return typeof e?.code === 'string' && typeof e.syscall === 'string' && e.syscall.startsWith('spawn');
}

export interface ProbeResult {
  kind: 'image' | 'video';
  width: number;
  height: number;
  /** Clockwise rotation to apply for display (from the display matrix or the rotate tag). */
  rotation: 0 | 90 | 180 | 270;
  codec: string;
  container: string;
  durationS: number | null;
  fps: number | null;
  frames: number | null;
  /** Median seconds between keyframes over the first packets, null for images. */
  keyframeIntervalS: number | null;
  bytes: number;
}

interface FfStream {
  codec_type?: string;
  codec_name?: string;
  width?: number;
  height?: number;
  r_frame_rate?: string;
  avg_frame_rate?: string;
  nb_frames?: string;
  duration?: string;
  tags?: Record<string, string>;
  side_data_list?: { rotation?: number; side_data_type?: string }[];
  disposition?: { attached_pic?: number };
}

function ratio(s: string | undefined): number | null {
  if (!s) return null;
  const [a, b] = s.split('/').map(Number);
  if (!a || !b) return null;
  return a / b;
}

function lastLine(s: string): string {
  return s.trim().split('\n').filter(Boolean).pop() ?? '';
}

export function classifyFfmpegError(stderr: string): { problem: MediaProblem; reason: string } {
  const line = lastLine(stderr);
  if (/moov atom not found|Truncat|end of file|partial file|Invalid NAL|corrupt|error while decoding/i.test(stderr)) {
    return { problem: 'CORRUPT', reason: `damaged or truncated (${line})` };
  }
  if (/Decoder .* not found|unsupported codec|Could not find codec|no decoder/i.test(stderr)) {
    return { problem: 'UNSUPPORTED_CODEC', reason: `no decoder for this codec (${line})` };
  }
  if (/Permission denied/i.test(stderr)) return { problem: 'PERMISSION', reason: 'permission denied' };
  if (/Invalid data found when processing input/i.test(stderr)) {
    return { problem: 'NOT_MEDIA', reason: 'not a media file ffmpeg understands' };
  }
  return { problem: 'CORRUPT', reason: line || 'ffmpeg could not read it' };
}

/** The container a file's first bytes announce, or null: tells a damaged video from a file that never was one. */
export function sniffContainer(head: Uint8Array): string | null {
  const b = Buffer.from(head.buffer, head.byteOffset, head.byteLength);
  const at = (o: number, s: string) => b.length >= o + s.length && b.toString('latin1', o, o + s.length) === s;
  if (at(4, 'ftyp') || at(4, 'moov') || at(4, 'mdat') || at(4, 'free') || at(4, 'wide')) return 'mp4';
  if (at(0, 'RIFF') && at(8, 'AVI ')) return 'avi';
  if (at(0, 'RIFF') && at(8, 'WEBP')) return 'webp';
  if (b[0] === 0x1a && b[1] === 0x45 && b[2] === 0xdf && b[3] === 0xa3) return 'matroska';
  if (at(0, 'FLV') || at(0, 'OggS')) return 'stream';
  if (b[0] === 0 && b[1] === 0 && b[2] === 1 && (b[3] === 0xba || b[3] === 0xb3)) return 'mpeg';
  if (b[0] === 0x47 && b[188] === 0x47) return 'mpegts';
  if (b[0] === 0xff && b[1] === 0xd8) return 'jpeg';
  if (at(1, 'PNG') || at(0, 'GIF8') || at(0, 'BM') || at(0, 'II*') || at(0, 'MM\u0000*')) return 'image';
  return null;
}

async function readHead(file: string): Promise<Uint8Array> {
  const fd = await fs.promises.open(file, 'r');
  try {
    const buf = Buffer.alloc(512);
    const { bytesRead } = await fd.read(buf, 0, 512, 0);
    return buf.subarray(0, bytesRead);
  } finally {
    await fd.close();
  }
}

export async function probeMedia(file: string): Promise<ProbeResult> {
  let st: fs.Stats;
  try {
    st = await fs.promises.stat(file);
    await fs.promises.access(file, fs.constants.R_OK);
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (code === 'EACCES' || code === 'EPERM') throw new MediaError('PERMISSION', `${file}: permission denied`);
    throw new MediaError('NOT_FOUND', `${file}: no such file`);
  }
  if (st.size === 0) throw new MediaError('ZERO_LENGTH', `${path.basename(file)} is empty (0 bytes)`);
  const { ffprobe } = findBinaries();
  let out: string;
  let warnings = '';
  try {
    ({ stdout: out, stderr: warnings } = await run(
      ffprobe.path,
      ['-v', 'error', '-show_streams', '-show_format', '-of', 'json', file],
      { maxBuffer: 16 << 20 },
    ));
  } catch (err) {
    if (isSpawnFailure(err)) throw new MediaToolError('ffprobe', ffprobe.path, err);
    const stderr = String((err as { stderr?: string }).stderr ?? '');
    let { problem, reason } = classifyFfmpegError(stderr);
    // ffmpeg says the same of a truncated MP4 and of a text file named .mp4; the first bytes tell them apart.
    const container = sniffContainer(await readHead(file));
    if (container && problem === 'NOT_MEDIA') {
      problem = 'CORRUPT';
      reason = `damaged or truncated ${container} file (${lastLine(stderr)})`;
    } else if (!container && (problem === 'CORRUPT' || problem === 'NOT_MEDIA')) {
      problem = 'NOT_MEDIA';
      reason = 'not a media file: its contents are not a known image or video format';
    }
    throw new MediaError(problem, `${path.basename(file)}: ${reason}`, stderr.trim());
  }
  const info = JSON.parse(out) as { streams?: FfStream[]; format?: { format_name?: string; duration?: string } };
  const video = (info.streams ?? []).find((s) => s.codec_type === 'video' && !s.disposition?.attached_pic);
  if (!video?.width || !video.height) {
    const size = /Picture size (\d+)x(\d+) is invalid/.exec(String(warnings));
    if (video && size) {
      const [w, h] = [Number(size[1]), Number(size[2])];
      throw new MediaError(
        'TOO_LARGE',
        `${path.basename(file)} is ${w}×${h} pixels (${Math.round((w * h) / 1e6)} megapixels), more than ffmpeg can decode (${Math.round(MAX_PICTURE_PIXELS / 1e6)} megapixels). Make a smaller copy with an image editor and add that.`,
        String(warnings).trim(),
      );
    }
    throw new MediaError('NOT_MEDIA', `${path.basename(file)} has no picture (no video stream)`);
  }
  const container = info.format?.format_name ?? '';
  const codec = video.codec_name ?? 'unknown';
  const stillCodecs = ['mjpeg', 'png', 'webp', 'bmp', 'tiff', 'gif', 'jpegls', 'jpeg2000'];
  const frames = video.nb_frames ? Number(video.nb_frames) : null;
  const image =
    /image2|png_pipe|jpeg_pipe|webp_pipe|bmp_pipe|tiff_pipe|gif/.test(container) && stillCodecs.includes(codec);
  const rotTag = Number(video.tags?.rotate ?? 0);
  const rotSide = video.side_data_list?.find((d) => typeof d.rotation === 'number')?.rotation ?? 0;
  // The display matrix rotation is counter-clockwise; the rotate tag is clockwise.
  const rot = ((((rotTag || -rotSide) % 360) + 360) % 360) as number;
  const rotation = (rot === 90 || rot === 180 || rot === 270 ? rot : 0) as ProbeResult['rotation'];
  if (image) {
    return {
      kind: 'image',
      width: video.width,
      height: video.height,
      rotation,
      codec,
      container,
      durationS: null,
      fps: null,
      frames: 1,
      keyframeIntervalS: null,
      bytes: st.size,
    };
  }
  const durationS = Number(video.duration ?? info.format?.duration ?? Number.NaN);
  const fps = ratio(video.avg_frame_rate) ?? ratio(video.r_frame_rate);
  return {
    kind: 'video',
    width: video.width,
    height: video.height,
    rotation,
    codec,
    container,
    durationS: Number.isFinite(durationS) ? durationS : null,
    fps,
    frames: frames ?? (fps && Number.isFinite(durationS) ? Math.round(durationS * fps) : null),
    keyframeIntervalS: await keyframeInterval(ffprobe.path, file),
    bytes: st.size,
  };
}

/** Median distance between the first keyframes (reads packet flags of the first ~30 s only). */
async function keyframeInterval(ffprobe: string, file: string): Promise<number | null> {
  try {
    const { stdout } = await run(
      ffprobe,
      [
        '-v',
        'error',
        '-select_streams',
        'v:0',
        '-read_intervals',
        '%+30',
        '-show_entries',
        'packet=pts_time,flags',
        '-of',
        'csv=p=0',
        file,
      ],
      { maxBuffer: 16 << 20 },
    );
    const keys = stdout
      .split('\n')
      .filter((l) => l.includes('K'))
      .map((l) => Number(l.split(',')[0]))
      .filter(Number.isFinite)
      .sort((a, b) => a - b);
    if (keys.length < 2) return null;
    const gaps = keys
      .slice(1)
      .map((k, i) => k - (keys[i] as number))
      .sort((a, b) => a - b);
    return Number((gaps[Math.floor(gaps.length / 2)] as number).toFixed(3));
  } catch {
    return null;
  }
}
