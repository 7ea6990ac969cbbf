/**
 * Jobs run in worker processes: a worker killed with SIGKILL mid-job takes only its job with it. The engine keeps
 * answering, queues the job again with the reason, and a new worker resumes it from its checkpoint with the same
 * results as an uninterrupted run (as tests/unit/engine/kill-resume.test.ts does for a killed engine).
 */
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import type { CommandArgs } from '../../../native/api/contract.js';
import { Project } from '../../../native/store/project.js';
import { dispatchEngine } from '../../helpers/dispatch.js';
import { type EngineProcess, jobWorkerPids, startEngineProcess, waitFor } from '../../helpers/engine-process.js';
import { fixturePath } from '../../helpers/fixtures.js';
import { makeVideo } from '../../helpers/media.js';
import { writeInitViT } from '../../helpers/models.js';
import { tmpDir, writeFiles } from '../../helpers/tmp.js';
import { TINY_TRAIN } from '../../helpers/train.js';

describe('a job whose worker process is killed', () => {
  const home = tmpDir();
  const work = tmpDir();
  const engines: EngineProcess[] = [];
  afterAll(async () => {
    for (const e of engines) await e.stop('SIGKILL');
  });

  /** Kills the engine's one job worker; the engine answers right after and the job is queued or running again. */
  async function killWorker(engine: EngineProcess, jobId: number): Promise<void> {
    const [pid, ...others] = jobWorkerPids(engine.pid);
    expect(pid).toBeDefined();
    expect(others).toEqual([]);
    process.kill(pid as number, 'SIGKILL');
    const requeued = await waitFor(async () => {
      const j = await engine.call('jobs.get', { id: jobId });
      return j.attempt === 2 || j.state === 'queued' ? j : null;
    });
    expect(['queued', 'running']).toContain(requeued.state);
    // The engine process lives on and answers.
    expect(engine.child.exitCode).toBeNull();
    expect((await engine.call('app.info', {})).version).toBeTruthy();
  }

  /** Waits for the job to end: done, by the run that resumed it after the kill. */
  async function expectDoneOnSecondAttempt(engine: EngineProcess, jobId: number, timeoutMs: number): Promise<void> {
    const done = await waitFor(async () => {
      const j = await engine.call('jobs.get', { id: jobId });
      return j.state === 'done' || j.state === 'failed' ? j : null;
    }, timeoutMs);
    expect(done.error?.message ?? done.state).toBe('done');
    expect(done.attempt).toBe(2);
  }

  it('mid-extraction: the engine keeps serving and the job resumes from the stored frames with identical features', async () => {
    const video = makeVideo(path.join(work, 'walk.mp4'), { seconds: 40, fps: 10, width: 160, height: 120 });
    const vit = writeInitViT(path.join(work, 'vit.safetensors'));
    const add: CommandArgs<'library.add'> = {
      paths: [video],
      sampling: { policy: 'fps', fps: 10 },
      frameSize: { mode: 'short-side', size: 64 },
    };
    const extract = { size: 64, batch: 2 };

    // The uninterrupted run.
    const ref = dispatchEngine();
    await ref.call('project.create', { path: path.join(work, 'ref') });
    await ref.call('library.add', add);
    await ref.engine.requireProject().runner.idle();
    const refModel = await ref.call('models.import', { path: vit });
    await ref.call('features.extract', { modelId: refModel.id, ...extract });
    await ref.engine.requireProject().runner.idle();
    await ref.engine.close();

    const dir = path.join(work, 'killed');
    const engine = await startEngineProcess({ home });
    engines.push(engine);
    await engine.call('project.create', { path: dir });
    await engine.call('library.add', add);
    await waitFor(async () => (await engine.call('library.list', {})).items[0]?.status === 'done', 60_000);
    const model = await engine.call('models.import', { path: vit });
    const job = await engine.call('features.extract', { modelId: model.id, ...extract });
    // Mid-job on a machine of any speed (the whole job can take less than a second, less than the job's progress
    // takes to be saved): the worker runs in slices of 20 ms, stopped (SIGSTOP) between them while the stored
    // frames are counted, until at least 40 are; then it is killed, stopped.
    const pid = await waitFor(async () => jobWorkerPids(engine.pid)[0]);
    const stored = async () => (await engine.call('features.runs', {}))[0];
    process.kill(pid, 'SIGSTOP');
    const seen = await waitFor(async () => {
      const run = await stored();
      if (run && run.frames >= 40) return run;
      process.kill(pid, 'SIGCONT');
      await new Promise((r) => setTimeout(r, 20));
      process.kill(pid, 'SIGSTOP');
      return null;
    }, 120_000);
    const total = seen.libraryFrames;
    expect(seen.frames).toBeLessThan(total);
    await killWorker(engine, job.id);

    await expectDoneOnSecondAttempt(engine, job.id, 120_000);
    await engine.stop();

    const a = Project.open(path.join(work, 'ref'));
    const b = Project.open(dir);
    try {
      const run = b.features.runs()[0];
      const refRun = a.features.runs()[0];
      expect(run && refRun).toBeTruthy();
      expect(b.features.count(run?.id as number)).toBe(total);
      expect(a.features.count(refRun?.id as number)).toBe(total);
      for (let f = 0; f < total; f++) {
        const x = a.features.get(refRun?.id as number, 1, f);
        const y = b.features.get(run?.id as number, 1, f);
        expect(x && y).toBeTruthy();
        expect(y?.cls).toEqual(x?.cls);
        expect(y?.patches).toEqual(x?.patches);
      }
    } finally {
      a.close();
      b.close();
    }
  }, 300_000);

  it('mid-training: the engine keeps serving and the job resumes from its checkpoint with an identical loss curve', async () => {
    const args = { ...TINY_TRAIN, steps: 30, checkpointEvery: 5 };
    const frames: CommandArgs<'library.add'> = {
      paths: [fixturePath('synthetic', 'tour.mp4')],
      sampling: { policy: 'fps', fps: 2 },
      frameSize: { mode: 'short-side', size: 48 },
    };
    const ref = dispatchEngine();
    await ref.call('project.create', { path: path.join(work, 'train-ref') });
    await ref.call('library.add', frames);
    await ref.engine.requireProject().runner.idle();
    const refJob = await ref.call('train.start', args);
    await ref.engine.requireProject().runner.idle();
    const reference = (await ref.call('train.log', { jobId: refJob.id })).map((r) => r.loss);
    await ref.engine.close();
    expect(reference).toHaveLength(30);

    const engine = await startEngineProcess({ home });
    engines.push(engine);
    await engine.call('project.create', { path: path.join(work, 'train-killed') });
    await engine.call('library.add', frames);
    await waitFor(async () => (await engine.call('library.list', {})).items[0]?.status === 'done', 60_000);
    const job = await engine.call('train.start', args);
    await waitFor(async () => (await engine.call('train.log', { jobId: job.id })).length >= 12, 120_000);
    await killWorker(engine, job.id);
    const queuedError = (await engine.call('jobs.get', { id: job.id })).error;

    await expectDoneOnSecondAttempt(engine, job.id, 180_000);
    // While it waited to run again, the job said why (unless the new worker had already taken it).
    if (queuedError) expect(queuedError.message).toMatch(/worker process was killed by SIGKILL.*queued again/);
    const log = await engine.call('train.log', { jobId: job.id });
    expect(log.map((r) => r.step)).toEqual(Array.from({ length: 30 }, (_, i) => i + 1));
    expect(log.map((r) => r.loss)).toEqual(reference);
    await engine.stop();
  }, 300_000);

  it('over its memory bound: the job fails with the figures, the engine answers and runs the next job', async () => {
    // A bound no Node process stays under: the first report stops the worker.
    const { engine, call } = dispatchEngine({ jobWorkers: { memoryLimitMiB: 40 } });
    await call('project.create', { path: path.join(work, 'oom') });
    const data = path.join(work, 'oom-data');
    writeFiles(data, 20, 1024);
    const first = await call('ingest.hashFolder', { root: data });
    const second = await call('ingest.hashFolder', { root: data });
    await engine.requireProject().runner.idle();
    for (const id of [first.id, second.id]) {
      const j = await call('jobs.get', { id });
      expect(j.state).toBe('failed');
      expect(j.attempt).toBe(1);
      expect(j.error?.message).toMatch(
        /^The job was stopped: it used \d+ MiB of memory, over the 40 MiB a job may use\.$/,
      );
    }
    expect((await call('jobs.list', {})).length).toBe(2);
    await engine.close();
  }, 120_000);
});
