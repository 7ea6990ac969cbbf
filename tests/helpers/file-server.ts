import crypto from 'node:crypto';
import http from 'node:http';
import type { AddressInfo } from 'node:net';

export interface FileServer {
  url(name: string): string;
  /** Range headers of every request, in order ('' for none). */
  requests: string[];
  /** The next `n` responses send only `bytes` bytes of their body, then drop the connection. */
  cutNext(n: number, bytes: number): void;
  close(): Promise<void>;
}

/**
 * A file server on 127.0.0.1 (never a real host) that honours Range and If-Range requests (each file's ETag is its
 * content hash) and can drop connections mid-file, to test downloads that are interrupted and resumed. `routes`
 * answer the named paths themselves (a hostile host: endless bodies, wrong ranges, redirects).
 */
export async function serveFiles(
  files: Record<string, Buffer>,
  routes: Record<string, http.RequestListener> = {},
): Promise<FileServer> {
  const requests: string[] = [];
  let cuts = 0;
  let cutAt = 0;
  const server = http.createServer((req, res) => {
    const name = decodeURIComponent((req.url ?? '/').slice(1));
    const route = routes[name];
    requests.push(req.headers.range ?? '');
    if (route) {
      route(req, res);
      return;
    }
    const body = files[name];
    if (!body) {
      res.writeHead(404).end('not found');
      return;
    }
    const etag = `"${crypto.createHash('sha256').update(body).digest('hex').slice(0, 16)}"`;
    let start = 0;
    const m = /^bytes=(\d+)-$/.exec(req.headers.range ?? '');
    const ifRange = req.headers['if-range'];
    if (m && (ifRange === undefined || ifRange === etag)) {
      start = Number(m[1]);
      if (start >= body.length) {
        res.writeHead(416, { 'Content-Range': `bytes */${body.length}` }).end();
        return;
      }
      res.writeHead(206, {
        'Content-Length': body.length - start,
        'Content-Range': `bytes ${start}-${body.length - 1}/${body.length}`,
        'Accept-Ranges': 'bytes',
        ETag: etag,
      });
    } else {
      res.writeHead(200, { 'Content-Length': body.length, 'Accept-Ranges': 'bytes', ETag: etag });
    }
    const rest = body.subarray(start);
    if (cuts > 0) {
      cuts--;
      res.write(rest.subarray(0, cutAt), () => res.socket?.destroy());
      return;
    }
    res.end(rest);
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const port = (server.address() as AddressInfo).port;
  return {
    url: (name) => `http://127.0.0.1:${port}/${encodeURIComponent(name)}`,
    requests,
    cutNext(n, bytes) {
      cuts = n;
      cutAt = bytes;
    },
    close: () =>
      new Promise<void>((r) => {
        server.closeAllConnections();
        server.close(() => r());
      }),
  };
}

/** A port on 127.0.0.1 nothing listens on (connections are refused, as with no network). */
export async function closedPort(): Promise<number> {
  const s = http.createServer();
  await new Promise<void>((r) => s.listen(0, '127.0.0.1', r));
  const port = (s.address() as AddressInfo).port;
  await new Promise<void>((r) => s.close(() => r()));
  return port;
}
