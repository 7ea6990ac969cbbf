import fs from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  checkFolderDestination,
  prepareFolderDestination,
  writeFileDestination,
} from '../../../native/store/destination.js';
import { type EngineProcess, startEngineProcess } from '../../helpers/engine-process.js';
import { tmpDir } from '../../helpers/tmp.js';

// Issue 15 item 5: destinations under /proc made Node 20's recursive mkdirSync spin at 100 % forever, ignoring
// SIGTERM. A real engine process must refuse them at once and keep answering.
describe.runIf(process.platform === 'linux')('destinations on kernel file systems', () => {
  let engine: EngineProcess;
  beforeAll(async () => {
    engine = await startEngineProcess({ home: tmpDir() });
  }, 60_000);
  afterAll(async () => {
    await engine.stop();
  });

  it.each([
    ['/proc/self/flaneur/project', /proc file system/],
    ['/proc/flaneur', /proc file system/],
    ['/sys/kernel/flaneur', /sysfs file system/],
  ])('project.create at %s is refused with PATH_REFUSED and the engine still answers', async (dir, why) => {
    const r = await engine.raw('project.create', { path: dir });
    expect(r.ok).toBe(false);
    if (!r.ok) {
      expect(r.error.code).toBe('PATH_REFUSED');
      expect(r.error.message).toMatch(why);
      expect(r.error.message).toMatch(/Choose a folder in your home or on a data disk/);
    }
    expect(fs.existsSync(dir)).toBe(false);
    expect((await engine.call('app.info', {})).name).toBe('flaneur');
  });

  it('segment.batch with an output folder under /proc is refused when asked, not later in the job', async () => {
    await engine.call('project.create', { path: path.join(tmpDir(), 'p') });
    const r = await engine.raw('segment.batch', { bankId: 1, outDir: '/proc/self/flaneur' });
    expect(r.ok).toBe(false);
    if (!r.ok) expect(r.error).toMatchObject({ code: 'PATH_REFUSED', field: 'outDir' });
  });
});

describe('folder destinations', () => {
  const dir = tmpDir();

  it('are created with their missing parents when the nearest existing folder is writable', () => {
    const target = path.join(dir, 'a', 'b', 'c');
    expect(prepareFolderDestination(target)).toBe(target);
    expect(fs.statSync(target).isDirectory()).toBe(true);
  });

  it('are refused under a file, naming the file', () => {
    const file = path.join(dir, 'file.txt');
    fs.writeFileSync(file, 'x');
    expect(() => checkFolderDestination(path.join(file, 'sub'))).toThrow(
      /file\.txt is a file, so .* cannot be made inside it/,
    );
    expect(() => checkFolderDestination(file)).toThrow(/is a file, not a folder/);
  });

  it.runIf(process.platform !== 'win32' && process.getuid?.() !== 0)(
    'are refused in a folder that cannot be written',
    () => {
      const ro = path.join(dir, 'ro');
      fs.mkdirSync(ro);
      fs.chmodSync(ro, 0o555);
      expect(() => checkFolderDestination(path.join(ro, 'x'))).toThrow(/cannot be written to/);
    },
  );
});

// Issue 25 (the kind of item 7): a link planted at the temporary name in a folder the user chose is never followed.
describe('writing a file through a temporary name', () => {
  it('removes a link planted at the temporary name instead of writing through it', () => {
    const dir = tmpDir();
    const target = path.join(dir, 'precious.txt');
    fs.writeFileSync(target, 'keep me');
    const file = path.join(dir, 'counts.csv');
    fs.symlinkSync(target, `${file}.${process.pid}.tmp`);
    writeFileDestination(file, 'a,b\n');
    expect(fs.readFileSync(target, 'utf8')).toBe('keep me');
    expect(fs.readFileSync(file, 'utf8')).toBe('a,b\n');
    expect(fs.existsSync(`${file}.${process.pid}.tmp`)).toBe(false);
  });
});
