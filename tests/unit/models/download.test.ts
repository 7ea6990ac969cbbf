/**
 * Downloading a file from a local HTTP server on 127.0.0.1 that drops connections mid-file: progress, resume with
 * Range requests (within a call and from a partial file left by an earlier one), the partial kept when the
 * connection keeps dropping, and a clear error when the host cannot be reached.
 */
import crypto from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { FlaneurError } from '../../../native/api/errors.js';
import { downloadFile } from '../../../native/models/download.js';
import { closedPort, type FileServer, serveFiles } from '../../helpers/file-server.js';
import { tmpDir } from '../../helpers/tmp.js';

const body = crypto.randomBytes(300_000);
let server: FileServer;
beforeAll(async () => {
  server = await serveFiles({ 'weights.pth': body });
});
afterAll(() => server.close());

const signal = new AbortController().signal;
const CAP = 1 << 20;

describe('downloadFile', () => {
  it('downloads the whole file with progress up to its size', async () => {
    const dest = path.join(tmpDir(), 'a.part');
    const seen: number[] = [];
    const r = await downloadFile({
      url: server.url('weights.pth'),
      dest,
      signal,
      maxBytes: CAP,
      onProgress: (d) => seen.push(d),
    });
    expect(r).toEqual({ bytes: body.length, resumedFrom: 0, reconnects: 0 });
    expect(fs.readFileSync(dest).equals(body)).toBe(true);
    expect(seen.at(-1)).toBe(body.length);
    expect(seen.every((v, i) => i === 0 || v >= (seen[i - 1] as number))).toBe(true);
  });

  it('resumes with a Range request when the server cuts the connection mid-file', async () => {
    const dest = path.join(tmpDir(), 'b.part');
    server.requests.length = 0;
    server.cutNext(2, 70_000);
    const r = await downloadFile({ url: server.url('weights.pth'), dest, signal, maxBytes: CAP, backoffMs: 10 });
    expect(r.reconnects).toBe(2);
    // Each retry asks for the rest from where the file on disk ends (at most 70000 more bytes per cut connection).
    const starts = server.requests.map((h) => Number(/^bytes=(\d+)-$/.exec(h)?.[1] ?? 0));
    expect(server.requests[0]).toBe('');
    expect(starts).toHaveLength(3);
    expect(starts[1]).toBeGreaterThan(0);
    expect(starts[1]).toBeLessThanOrEqual(70_000);
    expect(starts[2]).toBeGreaterThan(starts[1] as number);
    expect(fs.readFileSync(dest).equals(body)).toBe(true);
  });

  it('keeps the partial file when the connection keeps dropping, and a later call continues from it', async () => {
    const dest = path.join(tmpDir(), 'c.part');
    server.cutNext(3, 50_000);
    const err = await downloadFile({
      url: server.url('weights.pth'),
      dest,
      signal,
      maxBytes: CAP,
      retries: 2,
      backoffMs: 10,
    }).catch((e: unknown) => e as FlaneurError);
    expect(err).toBeInstanceOf(FlaneurError);
    const kept = Number(
      /kept dropping \((\d+) bytes received so far, kept on disk\)/.exec((err as Error).message)?.[1],
    );
    expect(kept).toBeGreaterThan(0);
    expect(fs.statSync(dest).size).toBe(kept);
    server.requests.length = 0;
    const r = await downloadFile({ url: server.url('weights.pth'), dest, signal, maxBytes: CAP });
    expect(r.resumedFrom).toBe(kept);
    expect(server.requests).toEqual([`bytes=${kept}-`]);
    expect(fs.readFileSync(dest).equals(body)).toBe(true);
  });

  it('says the machine is offline when the host cannot be reached', async () => {
    const url = `http://127.0.0.1:${await closedPort()}/weights.pth`;
    const err = await downloadFile({ url, dest: path.join(tmpDir(), 'd.part'), signal, maxBytes: CAP }).catch(
      (e: unknown) => e,
    );
    expect(err).toMatchObject({ code: 'NETWORK_UNAVAILABLE' });
    expect((err as Error).message).toMatch(
      /Cannot reach 127\.0\.0\.1:\d+ \(ECONNREFUSED\): this machine seems offline/,
    );
  });

  it('refuses an HTTP error instead of saving the error page', async () => {
    const dest = path.join(tmpDir(), 'e.part');
    await expect(downloadFile({ url: server.url('missing.pth'), dest, signal, maxBytes: CAP })).rejects.toMatchObject({
      code: 'IO_ERROR',
      message: expect.stringMatching(/HTTP 404/),
    });
    expect(fs.existsSync(dest)).toBe(false);
  });
});
