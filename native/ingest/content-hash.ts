/**
 * Content identity for duplicate detection. Files up to 64 MiB are hashed whole; larger ones (hours of video) by
 * their size plus three 4 MiB samples (start, middle, end), which tells copies apart from different recordings
 * without reading gigabytes. The prefix says which kind a hash is.
 */
import { createHash } from 'node:crypto';
import fs from 'node:fs';
import { hashFile } from './hash-folder.js';

const WHOLE_LIMIT = 64 << 20;
const SAMPLE = 4 << 20;

export async function contentHash(file: string, size: number, signal?: AbortSignal): Promise<string> {
  if (size <= WHOLE_LIMIT) return `sha256:${await hashFile(file, 'sha256', signal)}`;
  const h = createHash('sha256');
  h.update(String(size));
  const fd = await fs.promises.open(file, 'r');
  try {
    for (const at of [0, Math.floor(size / 2) - SAMPLE / 2, size - SAMPLE]) {
      const buf = Buffer.alloc(SAMPLE);
      const { bytesRead } = await fd.read(buf, 0, SAMPLE, at);
      h.update(buf.subarray(0, bytesRead));
    }
  } finally {
    await fd.close();
  }
  return `sampled-sha256:${h.digest('hex')}`;
}
