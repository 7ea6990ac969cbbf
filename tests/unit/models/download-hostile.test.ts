/**
 * Issue 25 item 4: a local server on 127.0.0.1 plays a hostile download host. Each case ends in a typed error (or a
 * correct file), within a bounded number of requests, with nothing over the size cap on disk: an endless body, a
 * 100 GiB Content-Length, a gzip bomb, a 206 with a range not asked for, a file that changes between a cut and its
 * resume (If-Range), redirects to file:/data:, in a loop and to another host.
 */
import crypto from 'node:crypto';
import fs from 'node:fs';
import type http from 'node:http';
import path from 'node:path';
import zlib from 'node:zlib';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { downloadFile } from '../../../native/models/download.js';
import { type FileServer, serveFiles } from '../../helpers/file-server.js';
import { tmpDir } from '../../helpers/tmp.js';

const CAP = 1 << 20;
const body = crypto.randomBytes(200_000);
const signal = new AbortController().signal;
let server: FileServer;
let version = 1;
let other: FileServer;

const routes: Record<string, http.RequestListener> = {
  // Sends 64 KB chunks for ever.
  endless: (_req, res) => {
    res.writeHead(200);
    const chunk = Buffer.alloc(64 << 10, 7);
    const more = () => {
      while (res.write(chunk)) if (res.destroyed) return;
      res.once('drain', more);
    };
    res.on('error', () => undefined);
    more();
  },
  huge: (_req, res) => {
    res.writeHead(200, { 'Content-Length': String(100 * 2 ** 30) });
    res.write(Buffer.alloc(1000));
    res.on('error', () => undefined);
  },
  // 1 MB of gzip that inflates to 64 MB.
  gzip: (_req, res) => {
    res.writeHead(200, { 'Content-Encoding': 'gzip' });
    res.end(zlib.gzipSync(Buffer.alloc(64 << 20)));
  },
  // Always answers 206 with a range that was not asked for.
  'wrong-range': (_req, res) => {
    res.writeHead(206, { 'Content-Range': `bytes 5-9/${body.length}`, 'Content-Length': '5' });
    res.end(body.subarray(5, 10));
  },
  // A file whose content (and ETag) changes after the first, cut, response.
  changing: (req, res) => {
    const content = Buffer.alloc(body.length, version);
    const etag = `"v${version}"`;
    const m = /^bytes=(\d+)-$/.exec(req.headers.range ?? '');
    if (m && req.headers['if-range'] === etag) {
      const start = Number(m[1]);
      res.writeHead(206, {
        'Content-Range': `bytes ${start}-${content.length - 1}/${content.length}`,
        'Content-Length': content.length - start,
        ETag: etag,
      });
      res.end(content.subarray(start));
      return;
    }
    res.writeHead(200, { 'Content-Length': content.length, ETag: etag });
    if (version === 1) {
      version = 2;
      res.write(content.subarray(0, 50_000), () => res.socket?.destroy());
      return;
    }
    res.end(content);
  },
  'to-file': (_req, res) => res.writeHead(302, { Location: 'file:///etc/passwd' }).end(),
  'to-data': (_req, res) => res.writeHead(302, { Location: 'data:text/plain,hello' }).end(),
  'loop-a': (_req, res) => res.writeHead(302, { Location: '/loop-b' }).end(),
  'loop-b': (_req, res) => res.writeHead(302, { Location: '/loop-a' }).end(),
  'to-other-host': (_req, res) => res.writeHead(302, { Location: other.url('weights.pth') }).end(),
};

beforeAll(async () => {
  server = await serveFiles({ 'weights.pth': body }, routes);
  // Another port is another host for the redirect rule.
  other = await serveFiles({ 'weights.pth': body });
});
afterAll(async () => {
  await server.close();
  await other.close();
});

async function attempt(name: string, extra: { allowedHosts?: string[]; url?: string } = {}) {
  const dest = path.join(tmpDir(), `${name}.part`);
  server.requests.length = 0;
  const err = await downloadFile({
    url: extra.url ?? server.url(name),
    dest,
    signal,
    maxBytes: CAP,
    backoffMs: 1,
    ...(extra.allowedHosts ? { allowedHosts: extra.allowedHosts } : {}),
  }).then(
    () => null,
    (e: unknown) => e as Error & { code?: string },
  );
  return { err, dest, requests: server.requests.length, onDisk: fs.existsSync(dest) ? fs.statSync(dest).size : 0 };
}

describe('downloads from a hostile host', () => {
  it('stops an endless body at the cap and removes it', async () => {
    const r = await attempt('endless');
    expect(r.err?.code).toBe('IO_ERROR');
    expect(r.err?.message).toMatch(/sends more bytes than that.*stopped and removed/);
    expect(r.onDisk).toBe(0);
    expect(r.requests).toBe(1);
  });

  it('refuses a Content-Length of 100 GiB before reading the body', async () => {
    const r = await attempt('huge');
    expect(r.err?.message).toMatch(/announces 107374182400 bytes, more than the 1048576 bytes/);
    expect(r.onDisk).toBe(0);
  });

  it('stops a gzip body that inflates past the cap', async () => {
    const r = await attempt('gzip');
    expect(r.err?.code).toBe('IO_ERROR');
    expect(r.err?.message).toMatch(/inflates past 1048576 bytes/);
    expect(r.onDisk).toBe(0);
  });

  it('gives up on a 206 with a range it did not ask for after one restart (not hundreds of requests)', async () => {
    const r = await attempt('wrong-range');
    expect(r.err?.code).toBe('IO_ERROR');
    expect(r.err?.message).toMatch(/part of the file that was not asked for/);
    expect(r.requests).toBeLessThanOrEqual(3);
    expect(r.onDisk).toBe(0);
  });

  it('never splices two versions: a resume carries If-Range and a changed file starts over', async () => {
    version = 1;
    const r = await attempt('changing');
    expect(r.err).toBeNull();
    // The first response was cut after 50,000 bytes of version 1; the resume found version 2 and started over.
    expect(fs.readFileSync(r.dest).equals(Buffer.alloc(body.length, 2))).toBe(true);
    expect(server.requests[1]).toBe('bytes=50000-');
  });

  it.each([
    ['to-file', /redirected the download to a file: address/],
    ['to-data', /redirected the download to a data: address/],
    ['loop-a', /redirects the download in a loop/],
  ])('refuses a redirect %s with a sentence, not "connection kept dropping"', async (name, message) => {
    const r = await attempt(name);
    expect(r.err?.code).toBe('IO_ERROR');
    expect(r.err?.message).toMatch(message);
    expect(r.err?.message).not.toMatch(/kept dropping/);
    expect(r.requests).toBeLessThanOrEqual(2);
    expect(r.onDisk).toBe(0);
  });

  it('refuses a redirect to another host unless that host is named, and follows it when it is', async () => {
    const otherHost = new URL(other.url('weights.pth')).host;
    const refused = await attempt('to-other-host');
    expect(refused.err?.message).toMatch(new RegExp(`to another host, ${otherHost.replace('.', '\\.')}`));
    expect(refused.onDisk).toBe(0);
    const allowed = await attempt('to-other-host', { allowedHosts: [otherHost] });
    expect(allowed.err).toBeNull();
    expect(fs.readFileSync(allowed.dest).equals(body)).toBe(true);
  });
});
