/**
 * Browser mode: the engine over HTTP + WebSocket on 127.0.0.1 only. Serves the built renderer, answers
 * POST /api/call with the dispatcher's envelope, and streams engine events on /api/events.
 */
import { createHash } from 'node:crypto';
import fs from 'node:fs';
import http, { type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import path from 'node:path';
import type { Duplex } from 'node:stream';
import { WebSocketServer } from 'ws';
import type { EngineEvent } from '../api/contract.js';
import type { Dispatcher } from '../api/dispatcher.js';
import { serializeError } from '../api/errors.js';
import { CONTENT_SECURITY_POLICY } from '../api/security-policy.js';
import { loopActivity } from '../base/loop-stalls.js';
import { checkRequest, localLocation, newToken, requestUrl, TOKEN_COOKIE } from './security.js';

export interface ServerOptions {
  dispatcher: Dispatcher;
  subscribe(listener: (event: EngineEvent) => void): () => void;
  /** The built renderer; null serves the API only. */
  staticDir: string | null;
  port?: number;
  token?: string;
  /** Binary resources under /media/ (frame images), or null when not found. */
  resource?: (urlPath: string) => Promise<{ contentType: string; body: Buffer } | null>;
}

export interface RunningServer {
  url: string;
  port: number;
  token: string;
  /** The URL to open in a browser: carries the token once, then the page keeps it in a cookie. */
  launchUrl: string;
  close(): Promise<void>;
}

const MAX_BODY = 1 << 20;

const STATUS_TEXT: Record<400 | 401 | 403, string> = { 400: 'Bad Request', 401: 'Unauthorized', 403: 'Forbidden' };

const CONTENT_TYPES: Record<string, string> = {
  '.html': 'text/html; charset=utf-8',
  '.js': 'text/javascript; charset=utf-8',
  '.css': 'text/css; charset=utf-8',
  '.svg': 'image/svg+xml',
  '.png': 'image/png',
  '.jpg': 'image/jpeg',
  '.ico': 'image/x-icon',
  '.json': 'application/json',
  '.woff2': 'font/woff2',
  '.map': 'application/json',
};

function securityHeaders(res: ServerResponse): void {
  res.setHeader('Content-Security-Policy', CONTENT_SECURITY_POLICY);
  res.setHeader('X-Content-Type-Options', 'nosniff');
  res.setHeader('X-Frame-Options', 'DENY');
  res.setHeader('Referrer-Policy', 'no-referrer');
  res.setHeader('Cross-Origin-Opener-Policy', 'same-origin');
  res.setHeader('Cross-Origin-Resource-Policy', 'same-origin');
}

function sendJson(res: ServerResponse, status: number, body: unknown): void {
  const data = JSON.stringify(body);
  res.writeHead(status, { 'Content-Type': 'application/json; charset=utf-8', 'Cache-Control': 'no-store' });
  res.end(data);
}

/** Largest message a browser may send on the event socket (it sends none). */
const WS_MAX_PAYLOAD = 4096;
/** Events waiting for a client that does not read them, before it is dropped (the UI reconnects and refetches). */
const WS_MAX_BUFFERED = 8 * 1024 * 1024;

async function readBody(req: IncomingMessage): Promise<string> {
  let size = 0;
  const chunks: Buffer[] = [];
  for await (const chunk of req) {
    size += (chunk as Buffer).length;
    if (size > MAX_BODY) throw new Error('request body too large');
    chunks.push(chunk as Buffer);
  }
  return Buffer.concat(chunks).toString('utf8');
}

/** Answers 400 for a request no handler could make sense of; never throws (the socket may already be gone). */
function badRequest(res: ServerResponse, message: string): void {
  if (res.headersSent) {
    res.destroy();
    return;
  }
  try {
    sendJson(res, 400, { ok: false, error: { code: 'INVALID_ARGUMENT', message } });
  } catch {
    res.destroy();
  }
}

function serveStatic(staticDir: string, pathname: string, res: ServerResponse): void {
  let root: string;
  try {
    root = fs.realpathSync(path.resolve(staticDir));
  } catch {
    sendJson(res, 404, { ok: false, error: { code: 'NOT_FOUND', message: 'This server has no UI build' } });
    return;
  }
  let rel: string;
  try {
    rel = decodeURIComponent(pathname);
  } catch {
    sendJson(res, 400, { error: { code: 'INVALID_ARGUMENT', message: 'Bad path encoding' } });
    return;
  }
  if (rel.includes('\0')) {
    sendJson(res, 400, { error: { code: 'INVALID_ARGUMENT', message: 'Bad path' } });
    return;
  }
  const inside = (p: string) => p === root || p.startsWith(root + path.sep);
  let file = path.resolve(root, `.${rel}`);
  if (!inside(file)) {
    sendJson(res, 403, { error: { code: 'PATH_REFUSED', message: 'Path escapes the app folder' } });
    return;
  }
  // Only regular files whose real path stays inside the build folder: a symbolic link in it is not followed out,
  // and a FIFO or device there cannot block the server.
  let real: string | null = null;
  try {
    real = fs.realpathSync(file);
  } catch {
    real = null;
  }
  if (real !== null && !inside(real)) {
    sendJson(res, 403, { error: { code: 'PATH_REFUSED', message: 'Path escapes the app folder' } });
    return;
  }
  if (real === null || !fs.statSync(real).isFile()) {
    // Single-page app: unknown paths without an extension get the shell; missing assets are 404.
    if (path.extname(rel) || (real !== null && !fs.statSync(real).isDirectory())) {
      res.writeHead(404, { 'Content-Type': 'text/plain' }).end('Not found');
      return;
    }
    file = path.join(root, 'index.html');
    if (!fs.existsSync(file) || !fs.lstatSync(file).isFile()) {
      res.writeHead(404, { 'Content-Type': 'text/plain' }).end('Not found');
      return;
    }
  } else {
    file = real;
  }
  const type = CONTENT_TYPES[path.extname(file)] ?? 'application/octet-stream';
  const immutable = file.includes(`${path.sep}assets${path.sep}`);
  res.writeHead(200, {
    'Content-Type': type,
    'Cache-Control': immutable ? 'public, max-age=31536000, immutable' : 'no-cache',
  });
  const stream = fs.createReadStream(file);
  stream.on('error', () => res.destroy());
  stream.pipe(res);
}

/** A browser navigating to a page (not the API, not a media resource): it asked for HTML. */
function wantsPage(req: IncomingMessage, url: URL): boolean {
  return (
    req.method === 'GET' &&
    !url.pathname.startsWith('/api/') &&
    !url.pathname.startsWith('/media/') &&
    (req.headers.accept ?? '').includes('text/html')
  );
}

const escapeHtml = (s: string) =>
  s.replace(/[&<>"']/g, (c) => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' })[c] as string);

/** The refusal of a token-less page load as a page: what the token is, and where the address with it is printed. */
function tokenPage(res: ServerResponse, reason: string): void {
  const body = `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Flaneur: open the address with its token</title></head>
<body><h1>Open Flaneur with its launch address</h1>
<p>${escapeHtml(reason)}</p>
<p>Flaneur's browser mode only answers the address it printed when it started, which ends in
<code>/?token=…</code>. The token is made anew at every launch, so that other programs and web pages on this
computer cannot use the app; after the first visit this browser remembers it until the app stops.</p>
<p>Look in the terminal where you ran <code>npm start</code> (or <code>flaneur serve</code>) for the line with the
address, and open that address here. If the app was restarted, use the address of the new launch.</p>
</body></html>`;
  res.writeHead(401, { 'Content-Type': 'text/html; charset=utf-8', 'Cache-Control': 'no-store' });
  res.end(body);
}

export async function startServer(options: ServerOptions): Promise<RunningServer> {
  const token = options.token ?? newToken();
  let port = 0;

  // Every request goes through `handle`; whatever it throws is answered 400 here, so no input can end the process.
  const handle = async (req: IncomingMessage, res: ServerResponse): Promise<void> => {
    securityHeaders(res);
    const url = requestUrl(req.url);
    if (!url) {
      badRequest(res, 'Bad request target.');
      return;
    }
    const refusal = checkRequest(req, url, port, token);
    if (refusal) {
      // A person who opened the address without its token (or an old one) reads a page that says what to do;
      // scripts and the API keep the JSON answer.
      if (refusal.status === 401 && wantsPage(req, url)) tokenPage(res, refusal.message);
      else sendJson(res, refusal.status, { ok: false, error: { code: refusal.code, message: refusal.message } });
      return;
    }
    // First load with ?token=: keep the token in a strict, HttpOnly cookie and drop it from the address bar.
    if (req.method === 'GET' && url.searchParams.has('token')) {
      url.searchParams.delete('token');
      res.writeHead(303, {
        'Set-Cookie': `${TOKEN_COOKIE}=${encodeURIComponent(token)}; HttpOnly; SameSite=Strict; Path=/`,
        Location: localLocation(url.pathname, url.search),
      });
      res.end();
      return;
    }
    if (url.pathname === '/api/call') {
      if (req.method !== 'POST') {
        sendJson(res, 405, { ok: false, error: { code: 'INVALID_ARGUMENT', message: 'Use POST' } });
        return;
      }
      if (!(req.headers['content-type'] ?? '').startsWith('application/json')) {
        sendJson(res, 415, {
          ok: false,
          error: { code: 'INVALID_ARGUMENT', message: 'Content-Type must be application/json' },
        });
        return;
      }
      let body: unknown;
      try {
        body = JSON.parse(await readBody(req));
      } catch (err) {
        sendJson(res, 400, {
          ok: false,
          error: { code: 'INVALID_ARGUMENT', message: `Bad request body: ${(err as Error).message}` },
        });
        return;
      }
      const { command, args } = (body ?? {}) as { command?: unknown; args?: unknown };
      loopActivity(`call ${String(command)}`);
      const answer = await options.dispatcher.dispatch(command, args);
      loopActivity(`call ${String(command)}: answer`);
      sendJson(res, 200, answer);
      return;
    }
    if (url.pathname.startsWith('/media/') && options.resource) {
      try {
        const r = await options.resource(url.pathname);
        if (!r) {
          sendJson(res, 404, { ok: false, error: { code: 'NOT_FOUND', message: `Nothing at ${url.pathname}` } });
          return;
        }
        // The same address names another image in another project (/media/frame/1/0.png is the first item's first
        // frame in each): the browser keeps a copy but asks each time, and gets 304 while the bytes are the same.
        const etag = `"${createHash('sha1').update(r.body).digest('base64url')}"`;
        if (req.headers['if-none-match'] === etag) {
          res.writeHead(304, { ETag: etag, 'Cache-Control': 'private, no-cache' });
          res.end();
          return;
        }
        res.writeHead(200, { 'Content-Type': r.contentType, 'Cache-Control': 'private, no-cache', ETag: etag });
        res.end(r.body);
      } catch (err) {
        sendJson(res, 404, { ok: false, error: serializeError(err) });
      }
      return;
    }
    if (req.method !== 'GET' && req.method !== 'HEAD') {
      sendJson(res, 405, { ok: false, error: { code: 'INVALID_ARGUMENT', message: 'Method not allowed' } });
      return;
    }
    if (!options.staticDir) {
      sendJson(res, 404, { ok: false, error: { code: 'NOT_FOUND', message: 'This server has no UI build' } });
      return;
    }
    serveStatic(options.staticDir, url.pathname, res);
  };

  const server = http.createServer((req, res) => {
    req.on('error', () => res.destroy());
    res.on('error', () => {});
    handle(req, res).catch((err: unknown) => badRequest(res, `Bad request: ${(err as Error)?.message ?? err}`));
  });
  // An idle keep-alive connection is closed after a minute, not Node's 5 s: while a job's host-side work holds the
  // event loop for a few seconds, a request already sent on a connection whose 5 s ran out meanwhile was answered by
  // the close (ECONNRESET in Node's fetch). Clients learn the timeout from the Keep-Alive header and stop reusing a
  // connection a second before it.
  server.keepAliveTimeout = 60_000;
  server.headersTimeout = 65_000;
  server.on('clientError', (_err, socket) => {
    if (socket.writable) socket.end('HTTP/1.1 400 Bad Request\r\nConnection: close\r\n\r\n');
    else socket.destroy();
  });

  // The event socket only sends: a client message of more than a few bytes closes it (ws's default would buffer up
  // to 100 MiB), and a client that stops reading is dropped once a few MiB of events wait for it, instead of the
  // engine holding every progress event for it in memory.
  const wss = new WebSocketServer({ noServer: true, maxPayload: WS_MAX_PAYLOAD });
  const refuseUpgrade = (socket: Duplex, status: string) => {
    if (socket.writable) socket.end(`HTTP/1.1 ${status}\r\nConnection: close\r\n\r\n`);
    else socket.destroy();
  };
  server.on('upgrade', (req: IncomingMessage, socket: Duplex, head: Buffer) => {
    socket.on('error', () => socket.destroy());
    try {
      const url = requestUrl(req.url);
      if (!url) {
        refuseUpgrade(socket, '400 Bad Request');
        return;
      }
      const refusal = checkRequest(req, url, port, token);
      if (refusal || url.pathname !== '/api/events') {
        const status = refusal ? `${refusal.status} ${STATUS_TEXT[refusal.status]}` : '404 Not Found';
        refuseUpgrade(socket, status);
        return;
      }
      wss.handleUpgrade(req, socket, head, (ws) => {
        const unsubscribe = options.subscribe((event) => {
          if (ws.readyState !== ws.OPEN) return;
          if (ws.bufferedAmount > WS_MAX_BUFFERED) ws.terminate();
          else ws.send(JSON.stringify(event));
        });
        ws.on('close', unsubscribe);
        ws.on('error', unsubscribe);
      });
    } catch {
      refuseUpgrade(socket, '400 Bad Request');
    }
  });

  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(options.port ?? 0, '127.0.0.1', () => resolve());
  });
  port = (server.address() as AddressInfo).port;
  const url = `http://127.0.0.1:${port}`;

  return {
    url,
    port,
    token,
    launchUrl: `${url}/?token=${token}`,
    async close() {
      for (const ws of wss.clients) ws.terminate();
      wss.close();
      server.closeAllConnections();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}
