/**
 * Browser-mode request checks: the server answers only requests addressed to its own loopback origin (defeats DNS
 * rebinding), from its own pages (defeats cross-site requests), carrying the launch token.
 */
import { randomBytes, timingSafeEqual } from 'node:crypto';
import type { IncomingMessage } from 'node:http';

export const TOKEN_COOKIE = 'flaneur_token';
export const TOKEN_HEADER = 'x-flaneur-token';

export function newToken(): string {
  return randomBytes(24).toString('base64url');
}

export function allowedHosts(port: number): Set<string> {
  return new Set([`127.0.0.1:${port}`, `localhost:${port}`]);
}

export type Refusal = { status: 400 | 401 | 403; code: 'UNAUTHORIZED' | 'INVALID_ARGUMENT'; message: string };

/** A cookie value decoded as percent-encoding when it is valid; kept as sent when it is not ("50%"). */
function decodeCookieValue(value: string): string {
  try {
    return decodeURIComponent(value);
  } catch {
    return value;
  }
}

/**
 * The request's cookies. Never throws: any page on another 127.0.0.1 port can set cookies for this host, so a
 * malformed cookie (`progress=50%`) must not stop the server; it is kept undecoded and simply never matches the token.
 */
export function parseCookies(header: string | undefined): Map<string, string> {
  const out = new Map<string, string>();
  if (!header) return out;
  for (const part of header.split(';')) {
    const i = part.indexOf('=');
    if (i > 0) out.set(part.slice(0, i).trim(), decodeCookieValue(part.slice(i + 1).trim()));
  }
  return out;
}

/**
 * The request target as a URL, or null when it is not an origin-form path (`/…`). Absolute forms
 * (`http://[::1/`), `*` and anything `new URL` rejects are answered 400 by the caller instead of throwing.
 */
export function requestUrl(target: string | undefined): URL | null {
  if (typeof target !== 'string' || !target.startsWith('/')) return null;
  try {
    // Appended to the origin rather than resolved against it: `//host/x` stays the path `//host/x`.
    return new URL(`http://127.0.0.1${target}`);
  } catch {
    return null;
  }
}

/**
 * A same-site redirect target for a path: leading slashes and backslashes collapse to one, so a request for
 * `/.//evil.example/` can never answer `Location: //evil.example/` (a protocol-relative URL to another site).
 */
export function localLocation(pathname: string, search: string): string {
  return `/${pathname.replace(/^[/\\]+/, '')}${search}`;
}

export function tokensEqual(a: string | null | undefined, b: string): boolean {
  if (typeof a !== 'string') return false;
  const x = Buffer.from(a);
  const y = Buffer.from(b);
  return x.length === y.length && timingSafeEqual(x, y);
}

/** The token a request carries: header, then cookie, then the `token` query parameter (first page load). */
export function presentedToken(req: IncomingMessage, url: URL): string | null {
  const header = req.headers[TOKEN_HEADER];
  if (typeof header === 'string') return header;
  const cookie = parseCookies(req.headers.cookie).get(TOKEN_COOKIE);
  if (cookie) return cookie;
  return url.searchParams.get('token');
}

/** Returns why a request is refused, or null when it may proceed. */
export function checkRequest(req: IncomingMessage, url: URL, port: number, token: string): Refusal | null {
  const hosts = allowedHosts(port);
  // Node keeps the first of several Host headers; a request with two is ambiguous (proxies may use the other).
  let hostHeaders = 0;
  for (let i = 0; i < req.rawHeaders.length; i += 2) {
    if (req.rawHeaders[i]?.toLowerCase() === 'host') hostHeaders++;
  }
  if (hostHeaders > 1) {
    return { status: 400, code: 'INVALID_ARGUMENT', message: 'Refused: the request has more than one Host header.' };
  }
  const host = req.headers.host;
  if (!host || !hosts.has(host.toLowerCase())) {
    return { status: 403, code: 'UNAUTHORIZED', message: `Refused: Host "${host ?? ''}" is not this server.` };
  }
  const origin = req.headers.origin;
  if (origin !== undefined) {
    let originHost: string | null = null;
    try {
      const o = new URL(origin);
      originHost = o.protocol === 'http:' ? o.host.toLowerCase() : null;
    } catch {
      originHost = null;
    }
    if (!originHost || !hosts.has(originHost)) {
      return { status: 403, code: 'UNAUTHORIZED', message: `Refused: Origin "${origin}" is not this app.` };
    }
  }
  const presented = presentedToken(req, url);
  if (presented === null) {
    return {
      status: 401,
      code: 'UNAUTHORIZED',
      message: 'Missing launch token. Open the URL that `npm start` printed (it carries the token).',
    };
  }
  if (!tokensEqual(presented, token)) {
    return { status: 401, code: 'UNAUTHORIZED', message: 'Wrong launch token. Use the URL printed at this launch.' };
  }
  return null;
}
