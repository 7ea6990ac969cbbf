/**
 * Sampled frames on disk: one append-only file of raw RGB frames per media item (frame i at i * frameBytes), so any
 * frame is one positioned read and a resumed ingest only has to cut the file back to the committed count.
 * PNG renderings for the UI are cached beside it.
 */
import fs from 'node:fs';
import path from 'node:path';
import { encodePng } from './png.js';

export class FrameStore {
  constructor(readonly dir: string) {
    fs.mkdirSync(path.join(dir, 'frames'), { recursive: true });
    fs.mkdirSync(path.join(dir, 'thumbs'), { recursive: true });
  }

  file(mediaId: number): string {
    return path.join(this.dir, 'frames', `${mediaId}.rgb`);
  }

  /** Opens the frame file for appending after `committed` frames, dropping anything written past them. */
  openForAppend(mediaId: number, committed: number, frameBytes: number): FrameWriter {
    const file = this.file(mediaId);
    const fd = fs.openSync(file, fs.existsSync(file) ? 'r+' : 'w+');
    fs.ftruncateSync(fd, committed * frameBytes);
    return new FrameWriter(fd, committed * frameBytes);
  }

  read(mediaId: number, idx: number, frameBytes: number): Uint8Array {
    const fd = fs.openSync(this.file(mediaId), 'r');
    try {
      const buf = Buffer.alloc(frameBytes);
      const n = fs.readSync(fd, buf, 0, frameBytes, idx * frameBytes);
      if (n !== frameBytes) throw new Error(`frame ${idx} of media ${mediaId} is not on disk`);
      return buf;
    } finally {
      fs.closeSync(fd);
    }
  }

  /** One frame as RGB pixels with its size (what models and augmentations take). */
  image(
    mediaId: number,
    idx: number,
    width: number,
    height: number,
  ): { width: number; height: number; data: Uint8Array } {
    return { width, height, data: this.read(mediaId, idx, width * height * 3) };
  }

  /** A PNG of one frame, cached. */
  png(mediaId: number, idx: number, width: number, height: number): Buffer {
    const cached = path.join(this.dir, 'thumbs', String(mediaId), `${idx}.png`);
    if (fs.existsSync(cached)) return fs.readFileSync(cached);
    const png = encodePng(this.read(mediaId, idx, width * height * 3), width, height);
    fs.mkdirSync(path.dirname(cached), { recursive: true });
    fs.writeFileSync(cached, png);
    return png;
  }

  remove(mediaId: number): void {
    fs.rmSync(this.file(mediaId), { force: true });
    fs.rmSync(path.join(this.dir, 'thumbs', String(mediaId)), { recursive: true, force: true });
  }
}

export class FrameWriter {
  constructor(
    private fd: number,
    private offset: number,
  ) {}

  append(data: Uint8Array): void {
    let done = 0;
    while (done < data.length) done += fs.writeSync(this.fd, data, done, data.length - done, this.offset + done);
    this.offset += data.length;
  }

  close(): void {
    if (this.fd >= 0) fs.closeSync(this.fd);
    this.fd = -1;
  }
}
