import path from 'node:path';
import Database from 'better-sqlite3';
import { describe, expect, it } from 'vitest';
import { z } from 'zod';
import { JobRunner } from '../../../native/jobs/runner.js';
import type { JobHandler } from '../../../native/jobs/types.js';
import type { JobRow } from '../../../native/store/jobs-repo.js';
import { Project } from '../../../native/store/project.js';
import { tmpDir } from '../../helpers/tmp.js';

/**
 * Issue 15 item 9: another program holding a write lock on project.sqlite longer than SQLite's busy timeout (5 s)
 * failed the job with INTERNAL "database is locked". Now the job waits, backs off, runs again from its checkpoint,
 * and only when the lock outlasts every retry fails with DATABASE_BUSY saying what to close.
 */
let gate: Promise<void> = Promise.resolve();
const Args = z.object({ n: z.int() });
const gatedJob: JobHandler<z.output<typeof Args>, { next: number }> = {
  kind: 'test.gated',
  args: Args,
  title: () => 'gated',
  async run(ctx) {
    const done = ctx.finishedKeys();
    ctx.phase('counting', { total: ctx.args.n, unit: 'items', done: done.size });
    for (let i = ctx.checkpoint?.next ?? 0; i < ctx.args.n; i++) {
      if (i === 1) await gate; // the test takes the lock here
      ctx.commit([{ key: String(i), status: 'ok' }], { next: i + 1 });
    }
  },
};

function setup(busyRetries: number[]) {
  const project = Project.create(path.join(tmpDir(), 'p'), { appVersion: 'test' });
  // SQLite's busy timeout is 5 s in the app; 400 ms keeps this test short with the same sequence of events.
  project.db.pragma('busy_timeout = 400');
  const events: JobRow[] = [];
  const runner = new JobRunner(project, (row) => events.push(row), { busyRetries });
  runner.register(gatedJob);
  runner.start();
  /** Another program's connection holding the write lock. */
  const other = new Database(path.join(project.dir, 'project.sqlite'));
  return { project, runner, other, events };
}

/**
 * Starts a 3-item gated job, which stops before item 1, and takes the write lock from `other` there; `open` lets the
 * job go on into the lock.
 */
async function lockedAtItem1(runner: JobRunner, other: Database.Database) {
  let open!: () => void;
  gate = new Promise((r) => {
    open = r;
  });
  const job = runner.enqueue('test.gated', { n: 3 });
  await new Promise((r) => setTimeout(r, 50));
  other.exec('BEGIN IMMEDIATE');
  return { job, open };
}

describe('a project database locked by another program', () => {
  it('is waited for: the job retries after the lock is gone and finishes with every item once', async () => {
    const { project, runner, other } = setup([1000, 1000]);
    const { job, open } = await lockedAtItem1(runner, other);
    // Released while the runner waits between tries (SQLite's busy timeout blocks first).
    setTimeout(() => other.exec('COMMIT'), 200);
    open();
    await runner.idle();
    const row = project.jobs.get(job.id);
    expect(row?.state).toBe('done');
    expect(row?.items).toEqual({ ok: 3, failed: 0, skipped: 0 });
    other.close();
    await runner.close();
    project.close();
  }, 20_000);

  it('fails with DATABASE_BUSY and what to do when the lock outlasts the retries', async () => {
    const { project, runner, other, events } = setup([100]);
    const { job, open } = await lockedAtItem1(runner, other);
    open();
    // Two tries, each after SQLite's busy timeout, then the ending: announced at once while the lock is held...
    await runner.idle();
    expect(events.at(-1)).toMatchObject({ id: job.id, state: 'failed', error: { code: 'DATABASE_BUSY' } });
    expect(project.jobs.get(job.id)?.state).toBe('running');
    // ...and written once the other program lets go.
    other.exec('COMMIT');
    await new Promise((r) => setTimeout(r, 2500));
    const row = project.jobs.get(job.id);
    expect(row?.state).toBe('failed');
    expect(row?.error).toMatchObject({
      code: 'DATABASE_BUSY',
      message: expect.stringMatching(/Another program is keeping the project database .* locked\. Close it/),
    });
    expect(row?.items.ok).toBe(1); // the item before the lock is kept; resume goes on from there
    other.close();
    await runner.close();
    project.close();
  }, 20_000);
});
