/**
 * Downloads one file over HTTP(S) into `dest`, resuming a partial file with a Range request, retrying a dropped
 * connection a few times, reporting progress. Bounded: a size cap (announced, sent or inflated), redirects only to
 * http(s) on the URL's host or hosts the caller names, at most one restart for a range it did not ask for, and a
 * resumed request carries If-Range so two versions of a file are never spliced. Used only when the user asks for a download; nothing here runs by
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
  /** The most bytes the file may have (a larger announced or sent body is refused and removed). */
  maxBytes: number;
  /** Hosts a redirect may lead to besides the URL's own (those the catalog entry names). */
  allowedHosts?: readonly string[];
  /** Redirects followed at most per request. */
  maxRedirects?: number;
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

/** A download that cannot be right whatever is retried: nothing of it is kept. */
function refusedDownload(message: string): FlaneurError {
  return new FlaneurError('IO_ERROR', message);
}

/**
 * The partial file's validator (ETag or Last-Modified of the response that started it), kept beside it so that a
 * resumed request asks for the rest of the same version (If-Range) and never splices two versions of the file.
 */
function validatorFile(dest: string): string {
  return `${dest}.validator`;
}

function readValidator(dest: string): string | null {
  try {
    const v = fs.readFileSync(validatorFile(dest), 'utf8').trim();
    return v.length > 0 && v.length < 1024 ? v : null;
  } catch {
    return null;
  }
}

/** A strong ETag or a Last-Modified date: what If-Range accepts. */
function validatorOf(res: Response): string | null {
  const etag = res.headers.get('etag');
  if (etag && !etag.startsWith('W/')) return etag;
  return res.headers.get('last-modified');
}

/** Removes the partial file and its validator (a body that cannot be resumed). */
export function removePartial(dest: string): void {
  fs.rmSync(dest, { force: true });
  fs.rmSync(validatorFile(dest), { force: true });
}

/**
 * One request, following redirects by hand: only http(s), at most `maxRedirects` hops, no loops, and only to the
 * URL's own host or one the caller allows (a catalog entry's named mirrors).
 */
async function request(o: DownloadOptions, headers: Record<string, string>): Promise<Response> {
  const origin = new URL(o.url);
  const allowed = new Set([origin.host, ...(o.allowedHosts ?? [])]);
  const seen = new Set<string>();
  let url = origin;
  for (let hop = 0; ; hop++) {
    seen.add(url.href);
    const res = await fetch(url, { headers, signal: o.signal, redirect: 'manual' });
    if (res.status < 300 || res.status > 399 || res.status === 304) return res;
    await res.body?.cancel();
    const location = res.headers.get('location');
    if (!location) throw refusedDownload(`${url.host} answered HTTP ${res.status} without saying where the file is.`);
    let next: URL;
    try {
      next = new URL(location, url);
    } catch {
      throw refusedDownload(`${url.host} redirected the download to an address that is not a URL.`);
    }
    if (next.protocol !== 'https:' && next.protocol !== 'http:') {
      throw refusedDownload(
        `${url.host} redirected the download to a ${next.protocol.replace(':', '')}: address; only http(s) downloads are followed. Nothing was downloaded.`,
      );
    }
    if (seen.has(next.href))
      throw refusedDownload(`${origin.host} redirects the download in a loop; nothing was downloaded.`);
    if (hop + 1 > (o.maxRedirects ?? 5)) {
      throw refusedDownload(
        `${origin.host} redirected the download more than ${o.maxRedirects ?? 5} times; nothing was downloaded.`,
      );
    }
    if (!allowed.has(next.host)) {
      throw refusedDownload(
        `${url.host} redirected the download to another host, ${next.host}, which the catalog does not name for this model; it was not followed and nothing was downloaded.`,
      );
    }
    url = next;
  }
}

export async function downloadFile(o: DownloadOptions): Promise<DownloadResult> {
  const retries = o.retries ?? 3;
  const host = new URL(o.url).host;
  const tooLarge = (what: string) => {
    removePartial(o.dest);
    return refusedDownload(
      `The download from ${host} ${what}, more than the ${o.maxBytes} bytes this model can be; it was stopped and removed.`,
    );
  };
  // A partial file without a validator cannot be resumed safely (Range alone may splice two versions): start over.
  if (sizeOf(o.dest) > 0 && !readValidator(o.dest)) removePartial(o.dest);
  const resumedFrom = sizeOf(o.dest);
  let reconnects = 0;
  let restarts = 0;
  let backoff = o.backoffMs ?? 500;
  for (;;) {
    const have = sizeOf(o.dest);
    if (have > o.maxBytes) throw tooLarge(`already holds ${have} bytes`);
    const validator = have > 0 ? readValidator(o.dest) : null;
    const headers: Record<string, string> = { 'accept-encoding': 'identity' };
    if (have > 0 && validator) {
      headers.range = `bytes=${have}-`;
      headers['if-range'] = validator;
    }
    let res: Response;
    try {
      res = await request(o, headers);
    } catch (err) {
      if (o.signal.aborted || err instanceof FlaneurError) throw err;
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
    const encoding = (res.headers.get('content-encoding') ?? 'identity').toLowerCase();
    const encoded = encoding !== 'identity';
    let start = 0;
    let total: number | null = null;
    const length = Number(res.headers.get('content-length') ?? Number.NaN);
    if (res.status === 206) {
      const m = /^bytes (\d+)-(\d+)\/(\d+|\*)$/.exec(res.headers.get('content-range') ?? '');
      start = m ? Number(m[1]) : -1;
      total = m && m[3] !== '*' ? Number(m[3]) : null;
      if (start !== have) {
        // A range we did not ask for: start over once from the beginning rather than splice bytes at the wrong
        // place; a server that keeps doing it is refused (no endless retries).
        await res.body?.cancel();
        removePartial(o.dest);
        if (restarts++ >= 1) {
          throw refusedDownload(
            `${host} keeps answering with a part of the file that was not asked for (Content-Range ${JSON.stringify((res.headers.get('content-range') ?? '').slice(0, 60))}); the download was stopped and nothing kept.`,
          );
        }
        continue;
      }
    } else if (Number.isFinite(length) && !encoded) {
      total = length;
    }
    if (total !== null && total > o.maxBytes) {
      await res.body?.cancel();
      throw tooLarge(`announces ${total} bytes`);
    }
    if (res.status === 200) {
      const v = validatorOf(res);
      if (v) fs.writeFileSync(validatorFile(o.dest), v);
      else fs.rmSync(validatorFile(o.dest), { force: true });
    }
    const out = fs.createWriteStream(o.dest, { flags: start > 0 ? 'a' : 'w' });
    let done = start;
    o.onProgress?.(done, total);
    try {
      if (!res.body) throw new Error('empty response body');
      for await (const chunk of res.body as unknown as AsyncIterable<Uint8Array>) {
        done += chunk.length;
        if (done > o.maxBytes) {
          await closeStream(out).catch(() => undefined);
          throw tooLarge(encoded ? `inflates past ${o.maxBytes} bytes` : 'sends more bytes than that');
        }
        if (!out.write(chunk)) await new Promise<void>((r) => out.once('drain', () => r()));
        o.onProgress?.(done, total);
      }
      await closeStream(out);
    } catch (err) {
      await closeStream(out).catch(() => undefined);
      if (o.signal.aborted || err instanceof FlaneurError) throw err;
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
