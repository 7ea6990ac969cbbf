import fs from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { WebSocket } from 'ws';
import type { RunningServer } from '../../../native/server/http-server.js';
import { type EngineProcess, startEngineProcess } from '../../helpers/engine-process.js';
import { serveEngine } from '../../helpers/engine-server.js';
import { rawRequest } from '../../helpers/raw-http.js';
import { tmpDir } from '../../helpers/tmp.js';

// Issue 15 items 1, 2 and 9 (browser mode): requests that used to end the server process, or were answered wrongly.
describe('browser mode survives hostile requests (a real engine process)', () => {
  let engine: EngineProcess;
  let port: number;
  let host: string;

  beforeAll(async () => {
    engine = await startEngineProcess({ home: tmpDir() });
    port = Number(new URL(engine.url).port);
    host = `127.0.0.1:${port}`;
  }, 60_000);
  afterAll(async () => {
    await engine.stop();
  });

  const get = (target: string, headers: string[] = []) =>
    rawRequest(port, [`GET ${target} HTTP/1.1`, `Host: ${host}`, ...headers, 'Connection: close', '', ''].join('\r\n'));

  async function stillServing(): Promise<void> {
    expect(engine.child.exitCode).toBeNull();
    expect(engine.child.signalCode).toBeNull();
    const info = await engine.call('app.info', {});
    expect(info.name).toBe('flaneur');
  }

  it('a cookie that is not valid percent-encoding is answered, with or without the token, and the server lives', async () => {
    for (const cookie of ['x=%zz', 'progress=50%', 'a=%E0%A4%A', 'flaneur_token=%', '=%%%; ;;=']) {
      const anonymous = await get('/', [`Cookie: ${cookie}`]);
      expect(anonymous.status).toBe(401);
      const withToken = await get('/api/nothing', [`Cookie: ${cookie}`, `X-Flaneur-Token: ${engine.token}`]);
      expect(withToken.status).not.toBe(0);
      await stillServing();
    }
    // The token cookie still works beside a broken one.
    const mixed = await get('/', [`Cookie: progress=50%; flaneur_token=${encodeURIComponent(engine.token)}`]);
    expect(mixed.status).toBe(200);
  });

  it('a malformed request target is answered 400 and the server lives (HTTP)', async () => {
    for (const target of ['http://[::1/', 'http://[::1]:99999/', '*', 'evil.example:80', 'http://%zz/', '']) {
      const r = await get(target, [`X-Flaneur-Token: ${engine.token}`]);
      expect(r.status, target).toBe(400);
      await stillServing();
    }
  });

  it('a malformed request target or cookie on a WebSocket upgrade is refused and the server lives', async () => {
    const upgrade = (target: string, extra: string[]) =>
      rawRequest(
        port,
        [
          `GET ${target} HTTP/1.1`,
          `Host: ${host}`,
          'Upgrade: websocket',
          'Connection: Upgrade',
          'Sec-WebSocket-Version: 13',
          'Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==',
          ...extra,
          '',
          '',
        ].join('\r\n'),
      );
    expect((await upgrade('http://[::1/', [`X-Flaneur-Token: ${engine.token}`])).status).toBe(400);
    await stillServing();
    expect((await upgrade('/api/events', ['Cookie: x=%zz'])).status).toBe(401);
    await stillServing();
    const ok = await upgrade('/api/events', ['Cookie: x=%zz', `X-Flaneur-Token: ${engine.token}`]);
    expect(ok.status).toBe(101);
    await stillServing();
  });

  it('a large message on the event socket closes that socket (1009) without buffering it, and the server lives', async () => {
    const ws = new WebSocket(`ws://${host}/api/events`, { headers: { 'X-Flaneur-Token': engine.token } });
    await new Promise<void>((resolve, reject) => {
      ws.once('open', () => resolve());
      ws.once('error', reject);
    });
    const closed = new Promise<number>((resolve) => ws.once('close', (code) => resolve(code)));
    ws.send(Buffer.alloc(8 * 1024 * 1024, 1));
    expect(await closed).toBe(1009);
    await stillServing();
  });

  it('refuses a request with two Host headers', async () => {
    const r = await get('/', [`Host: evil.example:${port}`, `X-Flaneur-Token: ${engine.token}`]);
    expect(r.status).toBe(400);
    expect(r.text).toMatch(/more than one Host header/);
    await stillServing();
  });

  it('never redirects to another site: /.//evil.example/ with the token stays on this origin', async () => {
    for (const target of ['/.//evil.example/', '/.%2F/evil.example/', '/./\\evil.example/', '//evil.example/']) {
      const r = await get(`${target}?token=${engine.token}`);
      expect(r.status, target).toBe(303);
      const location = /\r\nlocation: *([^\r]*)/i.exec(r.head)?.[1] ?? '';
      expect(location, target).toMatch(/^\/(?![/\\])/);
    }
    await stillServing();
  });
});

describe('browser mode static files', () => {
  let server: RunningServer;
  let close: () => Promise<void>;
  const outside = tmpDir();
  const staticDir = tmpDir();

  beforeAll(async () => {
    fs.writeFileSync(path.join(staticDir, 'index.html'), '<!doctype html><title>Flaneur</title>');
    fs.writeFileSync(path.join(outside, 'secret.txt'), 'the secret');
    fs.symlinkSync(path.join(outside, 'secret.txt'), path.join(staticDir, 'secret.txt'));
    fs.symlinkSync(outside, path.join(staticDir, 'elsewhere'));
    fs.writeFileSync(path.join(staticDir, 'app.js'), 'console.log(1)');
    fs.symlinkSync(path.join(staticDir, 'app.js'), path.join(staticDir, 'alias.js'));
    ({ server, close } = await serveEngine(staticDir));
  });
  afterAll(() => close());

  const get = (target: string) =>
    rawRequest(
      server.port,
      [
        `GET ${target} HTTP/1.1`,
        `Host: 127.0.0.1:${server.port}`,
        `X-Flaneur-Token: ${server.token}`,
        'Connection: close',
        '',
        '',
      ].join('\r\n'),
    );

  it('does not follow a symbolic link out of the UI build folder', async () => {
    for (const target of ['/secret.txt', '/elsewhere/secret.txt']) {
      const r = await get(target);
      expect(r.status, target).toBe(403);
      expect(r.text).not.toContain('the secret');
    }
  });

  it('still serves a link that stays inside the folder, and regular files', async () => {
    expect((await get('/alias.js')).text).toContain('console.log(1)');
    expect((await get('/app.js')).status).toBe(200);
  });
});
