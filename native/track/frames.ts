/**
 * Frames for propagation, decoded for the run (not the library's sample: propagation needs consecutive frames):
 * every frame or every Nth frame of a video, or the images of a folder (DAVIS's JPEGImages/480p/<sequence>).
 * Random access in windows, so a backward pass holds a window of frames at most, never the whole video.
 */
import fs from 'node:fs';
import path from 'node:path';
import { FlaneurError } from '../api/errors.js';
import { decodeVideo } from '../media/decode.js';
import { decodeImage, type RgbImage } from '../media/image.js';

export interface FrameSource {
  /** Frames of the run. */
  readonly count: number;
  /** The frames' (and the masks') size. */
  readonly width: number;
  readonly height: number;
  read(index: number): Promise<RgbImage>;
}

/** Images of a folder in name order (JPEG or PNG), at their own size (that of the first). */
export class ImageFolderSource implements FrameSource {
  private constructor(
    readonly files: string[],
    readonly width: number,
    readonly height: number,
  ) {}

  static async open(dir: string, exts = /\.(jpe?g|png)$/i): Promise<ImageFolderSource> {
    const files = fs.existsSync(dir)
      ? fs
          .readdirSync(dir)
          .filter((f) => exts.test(f))
          .sort()
          .map((f) => path.join(dir, f))
      : [];
    if (files.length === 0) throw new FlaneurError('NOT_FOUND', `No frames (JPEG or PNG images) in ${dir}.`);
    const first = await decodeImage(files[0] as string);
    return new ImageFolderSource(files, first.width, first.height);
  }

  get count(): number {
    return this.files.length;
  }

  async read(index: number): Promise<RgbImage> {
    const img = await decodeImage(this.files[index] as string);
    if (img.width !== this.width || img.height !== this.height)
      throw new FlaneurError(
        'INVALID_ARGUMENT',
        `${this.files[index]} is ${img.width}×${img.height}, the first frame ${this.width}×${this.height}: a sequence's frames must have one size.`,
      );
    return img;
  }
}

/**
 * Every `every`th frame of a video at its displayed size. Opening lists the frames' timestamps with one decode at a
 * tiny size; reads decode windows of `window` frames around the one asked for (ahead when going forward, behind
 * when going backward), so memory holds one window.
 */
export class VideoFrameSource implements FrameSource {
  private cache = new Map<number, RgbImage>();
  private last = -1;

  private constructor(
    readonly file: string,
    readonly width: number,
    readonly height: number,
    readonly every: number,
    readonly fps: number | null,
    /** Presentation times of the run's frames. */
    readonly pts: number[],
    private readonly window: number,
    private readonly signal?: AbortSignal,
  ) {}

  static async open(
    file: string,
    size: { width: number; height: number },
    o: { every: number; fps: number | null; window?: number; signal?: AbortSignal },
  ): Promise<VideoFrameSource> {
    const pts: number[] = [];
    for await (const f of decodeVideo(file, {
      sampling: { policy: 'every', n: o.every },
      width: 16,
      height: 16,
      sourceFps: o.fps,
      ...(o.signal ? { signal: o.signal } : {}),
    }))
      pts.push(f.pts);
    if (pts.length === 0) throw new FlaneurError('UNREADABLE_MEDIA', `No frames could be decoded from ${file}.`);
    return new VideoFrameSource(file, size.width, size.height, o.every, o.fps, pts, o.window ?? 16, o.signal);
  }

  get count(): number {
    return this.pts.length;
  }

  async read(index: number): Promise<RgbImage> {
    const hit = this.cache.get(index);
    if (hit) {
      this.last = index;
      return hit;
    }
    const backward = index < this.last;
    const from = backward ? Math.max(0, index - this.window + 1) : index;
    const to = backward ? index : Math.min(this.count - 1, index + this.window - 1);
    const half = this.fps ? 0.5 / this.fps : 0.001;
    const want = new Map<number, number>();
    for (let i = from; i <= to; i++) want.set(i, this.pts[i] as number);
    this.cache = new Map();
    for await (const f of decodeVideo(this.file, {
      sampling: { policy: 'every', n: this.every },
      width: this.width,
      height: this.height,
      sourceFps: this.fps,
      startS: Math.max(0, (this.pts[from] as number) - half),
      endS: (this.pts[to] as number) + half,
      ...(this.signal ? { signal: this.signal } : {}),
    })) {
      // Frames are matched by timestamp: a seek may start a frame early or late.
      for (const [i, t] of want) {
        if (Math.abs(f.pts - t) < half) {
          this.cache.set(i, { width: this.width, height: this.height, data: f.data });
          want.delete(i);
          break;
        }
      }
      if (want.size === 0) break;
    }
    const img = this.cache.get(index);
    if (!img)
      throw new FlaneurError(
        'UNREADABLE_MEDIA',
        `Frame ${index + 1} of the run (at ${(this.pts[index] as number).toFixed(3)} s) could not be decoded from ${this.file}.`,
      );
    this.last = index;
    return img;
  }
}
