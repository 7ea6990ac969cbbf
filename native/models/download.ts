/**
 * Downloads one file over HTTP(S) into `dest`, resuming a partial file with a Range request, retrying a dropped
 * connection a few times, reporting progress. Used only when the user asks for a download; nothing here runs by
 * itself. A host that cannot be reached is a NETWORK_UNAVAILABLE error; the caller says what to do offline.
 */
import fs from 'node:fs';
import { FlaneurError } from '../api/errors.js';

export interface DownloadOptions {
  url: string;
  dest: string;
  signal: AbortSignal;
  /** Bytes on disk so far and the total when known. */
  onProgress?: (done: number, total: number | null) => void;
  /** Retries after a dropped connection within one call (each resumes where the file ends). */
  retries?: number;
  /** Pause before a retry, ms (doubles each time). */
  backoffMs?: number;
}

export interface DownloadResult {
  bytes: number;
  /** Byte offset of the first request (non-zero when a partial file was resumed). */
  resumedFrom: number;
  /** Connections that dropped and were resumed within this call. */
  reconnects: number;
}

const OFFLINE_CODES = new Set([
  'ENOTFOUND',
  'EAI_AGAIN',
  'ECONNREFUSED',
  'ENETUNREACH',
  'EHOSTUNREACH',
  'ENETDOWN',
  'ETIMEDOUT',
  'UND_ERR_CONNECT_TIMEOUT',
]);

function causeCode(err: unknown): string | undefined {
  let e: unknown = err;
  for (let i = 0; i < 4 && e; i++) {
    const code = (e as { code?: unknown }).code;
    if (typeof code === 'string') return code;
    e = (e as { cause?: unknown }).cause;
  }
  return undefined;
}

function sizeOf(file: string): number {
  try {
    return fs.statSync(file).size;
  } catch {
    return 0;
  }
}

export async function downloadFile(o: DownloadOptions): Promise<DownloadResult> {
  const retries = o.retries ?? 3;
  const host = new URL(o.url).host;
  const resumedFrom = sizeOf(o.dest);
  let reconnects = 0;
  let backoff = o.backoffMs ?? 500;
  for (;;) {
    const have = sizeOf(o.dest);
    let res: Response;
    try {
      res = await fetch(o.url, {
        headers: have > 0 ? { Range: `bytes=${have}-` } : {},
        signal: o.signal,
        redirect: 'follow',
      });
    } catch (err) {
      if (o.signal.aborted) throw err;
      const code = causeCode(err);
      if (code && OFFLINE_CODES.has(code)) {
        throw new FlaneurError('NETWORK_UNAVAILABLE', `Cannot reach ${host} (${code}): this machine seems offline.`, {
          cause: err,
        });
      }
      if (reconnects++ >= retries) throw connectionLost(host, have, err);
      await pause(backoff, o.signal);
      backoff *= 2;
      continue;
    }
    if (res.status === 416 && have > 0) {
      // Nothing left to send: the partial file is already complete.
      await res.body?.cancel();
      return { bytes: have, resumedFrom, reconnects };
    }
    if (res.status !== 200 && res.status !== 206) {
      await res.body?.cancel();
      throw new FlaneurError('IO_ERROR', `${host} answered HTTP ${res.status} ${res.statusText} for ${o.url}.`);
    }
    let start = 0;
    let total: number | null = null;
    const length = Number(res.headers.get('content-length') ?? Number.NaN);
    if (res.status === 206) {
      const m = /^bytes (\d+)-(\d+)\/(\d+|\*)$/.exec(res.headers.get('content-range') ?? '');
      start = m ? Number(m[1]) : -1;
      total = m && m[3] !== '*' ? Number(m[3]) : null;
      if (start !== have) {
        // A range we did not ask for: start over rather than splice bytes at the wrong place.
        await res.body?.cancel();
        fs.rmSync(o.dest, { force: true });
        continue;
      }
    } else if (Number.isFinite(length)) {
      total = length;
    }
    const out = fs.createWriteStream(o.dest, { flags: start > 0 ? 'a' : 'w' });
    let done = start;
    o.onProgress?.(done, total);
    try {
      if (!res.body) throw new Error('empty response body');
      for await (const chunk of res.body as unknown as AsyncIterable<Uint8Array>) {
        if (!out.write(chunk)) await new Promise<void>((r) => out.once('drain', () => r()));
        done += chunk.length;
        o.onProgress?.(done, total);
      }
      await closeStream(out);
    } catch (err) {
      await closeStream(out).catch(() => undefined);
      if (o.signal.aborted) throw err;
      if (reconnects++ >= retries) throw connectionLost(host, sizeOf(o.dest), err);
      await pause(backoff, o.signal);
      backoff *= 2;
      continue;
    }
    if (total !== null && done < total) {
      if (reconnects++ >= retries) throw connectionLost(host, done, null);
      await pause(backoff, o.signal);
      backoff *= 2;
      continue;
    }
    return { bytes: done, resumedFrom, reconnects };
  }
}

function connectionLost(host: string, have: number, err: unknown): FlaneurError {
  return new FlaneurError(
    'IO_ERROR',
    `The connection to ${host} kept dropping (${have} bytes received so far, kept on disk). Resume the job to continue from there.`,
    err ? { cause: err, details: (err as Error).message } : {},
  );
}

function closeStream(s: fs.WriteStream): Promise<void> {
  return new Promise((resolve, reject) => s.end((err?: Error | null) => (err ? reject(err) : resolve())));
}

function pause(ms: number, signal: AbortSignal): Promise<void> {
  return new Promise((resolve, reject) => {
    const t = setTimeout(resolve, ms);
    signal.addEventListener(
      'abort',
      () => {
        clearTimeout(t);
        reject(signal.reason);
      },
      { once: true },
    );
  });
}
