/**
 * Job: content hashes of every file under a folder. Ingest uses the same hashing to find duplicates; on its own it
 * is a long, real, resumable job (integrity manifests, finding copies). Items are keyed by relative path, so a
 * resumed run skips what an earlier attempt finished.
 */
import { createHash } from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { z } from 'zod';
import { HASH_ALGORITHMS } from '../api/contract.js';
import { FlaneurError } from '../api/errors.js';
import type { ItemResult, JobHandler } from '../jobs/types.js';
import { errnoReason, walkFiles } from './walk.js';

export const HashFolderArgs = z.object({
  root: z.string().min(1),
  recursive: z.boolean().default(true),
  algorithm: z.enum(HASH_ALGORITHMS).default('sha256'),
});
export type HashFolderArgs = z.output<typeof HashFolderArgs>;

interface HashCheckpoint {
  filesDone: number;
  bytesDone: number;
}

/** How many finished items are committed together: bounds what a crash can lose. */
const COMMIT_EVERY_ITEMS = 32;
const COMMIT_EVERY_MS = 250;

/** Files up to this size are read in one call; larger ones stream in 1 MiB chunks. */
const WHOLE_READ_LIMIT = 8 << 20;

/**
 * The file's digest. Only a regular file is read: it is opened non-blocking and checked on the open handle, so a
 * named pipe or a device (/dev/zero) is refused at once instead of hanging or reading forever.
 */
export async function hashFile(file: string, algorithm: string, signal?: AbortSignal): Promise<string> {
  const hash = createHash(algorithm);
  const handle = await fs.promises.open(file, fs.constants.O_RDONLY | (fs.constants.O_NONBLOCK ?? 0));
  try {
    const st = await handle.stat();
    if (!st.isFile()) {
      throw new FlaneurError(
        'PATH_REFUSED',
        `${path.basename(file)} is not a regular file (a pipe, device or folder).`,
      );
    }
    if (st.size <= WHOLE_READ_LIMIT) return hash.update(await handle.readFile({ signal })).digest('hex');
    const chunk = Buffer.allocUnsafe(1 << 20);
    for (let at = 0; ; ) {
      signal?.throwIfAborted();
      const { bytesRead } = await handle.read(chunk, 0, chunk.length, at);
      if (bytesRead === 0) break;
      hash.update(chunk.subarray(0, bytesRead));
      at += bytesRead;
    }
    return hash.digest('hex');
  } finally {
    await handle.close();
  }
}

export const hashFolderJob: JobHandler<HashFolderArgs, HashCheckpoint> = {
  kind: 'ingest.hashFolder',
  args: HashFolderArgs,
  title: (args) => `Hash files in ${path.basename(args.root) || args.root} (${args.algorithm})`,
  async run(ctx) {
    const { root, recursive, algorithm } = ctx.args;
    const stat = await fs.promises.stat(root).catch((err: unknown) => {
      throw new FlaneurError('NOT_FOUND', `Cannot read ${root}: ${errnoReason(err).reason}`, { field: 'root' });
    });
    if (!stat.isDirectory()) throw new FlaneurError('PATH_REFUSED', `${root} is not a folder.`, { field: 'root' });

    ctx.phase('scanning', { unit: 'files' });
    const entries = [];
    for await (const e of walkFiles(root, { recursive, signal: ctx.signal })) {
      entries.push(e);
      if (entries.length % 500 === 0) ctx.progress(entries.length, null);
    }

    const finished = ctx.finishedKeys();
    let filesDone = 0;
    let bytesDone = ctx.checkpoint?.bytesDone ?? 0;
    for (const e of entries) if (finished.has(e.rel)) filesDone++;
    ctx.phase('hashing', { total: entries.length, unit: 'files', done: filesDone });

    let pending: ItemResult[] = [];
    let lastCommit = performance.now();
    const flush = () => {
      if (pending.length === 0) return;
      ctx.commit(pending, { filesDone, bytesDone });
      pending = [];
      lastCommit = performance.now();
    };

    try {
      for (const e of entries) {
        if (finished.has(e.rel)) continue;
        ctx.throwIfAborted();
        if (e.kind === 'refused') {
          pending.push({ key: e.rel, status: 'skipped', error: { code: e.code, message: e.reason } });
        } else {
          try {
            const digest = await hashFile(e.abs, algorithm, ctx.signal);
            bytesDone += e.size;
            pending.push({ key: e.rel, status: 'ok', result: { size: e.size, algorithm, digest } });
          } catch (err) {
            if (ctx.signal.aborted) throw err;
            const { code, reason } = errnoReason(err);
            pending.push({ key: e.rel, status: 'failed', error: { code, message: reason } });
          }
        }
        filesDone++;
        ctx.progress(filesDone);
        if (pending.length >= COMMIT_EVERY_ITEMS || performance.now() - lastCommit >= COMMIT_EVERY_MS) flush();
      }
    } finally {
      // Whatever finished before a cancel or shutdown is kept, so a resume does not redo it.
      flush();
    }
  },
};
