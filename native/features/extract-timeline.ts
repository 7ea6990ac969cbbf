/**
 * Where a `features.extract` job's wall time goes, for benches: with FLANEUR_EXTRACT_TIMELINE=<file> in its
 * environment the job writes there, as JSON, the moments it passed (epoch ms, and this process's CPU ms by then) and
 * per batch how long it waited for the prepared input, ran the model and stored the tokens. Without it nothing is
 * timed or written.
 */
import fs from 'node:fs';

export interface TimelineMark {
  at: string;
  /** Epoch milliseconds (comparable across processes). */
  t: number;
  /** CPU milliseconds of this process (all its threads) since it started. */
  cpu_ms: number;
}

export interface TimelineBatch {
  frames: number;
  wait_ms: number;
  model_ms: number;
  store_ms: number;
}

export interface ExtractTimelineJson {
  marks: TimelineMark[];
  batches: TimelineBatch[];
}

export class ExtractTimeline {
  private readonly marks: TimelineMark[] = [];
  private readonly batches: TimelineBatch[] = [];
  private last = 0;

  private constructor(private readonly file: string | null) {}

  static fromEnv(env: NodeJS.ProcessEnv = process.env): ExtractTimeline {
    return new ExtractTimeline(env.FLANEUR_EXTRACT_TIMELINE || null);
  }

  private now(): number {
    return performance.timeOrigin + performance.now();
  }

  mark(at: string): void {
    if (!this.file) return;
    const c = process.cpuUsage();
    this.last = this.now();
    this.marks.push({ at, t: this.last, cpu_ms: (c.user + c.system) / 1000 });
  }

  /** One batch: `got` when its input arrived (the wait is since the last mark or batch), then the model and the store. */
  batch(frames: number, got: number, modelDone: number): void {
    if (!this.file) return;
    const end = this.now();
    this.batches.push({ frames, wait_ms: got - this.last, model_ms: modelDone - got, store_ms: end - modelDone });
    this.last = end;
  }

  /** A timestamp for `batch` (0 when not timing). */
  stamp(): number {
    return this.file ? this.now() : 0;
  }

  write(): void {
    if (!this.file) return;
    const json: ExtractTimelineJson = { marks: this.marks, batches: this.batches };
    fs.writeFileSync(this.file, JSON.stringify(json));
  }
}
