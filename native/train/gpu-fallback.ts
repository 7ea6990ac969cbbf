/**
 * The provider a training run really uses, in its phase, and the switch to the CPU when its GPU fails mid-run
 * (device lost, out of memory): the run goes on on the CPU from its last checkpoint, with the reason in the phase, in
 * a `device-fallback` job item and (via `fallback`) in the exported model's metadata. Used by the one trainer
 * (trainer.ts), which gives how to reopen its sessions on the CPU and resume from the last checkpoint.
 */
import { FlaneurError } from '../api/errors.js';
import type { JobContext } from '../jobs/types.js';

/**
 * Whether a training error is the GPU's (device lost, out of memory, a buffer over its limit), to be left for the CPU,
 * rather than the file system's or the database's (full disk, permission), a typed refusal, or a programming error.
 */
export function isDeviceFailure(err: unknown): boolean {
  if (err instanceof TypeError || err instanceof RangeError || err instanceof ReferenceError) return false;
  if (err instanceof FlaneurError) return err.code === 'INTERNAL';
  // Node's system errors (ENOSPC, EACCES, …) and SQLite's (SQLITE_FULL, …) carry a code; ONNX Runtime's do not.
  return typeof (err as { code?: unknown } | null)?.code !== 'string';
}

export interface GpuFallback {
  from: string;
  step: number;
  reason: string;
}

interface Run {
  /** The provider the step runs on now. */
  provider(): string;
  /** Steps done. */
  step(): number;
  /** The last checkpoint written (the job's), null before the first. */
  last(): { file: string; step: number } | null;
  /** Closes the GPU sessions, opens them on the CPU and reloads the state of the last checkpoint (or the start). */
  resumeOnCpu(): Promise<void>;
}

export class TrainingDevice {
  fallback: GpuFallback | null = null;

  constructor(
    private readonly ctx: Pick<JobContext<unknown, { file: string; step: number }>, 'phase' | 'commit' | 'signal'>,
    private readonly total: number,
    private readonly run: Run,
  ) {}

  /** 'training on webgpu', or 'training on cpu (webgpu failed at step 3: …)'. */
  showPhase(): void {
    const f = this.fallback;
    this.ctx.phase(
      `training on ${this.run.provider()}${f ? ` (${f.from} failed at step ${f.step}: ${f.reason})` : ''}`,
      { unit: 'steps', total: this.total, done: this.run.step() },
    );
  }

  /**
   * A step failed: rethrows on the CPU, when cancelled, or when the failure is not the device's (`isDeviceFailure`:
   * a full disk, a permission, a bug end the job with their reason); otherwise goes on on the CPU from the last
   * checkpoint.
   */
  async onFailure(err: unknown): Promise<void> {
    const from = this.run.provider();
    if (this.ctx.signal.aborted || from === 'cpu' || !isDeviceFailure(err)) throw err;
    const message = err instanceof Error ? err.message : String(err);
    this.fallback = { from, step: this.run.step() + 1, reason: (message.split('\n')[0] ?? message).slice(0, 300) };
    await this.run.resumeOnCpu();
    const last = this.run.last();
    this.ctx.commit(
      [{ key: 'device-fallback', status: 'ok', result: { ...this.fallback, to: 'cpu', resumedAt: this.run.step() } }],
      last ?? { file: '', step: 0 },
    );
    this.showPhase();
  }
}
