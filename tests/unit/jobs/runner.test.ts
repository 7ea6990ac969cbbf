import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { z } from 'zod';
import { FlaneurError } from '../../../native/api/errors.js';
import { JobRunner } from '../../../native/jobs/runner.js';
import type { JobHandler } from '../../../native/jobs/types.js';
import type { RuntimeSettings } from '../../../native/runtime/session.js';
import type { JobRow } from '../../../native/store/jobs-repo.js';
import { Project } from '../../../native/store/project.js';
import { tmpDir } from '../../helpers/tmp.js';

/**
 * A counting job: items 0..n-1, item i fails when i is in `fail`, throws at `crashAt`. It yields between items so
 * cancellation and shutdown land mid-run, like real I/O-bound work.
 */
const CountArgs = z.object({ n: z.int(), fail: z.array(z.int()).default([]), crashAt: z.int().optional() });
const processed: number[] = [];
const countJob: JobHandler<z.output<typeof CountArgs>, { next: number }> = {
  kind: 'test.count',
  args: CountArgs,
  title: (a) => `count to ${a.n}`,
  async run(ctx) {
    const done = ctx.finishedKeys();
    ctx.phase('counting', { total: ctx.args.n, unit: 'items', done: done.size });
    for (let i = 0; i < ctx.args.n; i++) {
      if (done.has(String(i))) continue;
      ctx.throwIfAborted();
      await new Promise((r) => setTimeout(r, 1));
      if (i === ctx.args.crashAt) throw new FlaneurError('IO_ERROR', `disk vanished at item ${i}`);
      processed.push(i);
      ctx.commit(
        [
          ctx.args.fail.includes(i)
            ? { key: String(i), status: 'failed', error: { code: 'CORRUPT', message: `item ${i} is corrupt` } }
            : { key: String(i), status: 'ok', result: { square: i * i } },
        ],
        { next: i + 1 },
      );
      ctx.progress(i + 1);
    }
  },
};

function setup(name: string) {
  const project = Project.create(path.join(tmpDir(), name), { appVersion: 'test' });
  const events: JobRow[] = [];
  const runner = new JobRunner(project, (j) => events.push(j), { eventIntervalMs: 0, persistIntervalMs: 0 });
  runner.register(countJob);
  runner.start();
  return { project, runner, events };
}

async function until(pred: () => boolean): Promise<void> {
  while (!pred()) await new Promise((r) => setTimeout(r, 2));
}

describe('job runner', () => {
  it('runs a job to done with rising progress events and per-item results', async () => {
    const { project, runner, events } = setup('done');
    const job = runner.enqueue('test.count', { n: 40, fail: [3, 17] });
    await runner.idle();
    const row = project.jobs.get(job.id);
    expect(row?.state).toBe('done');
    expect(row?.items).toEqual({ ok: 38, failed: 2, skipped: 0 });
    const dones = events.filter((e) => e.id === job.id && e.state === 'running').map((e) => e.progress.done);
    expect(dones.length).toBeGreaterThan(5);
    expect([...dones].sort((a, b) => a - b)).toEqual(dones);
    const failed = project.jobs.items(job.id, { status: 'failed' });
    expect(failed.items.map((i) => i.error?.message)).toEqual(['item 3 is corrupt', 'item 17 is corrupt']);
    expect(events.at(-1)?.state).toBe('done');
  });

  it('cancels a running job and keeps what it finished', async () => {
    const { project, runner } = setup('cancel');
    const job = runner.enqueue('test.count', { n: 100000 });
    await until(() => (project.jobs.get(job.id)?.items.ok ?? 0) >= 10);
    runner.cancel(job.id);
    await runner.idle();
    const row = project.jobs.get(job.id);
    expect(row?.state).toBe('cancelled');
    expect(row?.error?.message).toMatch(/Cancelled/);
    expect(row?.items.ok).toBeGreaterThanOrEqual(10);
    expect(row?.items.ok).toBeLessThan(100000);
  });

  it('cancels a queued job without running it', async () => {
    const { project, runner } = setup('queued');
    const first = runner.enqueue('test.count', { n: 100000 });
    const second = runner.enqueue('test.count', { n: 5 });
    expect(project.jobs.get(second.id)?.state).toBe('queued');
    runner.cancel(second.id);
    runner.cancel(first.id);
    await runner.idle();
    expect(project.jobs.get(second.id)?.state).toBe('cancelled');
    expect(project.jobs.get(second.id)?.items.ok).toBe(0);
  });

  it('records the reason when a job fails', async () => {
    const { project, runner } = setup('fail');
    const job = runner.enqueue('test.count', { n: 10, crashAt: 4 });
    await runner.idle();
    const row = project.jobs.get(job.id);
    expect(row?.state).toBe('failed');
    expect(row?.error).toMatchObject({ code: 'IO_ERROR', message: 'disk vanished at item 4' });
    expect(row?.items.ok).toBe(4);
  });

  it('leaves a job interrupted at shutdown and resumes it without redoing finished items', async () => {
    const { project, runner } = setup('resume');
    const job = runner.enqueue('test.count', { n: 300 });
    await until(() => (project.jobs.get(job.id)?.items.ok ?? 0) >= 50);
    await runner.close();
    const stopped = project.jobs.get(job.id);
    expect(stopped?.state).toBe('interrupted');
    const before = stopped?.items.ok ?? 0;

    processed.length = 0;
    const next = new JobRunner(project, () => {}, { eventIntervalMs: 0 });
    next.register(countJob);
    next.start();
    await next.idle();
    const row = project.jobs.get(job.id);
    expect(row?.state).toBe('done');
    expect(row?.attempt).toBe(2);
    expect(row?.items.ok).toBe(300);
    expect(processed.length).toBe(300 - before);
    expect(Math.min(...processed)).toBe(before);
    const attempts = project.jobs.items(job.id, { limit: 1000 }).items.map((i) => i.attempt);
    expect(attempts.filter((a) => a === 1).length).toBe(before);
  });

  it('marks jobs a crashed process left running as interrupted on start', () => {
    const { project, runner } = setup('crashed');
    void runner.close();
    const row = project.jobs.insert({
      kind: 'test.count',
      title: 't',
      args: { n: 1 },
      progress: { phase: 'x', done: 0, total: null, unit: 'items', rate: null, etaS: null },
    });
    project.jobs.setState(row.id, 'running');
    const fresh = new JobRunner(project, () => {}, { autoResume: false });
    fresh.register(countJob);
    fresh.start();
    expect(project.jobs.get(row.id)?.state).toBe('interrupted');
  });

  it('refuses to resume a finished job', async () => {
    const { runner } = setup('refuse');
    const job = runner.enqueue('test.count', { n: 2 });
    await runner.idle();
    expect(() => runner.resume(job.id)).toThrow(/only interrupted, failed or cancelled/);
  });

  it('lets a second process cancel a job running in the owner', async () => {
    const { project, runner } = setup('observer');
    const job = runner.enqueue('test.count', { n: 100000 });
    await until(() => (project.jobs.get(job.id)?.items.ok ?? 0) >= 5);
    const observer = new JobRunner(project, () => {}, { observer: { ownerPid: 1 } });
    expect(observer.cancel(job.id).state).toBe('running');
    expect(() => observer.enqueue('test.count', { n: 1 })).toThrow(/Another Flaneur process/);
    await runner.idle();
    expect(project.jobs.get(job.id)?.state).toBe('cancelled');
  });
});

describe('job runtime settings', () => {
  it('gives each job the runtime settings as they are when it starts', async () => {
    const project = Project.create(path.join(tmpDir(), 'runtime'), { appVersion: 'test' });
    const seen: RuntimeSettings[] = [];
    let settings = { provider: 'auto' as const, threads: null as number | null };
    const runner = new JobRunner(project, () => {}, { runtime: () => settings });
    runner.register({
      kind: 'test.runtime',
      args: z.object({}),
      title: () => 'runtime',
      async run(ctx) {
        seen.push(ctx.runtime);
      },
    } satisfies JobHandler<Record<string, never>, null>);
    runner.start();
    runner.enqueue('test.runtime', {});
    await runner.idle();
    settings = { provider: 'auto', threads: 1 };
    runner.enqueue('test.runtime', {});
    await runner.idle();
    expect(seen.map(({ provider, threads }) => ({ provider, threads }))).toEqual([
      { provider: 'auto', threads: null },
      { provider: 'auto', threads: 1 },
    ]);
    // With the runner's listener for a GPU lost mid-job (recorded in the job).
    for (const r of seen) expect(r.onGpuFailure).toBeTypeOf('function');
    project.close();
  });
});
