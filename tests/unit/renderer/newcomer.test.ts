/**
 * How the UI words job outcomes, waits and errors (issue 14): failed and partial jobs never read "done", a queued job
 * names what it waits for, and the raw strings users met become sentences.
 */
import { describe, expect, it } from 'vitest';
import type { JobInfo } from '../../../native/api/contract.js';
import { explainError, explainProvider } from '../../../renderer/src/shell/errors.js';
import { frameLabel, plural } from '../../../renderer/src/shell/format.js';
import { jobOutcome, waitReason } from '../../../renderer/src/shell/job-outcome.js';

function job(over: Partial<JobInfo> & { id: number }): JobInfo {
  return {
    kind: 'ingest.media',
    title: `job ${over.id}`,
    state: 'done',
    attempt: 1,
    createdAt: '',
    startedAt: null,
    finishedAt: null,
    progress: { phase: 'done', done: 0, total: 1, unit: 'steps', rate: null, etaS: null, detail: null },
    items: { ok: 1, failed: 0, skipped: 0 },
    error: null,
    ...over,
  } as JobInfo;
}

describe('job outcomes and waits', () => {
  it('gives a finished job with failed items a failed or partial badge, never done', () => {
    expect(jobOutcome(job({ id: 1, items: { ok: 0, failed: 1, skipped: 0 } }))).toMatchObject({
      label: 'failed',
      tone: 'failed',
    });
    const partial = jobOutcome(job({ id: 2, items: { ok: 3, failed: 1, skipped: 0 } }));
    expect(partial).toMatchObject({ label: 'partly failed', tone: 'partial' });
    expect(partial.summary).toBe('1 item of 4 failed; the rest succeeded. The reasons are listed with the job.');
    expect(jobOutcome(job({ id: 3 }))).toMatchObject({ label: 'done', tone: 'done', summary: null });
  });

  it('says which job a queued job waits for', () => {
    const fungi = job({ id: 7, kind: 'features.fungi', title: 'FUNGI features', state: 'running' });
    const queued = job({ id: 8, state: 'queued' });
    expect(waitReason(queued, [queued, fungi])).toBe(
      'waiting for job #7 (FUNGI features) to finish: jobs run one at a time',
    );
    expect(waitReason(queued, [queued, job({ id: 6, state: 'queued' })])).toBe('waiting: 1 job ahead in the queue');
    expect(waitReason(fungi, [fungi])).toBeNull();
  });
});

describe('sentences for raw strings', () => {
  it('turns the Build bank validation error into what to do', () => {
    const e = explainError({
      code: 'INVALID_ARGUMENT',
      message: 'segment.createBank: invalid "examples": Too small: expected array to have >=1 items',
      field: 'examples',
    });
    expect(e.message).toBe(
      'No example was given. Add at least one example: choose a frame and give or draw its mask, then build the bank.',
    );
    expect(e.details).toContain('Too small');
  });

  it("keeps ONNX Runtime's text for the provider table out of the sentence", () => {
    expect(
      explainProvider('cuda', 'OrtSessionOptionsAppendExecutionProvider_Cuda: Failed to load shared library'),
    ).toMatch(/^Not installed: the CUDA provider is a separate download/);
    expect(explainProvider('dml', 'no available backend found. ERR: [dml] backend not found.')).toBe(
      'DirectML runs only on Windows.',
    );
    expect(explainProvider('cpu', 'failed at onnxruntime/core/session/inference_session.cc:123 something')).toBe(
      'failed at something',
    );
    const internal = explainError({ code: 'INTERNAL', message: 'onnxruntime::OrtException at session.cc:42' });
    expect(internal.message).toMatch(/^The model could not be run on this device\./);
  });

  it('explains an absurd header length instead of showing the byte count', () => {
    const e = explainError({ code: 'INVALID_MODEL', message: 'bad.pth: header says 2338328219631577000 bytes' });
    expect(e.message).not.toMatch(/\d{7,}/);
    expect(e.message).toMatch(/not a valid model file/);
  });
});

describe('words and numbers', () => {
  it('writes plurals and frame numbers from 1', () => {
    expect(plural(1, 'video')).toBe('1 video');
    expect(plural(2, 'video')).toBe('2 videos');
    expect(plural(1, 'patch', 'patches')).toBe('1 patch');
    expect(frameLabel(0, 80)).toBe('frame 1 of 80');
    expect(frameLabel(39)).toBe('frame 40');
  });
});
