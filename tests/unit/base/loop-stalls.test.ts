/**
 * The engine's record of its event loop's stalls (native/base/loop-stalls.ts), which the responsiveness bench reads:
 * a stall is found, measured, and attributed to what the loop had begun (the activity marks) and to the function
 * the profiler sampled in it; a flush reports a window and starts the next one afresh.
 */
import fs from 'node:fs';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { type LoopReport, loopActivity, startLoopStalls } from '../../../native/base/loop-stalls.js';
import { tmpDir } from '../../helpers/tmp.js';

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** Holds the loop for `ms` of wall time (the work a stall is made of). */
function spinTheLoopFor(ms: number): number {
  const end = performance.now() + ms;
  let x = 0;
  while (performance.now() < end) x += Math.sqrt(x + 1);
  return x;
}

describe('the event-loop stall recorder', () => {
  const file = path.join(tmpDir(), 'stalls.jsonl');
  const recorder = startLoopStalls({ file, flushOnSignal: false });
  afterAll(() => recorder.stop());

  it('records a stall with its length, the activity that began it, the main thread CPU and the function sampled', async () => {
    recorder.flush();
    await sleep(50);
    loopActivity('call test.block');
    spinTheLoopFor(150);
    await sleep(50);
    const report = recorder.flush();

    const stall = report.longest[0];
    expect(stall).toBeDefined();
    expect(stall?.ms).toBeGreaterThanOrEqual(140);
    expect(report.stalls.maxMs).toBe(stall?.ms);
    expect(report.stalls.count).toBeGreaterThanOrEqual(1);
    expect(report.delay.max).toBeGreaterThanOrEqual(140);
    expect([stall?.before, ...(stall?.during ?? [])]).toContain('call test.block');
    if (fs.existsSync('/proc/thread-self/schedstat')) {
      // Run plus wait covers the stall (the rest: asleep, which a spinning thread is not).
      expect((stall?.cpuMs ?? 0) + (stall?.waitMs ?? 0)).toBeGreaterThan(0.8 * (stall?.ms ?? 0));
    }
    expect(stall?.self?.map((f) => f.frame).join('\n')).toMatch(/spinTheLoopFor .*loop-stalls\.test\.ts/);
    // Spinning is running (or, on a machine busier than its cores, waiting for one): never a sleep.
    expect(['run', 'wait', 'unknown']).toContain(stall?.cause);
    if (stall?.cause === 'run') expect(report.longestOwn[0]).toEqual(stall);
  });

  it("counts a synchronous wait (a lock, the disk) as the process's own stall, slept through", async () => {
    recorder.flush();
    await sleep(50);
    loopActivity('call test.lock');
    Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, 150);
    await sleep(50);
    const report = recorder.flush();
    const stall = report.longest[0];
    expect(stall?.ms).toBeGreaterThanOrEqual(140);
    if (!fs.existsSync('/proc/thread-self/schedstat')) return;
    expect(stall?.cause).toBe('sleep');
    expect(report.stalls.ownMaxMs).toBe(stall?.ms);
    expect(report.longestOwn[0]?.during).toContain('call test.lock');
  });

  it('starts each window afresh: a quiet window after a stall reports none, and each flush is one JSON line', async () => {
    await sleep(100);
    const quiet = recorder.flush();
    expect(quiet.longest.filter((s) => s.ms >= 140)).toEqual([]);
    const lines = fs
      .readFileSync(file, 'utf8')
      .trim()
      .split('\n')
      .map((l) => JSON.parse(l) as LoopReport);
    expect(lines.map((l) => l.seq)).toEqual([1, 2, 3, 4, 5]);
    expect(lines[4]?.from).toBe(lines[3]?.to);
  });
});
