/** Per-step training metrics, one row per (job, step). A resumed run rewrites the steps after its checkpoint. */
import type { Db } from './db.js';

export interface TrainLogRow {
  step: number;
  loss: number;
  lr: number;
  wd: number;
  ema: number;
  gradNorm: number;
  teacherEntropy: number;
  imgsPerS: number;
  /** The validation loss where the step validated, else null (absent when written). */
  valLoss?: number | null;
}

export class TrainLogRepository {
  constructor(private readonly db: Db) {}

  add(jobId: number, r: TrainLogRow): void {
    this.db
      .prepare(
        `INSERT OR REPLACE INTO train_log (job_id, step, loss, lr, wd, ema, grad_norm, teacher_entropy, imgs_per_s, val_loss, at)
         VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
      )
      .run(
        jobId,
        r.step,
        r.loss,
        r.lr,
        r.wd,
        r.ema,
        r.gradNorm,
        r.teacherEntropy,
        r.imgsPerS,
        r.valLoss ?? null,
        new Date().toISOString(),
      );
  }

  /** Forgets steps after `step` (they are recomputed from the checkpoint). */
  truncateAfter(jobId: number, step: number): void {
    this.db.prepare(`DELETE FROM train_log WHERE job_id = ? AND step > ?`).run(jobId, step);
  }

  list(jobId: number): TrainLogRow[] {
    return this.db
      .prepare(
        `SELECT step, loss, lr, wd, ema, grad_norm AS gradNorm, teacher_entropy AS teacherEntropy, imgs_per_s AS imgsPerS,
           val_loss AS valLoss
         FROM train_log WHERE job_id = ? ORDER BY step`,
      )
      .all(jobId) as TrainLogRow[];
  }
}
