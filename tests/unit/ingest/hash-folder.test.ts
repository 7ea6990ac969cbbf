import { createHash } from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { hashFolderJob } from '../../../native/ingest/hash-folder.js';
import { walkFiles } from '../../../native/ingest/walk.js';
import { JobRunner } from '../../../native/jobs/runner.js';
import { Project } from '../../../native/store/project.js';
import { tmpDir } from '../../helpers/tmp.js';

function makeTree(root: string) {
  fs.mkdirSync(path.join(root, 'a', 'deep'), { recursive: true });
  fs.writeFileSync(path.join(root, 'a', 'one.txt'), 'one');
  fs.writeFileSync(path.join(root, 'a', 'deep', 'two.txt'), 'two');
  fs.writeFileSync(path.join(root, 'héllo wörld ✓.txt'), 'unicode');
  fs.symlinkSync(path.join(root, 'a'), path.join(root, 'a', 'deep', 'loop')); // back up the tree
  fs.symlinkSync('/etc', path.join(root, 'escape')); // leaves the folder
  fs.symlinkSync(path.join(root, 'missing-target'), path.join(root, 'dangling'));
  fs.symlinkSync(path.join(root, 'a', 'one.txt'), path.join(root, 'alias.txt')); // inside: followed
}

describe('walkFiles', () => {
  it('lists files in a stable order, follows links inside the root, and refuses loops and escapes with reasons', async () => {
    const root = tmpDir();
    makeTree(root);
    const entries = [];
    for await (const e of walkFiles(root)) entries.push(e);
    const files = entries.filter((e) => e.kind === 'file').map((e) => e.rel);
    // A folder's files come before its sub-folders, each in name order.
    expect(files).toEqual(['alias.txt', 'héllo wörld ✓.txt', 'a/one.txt', 'a/deep/two.txt']);
    const refused = Object.fromEntries(entries.filter((e) => e.kind === 'refused').map((e) => [e.rel, e.code]));
    expect(refused).toEqual({ 'a/deep/loop': 'SYMLINK_LOOP', escape: 'OUTSIDE_ROOT', dangling: 'NOT_FOUND' });
  });

  it('stays in the top folder when not recursive', async () => {
    const root = tmpDir();
    makeTree(root);
    const files = [];
    for await (const e of walkFiles(root, { recursive: false })) if (e.kind === 'file') files.push(e.rel);
    expect(files).toEqual(['alias.txt', 'héllo wörld ✓.txt']);
  });
});

describe('hash folder job', () => {
  it('hashes every file, records refused entries as skipped with their reason', async () => {
    const root = tmpDir();
    makeTree(root);
    const project = Project.create(path.join(tmpDir(), 'p'), { appVersion: 'test' });
    const runner = new JobRunner(project, () => {});
    runner.register(hashFolderJob);
    runner.start();
    const job = runner.enqueue('ingest.hashFolder', { root, algorithm: 'sha256' });
    await runner.idle();
    const row = project.jobs.get(job.id);
    expect(row?.state).toBe('done');
    expect(row?.items).toEqual({ ok: 4, failed: 0, skipped: 3 });
    const items = project.jobs.items(job.id, { limit: 100 }).items;
    const byKey = Object.fromEntries(items.map((i) => [i.key, i]));
    expect(byKey['a/one.txt']?.result).toEqual({
      size: 3,
      algorithm: 'sha256',
      digest: createHash('sha256').update('one').digest('hex'),
    });
    expect(byKey.escape?.error?.code).toBe('OUTSIDE_ROOT');
    expect(byKey['a/deep/loop']?.error?.message).toMatch(/loops back/);
    project.close();
  });

  it('fails with a clear reason when the folder does not exist', async () => {
    const project = Project.create(path.join(tmpDir(), 'p'), { appVersion: 'test' });
    const runner = new JobRunner(project, () => {});
    runner.register(hashFolderJob);
    const job = runner.enqueue('ingest.hashFolder', { root: '/no/such/folder' });
    await runner.idle();
    expect(project.jobs.get(job.id)?.error).toMatchObject({ code: 'NOT_FOUND', field: 'root' });
    project.close();
  });
});
