import http from 'node:http';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { RunningServer } from '../../../native/server/http-server.js';
import { serveEngine } from '../../helpers/engine-server.js';
import { tmpDir } from '../../helpers/tmp.js';

function get(
  server: RunningServer,
  p: string,
  accept: string,
): Promise<{ status: number; type: string; body: string }> {
  return new Promise((resolve, reject) => {
    http
      .get(
        { host: '127.0.0.1', port: server.port, path: p, headers: { host: `127.0.0.1:${server.port}`, accept } },
        (res) => {
          let body = '';
          res.on('data', (d: Buffer) => {
            body += d.toString();
          });
          res.on('end', () =>
            resolve({ status: res.statusCode ?? 0, type: String(res.headers['content-type']), body }),
          );
        },
      )
      .on('error', reject);
  });
}

describe('browser mode opened without its launch token', () => {
  let s: Awaited<ReturnType<typeof serveEngine>>;
  beforeAll(async () => {
    s = await serveEngine(tmpDir());
  });
  afterAll(() => s.close());

  it('answers a browser with a page that explains the token and where the address is printed', async () => {
    const r = await get(s.server, '/', 'text/html,application/xhtml+xml');
    expect(r.status).toBe(401);
    expect(r.type).toMatch(/^text\/html/);
    expect(r.body).toContain('Open Flaneur with its launch address');
    expect(r.body).toContain('/?token=');
    expect(r.body).toContain('npm start');
    expect(r.body).not.toContain(s.server.token);
  });

  it('still answers scripts and the API with JSON', async () => {
    const api = await get(s.server, '/api/call', 'text/html');
    expect(api.type).toMatch(/^application\/json/);
    const script = await get(s.server, '/', 'application/json');
    expect(script.status).toBe(401);
    expect(JSON.parse(script.body)).toMatchObject({ ok: false, error: { code: 'UNAUTHORIZED' } });
  });
});
