/**
 * When to restart an engine that died, and when to tell the user. Each death in a row doubles the wait (0.5 s, 1 s,
 * 2 s … up to 30 s) instead of restarting every 500 ms forever; after a few deaths in a row the user is told, once
 * per streak, with the last exit code. An engine that ran for a minute before dying starts a new streak. Pure (no
 * Electron), so it is tested without the runtime.
 */
export interface RestartOptions {
  baseMs: number;
  maxMs: number;
  /** Deaths in a row after which the user is told. */
  tellAfter: number;
  /** An engine that lived this long before dying was healthy: the count starts again. */
  healthyMs: number;
}

export const DEFAULT_RESTART: RestartOptions = { baseMs: 500, maxMs: 30_000, tellAfter: 3, healthyMs: 60_000 };

export interface RestartDecision {
  /** Wait this long, then start the engine again. */
  delayMs: number;
  /** Deaths in a row, this one included. */
  failures: number;
  /** Show the user a message now (once per streak). */
  tell: boolean;
}

export class RestartPolicy {
  private failures = 0;
  private told = false;

  constructor(private readonly options: RestartOptions = DEFAULT_RESTART) {}

  /** The engine died after running `ranMs`. */
  onExit(ranMs: number): RestartDecision {
    if (ranMs >= this.options.healthyMs) {
      this.failures = 0;
      this.told = false;
    }
    this.failures++;
    const delayMs = Math.min(this.options.maxMs, this.options.baseMs * 2 ** (this.failures - 1));
    const tell = this.failures >= this.options.tellAfter && !this.told;
    if (tell) this.told = true;
    return { delayMs, failures: this.failures, tell };
  }

  /** The sentence the user is shown. */
  message(failures: number, exitCode: number | null, nextMs: number): string {
    return `The Flaneur engine stopped unexpectedly ${failures} times in a row (last exit code ${exitCode ?? 'none'}). It is restarted automatically, now every ${Math.round(nextMs / 1000)} s at most; running jobs resume from their last checkpoint. If this goes on, quit Flaneur and start it from a terminal (npm start) to see why.`;
  }
}
