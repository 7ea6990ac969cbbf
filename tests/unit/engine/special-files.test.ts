/**
 * Issue 25 items 2 and 7: paths a user gives that are not regular files. `models.import` of a named pipe or
 * /dev/zero is refused before it is hashed (before: a FIFO hung the engine, /dev/zero was read for ever), nothing
 * registered; `library.add` of one says what it is (before: "is empty (0 bytes)"); the CLI refuses an argument that
 * is not valid UTF-8 instead of reporting "no such file" or writing under another name; an image path that is a
 * pipe or a device is refused before ffprobe opens it.
 */
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import zlib from 'node:zlib';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { runCli } from '../../helpers/cli.js';
import { dispatchEngine } from '../../helpers/dispatch.js';
import { peakRss } from '../../helpers/memory.js';
import { writeInitViT } from '../../helpers/models.js';
import { bytes, OP, writePth, writeZip } from '../../helpers/pth.js';
import { tmpDir } from '../../helpers/tmp.js';

const MEMORY_BOUND = 200 * 1000 * 1000;
/**
 * A refusal reads nothing, so it takes no longer than any small call: the bound is wide because the first heavy
 * command starts the engine's task worker (a Node process), which a loaded machine can take seconds to do. Reading a
 * FIFO would block forever and /dev/zero would grow memory past MEMORY_BOUND within this time.
 */
const TIME_BOUND_MS = 30_000;

let env: ReturnType<typeof dispatchEngine>;
const dir = tmpDir();
const fifo = path.join(dir, 'weights.pth');
const hasFifo = spawnSync('mkfifo', [fifo]).status === 0;
const specials = [...(hasFifo ? [fifo] : []), ...(fs.existsSync('/dev/zero') ? ['/dev/zero'] : [])];

/** The typed error a call fails with (null if it succeeds). */
function failure(call: Promise<unknown>): Promise<(Error & { code?: string }) | null> {
  return call.then(
    () => null,
    (e: unknown) => e as Error & { code?: string },
  );
}

beforeAll(async () => {
  env = dispatchEngine();
  await env.call('project.create', { path: path.join(tmpDir(), 'p') });
});
afterAll(() => env.engine.close());

describe('special files given as paths', () => {
  it.each(specials)('models.import of %s is refused before any read, nothing registered', async (file) => {
    const before = peakRss();
    const t0 = performance.now();
    const err = await failure(env.call('models.import', { path: file }));
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

  it.each(specials)('models.embed of the image %s says what it is instead of hanging in ffprobe', async (file) => {
    const model = await env.call('models.import', { path: writeInitViT(path.join(tmpDir(), 'vit.safetensors')) });
    const err = await failure(env.call('models.embed', { id: model.id, paths: [file] }));
    expect(err?.code).toBe('UNREADABLE_MEDIA');
    expect(err?.message).toMatch(/it is (a named pipe|a device), not an image file/);
    await env.call('models.remove', { id: model.id });
  });

  it('a config.json beside a model linked to /etc/passwd is refused without quoting it', async () => {
    const folder = tmpDir();
    const model = writeInitViT(path.join(folder, 'model.safetensors'));
    fs.symlinkSync('/etc/passwd', path.join(folder, 'config.json'));
    const err = await failure(env.call('models.import', { path: model }));
    expect(err?.code).toBe('INVALID_MODEL');
    expect(err?.message).toMatch(/The config\.json beside model\.safetensors is not valid JSON/);
    expect(err?.message).not.toMatch(/root|Unexpected token/);
    expect(await env.call('models.list', {})).toEqual([]);
  });

  it('models.import of pickle and zip bombs is refused quickly and registers and stores nothing', async () => {
    const long = Buffer.alloc(4);
    long.writeUInt32LE(2_000_000);
    const bombs = [
      writePth(
        path.join(tmpDir(), 'long4.pth'),
        bytes(OP.PROTO, 2, OP.LONG4, long, Buffer.alloc(2_000_000, 0x7f), OP.STOP),
      ),
      // data.pkl deflated: 64 MB of zeros declared as 100 bytes.
      writeZip(path.join(tmpDir(), 'deflate.pth'), [
        {
          name: 'archive/data.pkl',
          data: zlib.deflateRawSync(Buffer.alloc(64 << 20)),
          rawDeflated: true,
          declaredSize: 100,
        },
      ]),
    ];
    const modelsDir = path.join(env.engine.requireProject().project.dir, 'models');
    const stored = () =>
      fs.existsSync(modelsDir) ? fs.readdirSync(modelsDir).filter((f) => f.endsWith('.safetensors')) : [];
    const before = stored();
    for (const file of bombs) {
      const t0 = performance.now();
      const err = await failure(env.call('models.import', { path: file }));
      expect(performance.now() - t0).toBeLessThan(TIME_BOUND_MS);
      expect(err?.code).toBe('INVALID_MODEL');
      expect(err?.message).toMatch(/holds an integer of 2000000 bytes|inflates to more than its declared 100 bytes/);
    }
    expect(await env.call('models.list', {})).toEqual([]);
    expect(stored()).toEqual(before);
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
