/**
 * The models.download job: a catalog entry fetched only because the user asked, into
 * `<project>/models/downloads/<id>.part` (kept across attempts, so a resumed job continues with an HTTP Range
 * request), its SHA-256 checked against the published one before anything is registered (a mismatch removes the
 * partial file), then imported like a file the user chose. No network: a clear error naming the offline route.
 */
import fs from 'node:fs';
import path from 'node:path';
import { z } from 'zod';
import type { CatalogEntry } from '../api/contract.js';
import { FlaneurError } from '../api/errors.js';
import { hashFile } from '../ingest/hash-folder.js';
import type { JobHandler } from '../jobs/types.js';
import { entryParams } from '../models/catalog.js';
import { downloadFile, removePartial } from '../models/download.js';
import { modelCatalog, registerModel } from './models.js';

const Args = z.object({ id: z.string().min(1).max(100) }).strict();
type Args = z.infer<typeof Args>;

/** The entry to download, or a clear refusal (unknown id, or a publisher who offers no direct download). */
export function downloadableEntry(catalog: readonly CatalogEntry[], id: string): CatalogEntry & { url: string } {
  const entry = catalog.find((e) => e.id === id);
  if (!entry) throw new FlaneurError('NOT_FOUND', `No model "${id}" in the catalog.`, { field: 'id' });
  if (!entry.url) {
    throw new FlaneurError(
      'INVALID_ARGUMENT',
      `${entry.title} cannot be downloaded by the app. ${entry.access ?? `Get it from ${entry.page}`} (${entry.page})`,
      { field: 'id' },
    );
  }
  return entry as CatalogEntry & { url: string };
}

/** How a model without a published SHA-256 is shown wherever models are chosen. */
export const UNVERIFIED = 'unverified (no published checksum)';

/** The most a download may be: the published size, else a generous bound from the architecture (a full training
 * checkpoint holds the teacher, the student and the optimizer's state). */
export function downloadCap(entry: CatalogEntry): number {
  if (entry.bytes !== null) return entry.bytes;
  return Math.min(entryParams(entry) * 4 * 6 + (64 << 20), 16 * 2 ** 30);
}

/** The catalog's file name as a plain name inside the downloads folder (never a path that leaves it). */
export function downloadName(entry: CatalogEntry & { url: string }): string {
  const name = entry.fileName ?? path.basename(new URL(entry.url).pathname);
  if (!name || name === '.' || name === '..' || name !== path.basename(name) || /[\\/\0]/.test(name)) {
    throw new FlaneurError(
      'INVALID_ARGUMENT',
      `The catalog entry ${entry.id} names its file ${JSON.stringify(name.slice(0, 100))}, which is not a plain file name; it was not downloaded.`,
      { field: 'id' },
    );
  }
  return name;
}

export function downloadsDir(projectDir: string): string {
  return path.join(projectDir, 'models', 'downloads');
}

export const downloadModelJob: JobHandler<Args, { stage: string }> = {
  kind: 'models.download',
  args: Args,
  title: (a) => `Download model ${a.id}`,
  async run(ctx) {
    const catalog = modelCatalog();
    const entry = downloadableEntry(catalog, ctx.args.id);
    const dir = downloadsDir(ctx.project.dir);
    fs.mkdirSync(dir, { recursive: true });
    const fileName = downloadName(entry);
    const part = path.join(dir, `${entry.id}.part`);
    ctx.phase('downloading', { total: entry.bytes, unit: 'bytes' });
    try {
      await downloadFile({
        url: entry.url,
        dest: part,
        signal: ctx.signal,
        maxBytes: downloadCap(entry),
        allowedHosts: entry.hosts ?? [],
        onProgress: (done, total) => ctx.progress(done, total),
      });
    } catch (err) {
      if (err instanceof FlaneurError && err.code === 'NETWORK_UNAVAILABLE') {
        throw new FlaneurError(
          'NETWORK_UNAVAILABLE',
          `${err.message} Flaneur works without a network: download ${entry.fileName ?? 'the file'} from ${entry.url} (or ${entry.page}) on any machine, then import it here with "Import a file" (drop it on the Get models panel).`,
          { cause: err },
        );
      }
      throw err;
    }

    ctx.phase('verifying checksum');
    const sha256 = await hashFile(part, 'sha256', ctx.signal);
    const published = entry.sha256 ?? entry.sha256Prefix;
    if (published && !sha256.startsWith(published)) {
      removePartial(part);
      throw new FlaneurError(
        'INVALID_MODEL',
        `The download of ${entry.title} does not match its published SHA-256 (got ${sha256.slice(0, 16)}…, expected ${published.slice(0, 16)}…); the partial file was removed and nothing was registered. Try again; if it keeps failing, the file on the server changed.`,
      );
    }

    // Without a published checksum, the first download's SHA-256 is recorded and a later one must match it.
    const firstFile = path.join(dir, `${entry.id}.sha256`);
    if (!published) {
      const first = fs.existsSync(firstFile) ? fs.readFileSync(firstFile, 'utf8').trim() : null;
      if (first && first !== sha256) {
        removePartial(part);
        throw new FlaneurError(
          'INVALID_MODEL',
          `The download of ${entry.title} differs from the first download of it in this project (SHA-256 ${sha256.slice(0, 16)}…, first ${first.slice(0, 16)}…); it has no published checksum, so the file on the server changed or was replaced. Nothing was registered.`,
        );
      }
      if (!first) fs.writeFileSync(firstFile, `${sha256}\n`);
    }

    ctx.phase('importing');
    const file = path.join(dir, fileName);
    fs.renameSync(part, file);
    removePartial(part);
    try {
      const info = await registerModel(
        ctx.project,
        { path: file, ...(published ? {} : { name: `${entry.title} — ${UNVERIFIED}` }) },
        catalog,
        ctx.signal,
      );
      ctx.commit([{ key: entry.id, status: 'ok', result: { modelId: info.id, sha256 } }], { stage: 'done' });
    } finally {
      // The registry keeps its own copy (canonical .safetensors); the download is not needed twice.
      fs.rmSync(file, { force: true });
    }
  },
};
