/**
 * Rate and ETA from progress samples: a sliding window of (time, done) pairs, so a stall shows as a falling rate
 * instead of an average over the whole run.
 */
export class RateMeter {
  private samples: { t: number; done: number }[] = [];

  constructor(
    private readonly windowMs = 5000,
    private readonly now: () => number = () => performance.now(),
  ) {}

  reset(): void {
    this.samples = [];
  }

  add(done: number): void {
    const t = this.now();
    this.samples.push({ t, done });
    const cutoff = t - this.windowMs;
    while (this.samples.length > 2 && (this.samples[0]?.t ?? t) < cutoff) this.samples.shift();
  }

  /** Units per second, null until two samples at least 200 ms apart exist. */
  rate(): number | null {
    const first = this.samples[0];
    const last = this.samples[this.samples.length - 1];
    if (!first || !last || last.t - first.t < 200) return null;
    return Math.max(0, (last.done - first.done) / ((last.t - first.t) / 1000));
  }

  eta(done: number, total: number | null): number | null {
    const rate = this.rate();
    if (total === null || rate === null || rate <= 0) return null;
    return Math.max(0, (total - done) / rate);
  }
}
