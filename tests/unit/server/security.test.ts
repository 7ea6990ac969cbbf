import fs from 'node:fs';
import http from 'node:http';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import WebSocket from 'ws';
import type { Engine } from '../../../native/engine/engine.js';
import type { RunningServer } from '../../../native/server/http-server.js';
import { serveEngine } from '../../helpers/engine-server.js';
import { tmpDir } from '../../helpers/tmp.js';

interface Reply {
  status: number;
  headers: http.IncomingHttpHeaders;
  body: string;
}

function request(
  server: RunningServer,
  options: { method?: string; path?: string; headers?: Record<string, string>; body?: string },
): Promise<Reply> {
  return new Promise((resolve, reject) => {
    const req = http.request(
      {
        host: '127.0.0.1',
        port: server.port,
        method: options.method ?? 'GET',
        path: options.path ?? '/',
        headers: { host: `127.0.0.1:${server.port}`, ...options.headers },
      },
      (res) => {
        let body = '';
        res.on('data', (d: Buffer) => {
          body += d.toString();
        });
        res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body }));
      },
    );
    req.on('error', reject);
    req.end(options.body);
  });
}

const callBody = JSON.stringify({ command: 'app.info', args: {} });

describe('browser mode security', () => {
  let server: RunningServer;
  let engine: Engine;
  let close: () => Promise<void>;
  const staticDir = tmpDir();

  beforeAll(async () => {
    fs.writeFileSync(path.join(staticDir, 'index.html'), '<!doctype html><title>Flaneur</title>');
    ({ engine, server, close } = await serveEngine(staticDir));
  });
  afterAll(() => close());

  const api = (headers: Record<string, string>) =>
    request(server, {
      method: 'POST',
      path: '/api/call',
      headers: { 'content-type': 'application/json', ...headers },
      body: callBody,
    });

  it('listens on 127.0.0.1 only', () => {
    expect(server.url).toMatch(/^http:\/\/127\.0\.0\.1:\d+$/);
  });

  it('answers a call that carries the token', async () => {
    const r = await api({ 'x-flaneur-token': server.token });
    expect(r.status).toBe(200);
    expect(JSON.parse(r.body)).toMatchObject({ ok: true, result: { name: 'flaneur' } });
  });

  it('refuses a request without the token', async () => {
    const r = await api({});
    expect(r.status).toBe(401);
    expect(JSON.parse(r.body)).toMatchObject({ ok: false, error: { code: 'UNAUTHORIZED' } });
    expect((await request(server, { path: '/' })).status).toBe(401);
  });

  it('refuses a wrong token', async () => {
    const last = server.token.at(-1) === 'x' ? 'y' : 'x';
    const r = await api({ 'x-flaneur-token': `${server.token.slice(0, -1)}${last}` });
    expect(r.status).toBe(401);
    expect(JSON.parse(r.body).error.message).toMatch(/Wrong launch token/);
    expect((await api({ cookie: 'flaneur_token=nope' })).status).toBe(401);
  });

  it('refuses a foreign Host even with the token (DNS rebinding)', async () => {
    const r = await api({ 'x-flaneur-token': server.token, host: `evil.example:${server.port}` });
    expect(r.status).toBe(403);
    expect(JSON.parse(r.body).error.message).toMatch(/Host/);
  });

  it('refuses a foreign Origin even with the token (cross-site requests)', async () => {
    const r = await api({ 'x-flaneur-token': server.token, origin: 'http://evil.example' });
    expect(r.status).toBe(403);
    expect(JSON.parse(r.body).error.message).toMatch(/Origin/);
    const sameHostOtherPort = await api({ 'x-flaneur-token': server.token, origin: 'http://127.0.0.1:1' });
    expect(sameHostOtherPort.status).toBe(403);
  });

  it('accepts its own Origin', async () => {
    const r = await api({ 'x-flaneur-token': server.token, origin: server.url });
    expect(r.status).toBe(200);
  });

  it('moves the token from the URL into a strict HttpOnly cookie, then serves the UI with a CSP', async () => {
    const first = await request(server, { path: `/?token=${server.token}` });
    expect(first.status).toBe(303);
    expect(first.headers.location).toBe('/');
    const cookie = String(first.headers['set-cookie']);
    expect(cookie).toMatch(/HttpOnly/);
    expect(cookie).toMatch(/SameSite=Strict/);
    const page = await request(server, { path: '/', headers: { cookie: cookie.split(';')[0] ?? '' } });
    expect(page.status).toBe(200);
    expect(page.body).toContain('<title>Flaneur</title>');
    expect(page.headers['content-security-policy']).toContain("script-src 'self'");
  });

  it('refuses paths that escape the UI folder', async () => {
    const r = await request(server, { path: '/..%2f..%2fetc%2fpasswd', headers: { 'x-flaneur-token': server.token } });
    expect([403, 404]).toContain(r.status);
    expect(r.body).not.toContain('root:');
  });

  it('requires JSON for calls', async () => {
    const r = await request(server, {
      method: 'POST',
      path: '/api/call',
      headers: { 'x-flaneur-token': server.token, 'content-type': 'text/plain' },
      body: callBody,
    });
    expect(r.status).toBe(415);
  });

  it('refuses an event socket without the token or from a foreign origin, and streams events with it', async () => {
    const wsUrl = `ws://127.0.0.1:${server.port}/api/events`;
    const refused = (headers: Record<string, string>) =>
      new Promise<number>((resolve) => {
        const ws = new WebSocket(wsUrl, { headers });
        ws.on('unexpected-response', (_req, res) => resolve(res.statusCode ?? 0));
        ws.on('open', () => resolve(101));
        ws.on('error', () => {});
      });
    expect(await refused({})).toBe(401);
    expect(await refused({ 'x-flaneur-token': server.token, origin: 'http://evil.example' })).toBe(403);

    const ws = new WebSocket(wsUrl, { headers: { 'x-flaneur-token': server.token, origin: server.url } });
    await new Promise((r) => ws.once('open', r));
    const got = new Promise<string>((resolve) => ws.once('message', (d) => resolve(String(d))));
    await engine.openDemo();
    expect(JSON.parse(await got)).toMatchObject({ type: 'project.changed' });
    ws.close();
  });
});
