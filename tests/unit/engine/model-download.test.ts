/**
 * The models.download job end to end against a local HTTP server on 127.0.0.1 (never a real host), with a test
 * catalog (FLANEUR_CATALOG): progress, a connection dropped mid-file and resumed, a failed job resumed from its
 * partial file, a wrong checksum refused with the partial removed, no network explained with the offline route, and
 * a gated entry refused at once. The downloaded checkpoint is recognised and registered under its catalog entry.
 */
import crypto from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { CatalogEntry, JobInfo } from '../../../native/api/contract.js';
import { dispatchEngine } from '../../helpers/dispatch.js';
import { waitFor } from '../../helpers/engine-process.js';
import { closedPort, type FileServer, serveFiles } from '../../helpers/file-server.js';
import { fixturePath } from '../../helpers/fixtures.js';
import { tmpDir } from '../../helpers/tmp.js';

const FILE = 'dino_tiny.dino-checkpoint.pth';
const bytes = fs.readFileSync(fixturePath('pth', FILE));
const sha256 = crypto.createHash('sha256').update(bytes).digest('hex');

function entry(id: string, over: Partial<CatalogEntry>): CatalogEntry {
  return {
    id,
    title: `Tiny DINO (${id})`,
    family: 'dino',
    size: 'tiny',
    patch: 16,
    dim: 48,
    depth: 2,
    heads: 3,
    registers: 0,
    mlp: 'gelu',
    goodFor: 'tests',
    page: 'https://example.invalid/page',
    fileName: FILE,
    url: null,
    huggingFace: null,
    licence: 'test licence',
    bytes: bytes.length,
    sha256,
    sha256Prefix: null,
    checksumNote: 'computed by the test',
    mean: [0.5, 0.5, 0.5],
    std: [0.25, 0.25, 0.25],
    ...over,
  };
}

let server: FileServer;
let env: ReturnType<typeof dispatchEngine>;
const events: JobInfo[] = [];

beforeAll(async () => {
  server = await serveFiles({ [FILE]: bytes });
  const catalog = path.join(tmpDir(), 'catalog.json');
  const entries = [
    entry('tiny', { url: server.url(FILE) }),
    entry('tiny-bad-sum', { url: server.url(FILE), sha256: '0'.repeat(64), fileName: 'other.pth' }),
    entry('tiny-offline', { url: `http://127.0.0.1:${await closedPort()}/${FILE}`, fileName: 'x.pth' }),
    entry('tiny-gated', { url: null, access: 'Ask the authors.' }),
    entry('tiny-escape', { url: server.url(FILE), fileName: '../../escaped.pth' }),
    entry('tiny-unverified', { url: server.url(FILE), fileName: 'unverified.pth', sha256: null }),
  ];
  fs.writeFileSync(catalog, JSON.stringify({ about: 'test', entries }));
  process.env.FLANEUR_CATALOG = catalog;
  env = dispatchEngine();
  env.engine.on((e) => {
    if (e.type === 'job.updated' && e.job.kind === 'models.download') events.push(e.job);
  });
  await env.call('project.create', { path: path.join(tmpDir(), 'p') });
});
afterAll(async () => {
  env.engine.close();
  await server.close();
  delete process.env.FLANEUR_CATALOG;
});

const finished = (id: number) =>
  waitFor(async () => {
    const j = await env.call('jobs.get', { id });
    return j.state === 'done' || j.state === 'failed' ? j : null;
  }, 60_000);

const downloadsDir = () => path.join(env.engine.requireProject().project.dir, 'models', 'downloads');

describe('downloading a catalog model', () => {
  it('lists the catalog with size estimates and nothing installed', async () => {
    const list = await env.call('models.catalog', {});
    expect(list.map((e) => e.id)).toEqual([
      'tiny',
      'tiny-bad-sum',
      'tiny-offline',
      'tiny-gated',
      'tiny-escape',
      'tiny-unverified',
    ]);
    expect(list[0]).toMatchObject({ modelId: null, estimatedBytes: expect.any(Number) });
  });

  it('downloads with progress through a dropped connection, checks the SHA-256 and registers the entry', async () => {
    server.requests.length = 0;
    server.cutNext(1, 200_000);
    const job = await env.call('models.download', { id: 'tiny' });
    const done = await finished(job.id);
    expect(done.state).toBe('done');
    expect(server.requests.length).toBe(2);
    expect(server.requests[1]).toMatch(/^bytes=\d+-$/);
    const progress = events.filter((e) => e.id === job.id && e.progress.phase === 'downloading');
    expect(progress.length).toBeGreaterThan(0);
    const models = await env.call('models.list', {});
    expect(models).toHaveLength(1);
    expect(models[0]).toMatchObject({ name: 'Tiny DINO (tiny)', catalogId: 'tiny', licence: 'test licence', sha256 });
    expect(models[0]?.mean).toEqual([0.5, 0.5, 0.5]);
    expect(fs.readdirSync(downloadsDir())).toEqual([]);
    const catalog = await env.call('models.catalog', {});
    expect(catalog[0]?.modelId).toBe(models[0]?.id);
  });

  it('refuses a download whose SHA-256 is not the published one, removing the partial file', async () => {
    const job = await env.call('models.download', { id: 'tiny-bad-sum' });
    const done = await finished(job.id);
    expect(done.state).toBe('failed');
    expect(done.error?.code).toBe('INVALID_MODEL');
    expect(done.error?.message).toMatch(/does not match its published SHA-256.*the partial file was removed/);
    expect(fs.readdirSync(downloadsDir())).toEqual([]);
    expect(await env.call('models.list', {})).toHaveLength(1);
  });

  it('with no network, fails with a message that offers the offline import', async () => {
    const job = await env.call('models.download', { id: 'tiny-offline' });
    const done = await finished(job.id);
    expect(done.error?.code).toBe('NETWORK_UNAVAILABLE');
    expect(done.error?.message).toMatch(
      /seems offline\. Flaneur works without a network: download x\.pth from .* import it here/,
    );
  });

  it('refuses at once an entry the publisher offers no direct download for, saying how to get it', async () => {
    await expect(env.call('models.download', { id: 'tiny-gated' })).rejects.toThrow(
      /cannot be downloaded by the app\. Ask the authors\./,
    );
  });

  it('resumes a failed download from its partial file when the job is resumed', async () => {
    await env.call('models.remove', { id: 1 });
    server.requests.length = 0;
    server.cutNext(5, 30_000); // more drops than one attempt retries (3): the job fails with the partial kept
    const job = await env.call('models.download', { id: 'tiny' });
    const failed = await finished(job.id);
    expect(failed.state).toBe('failed');
    expect(failed.error?.message).toMatch(/kept dropping .* Resume the job to continue/);
    const partial = fs.statSync(path.join(downloadsDir(), 'tiny.part')).size;
    expect(partial).toBeGreaterThan(0);
    server.requests.length = 0;
    await env.call('jobs.resume', { id: job.id });
    const done = await finished(job.id);
    expect(done.state).toBe('done');
    expect(server.requests[0]).toBe(`bytes=${partial}-`);
    expect((await env.call('models.list', {}))[0]?.catalogId).toBe('tiny');
  });

  it('refuses a catalog fileName that would leave the downloads folder, writing nothing outside it', async () => {
    const project = env.engine.requireProject().project.dir;
    const job = await env.call('models.download', { id: 'tiny-escape' });
    const done = await finished(job.id);
    expect(done.error?.code).toBe('INVALID_ARGUMENT');
    expect(done.error?.message).toMatch(/names its file "\.\.\/\.\.\/escaped\.pth", which is not a plain file name/);
    expect(fs.existsSync(path.join(project, 'escaped.pth'))).toBe(false);
    expect(fs.existsSync(path.join(project, 'models', 'escaped.pth'))).toBe(false);
  });

  it("shows a model without a published SHA-256 as unverified and records the first download's hash", async () => {
    for (const m of await env.call('models.list', {})) await env.call('models.remove', { id: m.id });
    const job = await env.call('models.download', { id: 'tiny-unverified' });
    const done = await finished(job.id);
    expect(done.error?.message ?? done.state).toBe('done');
    const models = await env.call('models.list', {});
    expect(models.map((m) => m.name)).toEqual(['Tiny DINO (tiny-unverified) — unverified (no published checksum)']);
    expect(fs.readFileSync(path.join(downloadsDir(), 'tiny-unverified.sha256'), 'utf8').trim()).toBe(sha256);
  });
});
