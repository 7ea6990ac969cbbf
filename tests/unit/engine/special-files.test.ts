/**
 * Issue 25 items 2 and 7: paths a user gives that are not regular files. `models.import` of a named pipe or
 * /dev/zero is refused before it is hashed (before: a FIFO hung the engine, /dev/zero was read for ever), nothing
 * registered; `library.add` of one says what it is (before: "is empty (0 bytes)"); the CLI refuses an argument that
 * is not valid UTF-8 instead of reporting "no such file" or writing under another name.
 */
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { runCli } from '../../helpers/cli.js';
import { dispatchEngine } from '../../helpers/dispatch.js';
import { peakRss } from '../../helpers/memory.js';
import { tmpDir } from '../../helpers/tmp.js';

const MEMORY_BOUND = 200 * 1000 * 1000;
const TIME_BOUND_MS = 5000;

let env: ReturnType<typeof dispatchEngine>;
const dir = tmpDir();
const fifo = path.join(dir, 'weights.pth');
const hasFifo = spawnSync('mkfifo', [fifo]).status === 0;
const specials = [...(hasFifo ? [fifo] : []), ...(fs.existsSync('/dev/zero') ? ['/dev/zero'] : [])];

beforeAll(async () => {
  env = dispatchEngine();
  await env.call('project.create', { path: path.join(tmpDir(), 'p') });
});
afterAll(() => env.engine.close());

describe('special files given as paths', () => {
  it.each(specials)('models.import of %s is refused before any read, nothing registered', async (file) => {
    const before = peakRss();
    const t0 = performance.now();
    const err = await env.call('models.import', { path: file }).then(
      () => null,
      (e: unknown) => e as Error & { code?: string },
    );
    expect(performance.now() - t0).toBeLessThan(TIME_BOUND_MS);
    expect(err?.code).toBe('INVALID_MODEL');
    expect(err?.message).toMatch(/is (a named pipe|a device), not a model file/);
    expect(await env.call('models.list', {})).toEqual([]);
    const after = peakRss();
    if (before !== null && after !== null) expect(after - before).toBeLessThan(MEMORY_BOUND);
  });

  it('library.add of a named pipe or a device says what it is, not "empty (0 bytes)", and adds nothing', async () => {
    const job = await env.call('library.add', {
      paths: specials,
      sampling: { policy: 'fps', fps: 1 },
      frameSize: { mode: 'short-side', size: 224 },
    });
    await env.engine.requireProject().runner.idle();
    const items = (await env.call('jobs.items', { id: job.id, limit: 10 })).items;
    expect(items).toHaveLength(specials.length);
    for (const item of items) {
      expect(item.error?.code).toBe('NOT_A_FILE');
      expect(item.error?.message).toMatch(/is (a named pipe \(FIFO\)|a device), not a file/);
      expect(item.error?.message).not.toMatch(/empty/);
    }
    expect((await env.call('library.list', {})).total).toBe(0);
  });

  it('the CLI refuses a path that is not valid UTF-8, saying so', async () => {
    // What Node makes of the bytes 0xff 0xfe in a command-line argument.
    const r = await runCli(['model', 'import', path.join(dir, 'caf\uFFFD.pth')]);
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(
      /has a name that is not valid UTF-8 text; Flaneur cannot open or write it under that name/,
    );
  });
});
