/**
 * The event loop's stalls, recorded inside a process (the engine under `npm run bench -- responsiveness`): how long
 * the loop gave no turn to a 10 ms sampler, and for each stall over the threshold what the loop was doing — the
 * activity marks set by the code that handles calls, job messages and events (`loopActivity`), the main thread's own
 * CPU time and run-queue wait during the stall (Linux's /proc/thread-self/schedstat: a stall the thread spent
 * waiting for a CPU is the machine's load, one it spent running is our code), and with the profiler on, the
 * functions V8's sampling profiler found running in it. Off unless started: `loopActivity` is then one comparison.
 * Figures are kept until `flush()` (or SIGUSR2) appends them as one JSON line to the report file and starts afresh.
 */
import fs from 'node:fs';
import { Session } from 'node:inspector';
import { type IntervalHistogram, monitorEventLoopDelay } from 'node:perf_hooks';

/** One stall of the loop longer than the threshold. */
export interface LoopStall {
  /** When it began (epoch ms, to the sampler's period). */
  at: number;
  /** How long the loop gave the sampler no turn beyond its period (ms). */
  ms: number;
  /** Of the stall's window, the time the main thread ran on a CPU and waited for one (ms; null without /proc). */
  cpuMs: number | null;
  waitMs: number | null;
  /**
   * Why: 'run' — the main thread ran through most of it (this process's own work), 'sleep' — it neither ran nor
   * waited for a CPU (a synchronous wait: a lock, the disk), 'wait' — it waited for a CPU at least half of it (the
   * machine's load), 'unknown' without /proc.
   */
  cause: 'run' | 'sleep' | 'wait' | 'unknown';
  /** The last activity begun before the stall's window, and those begun during it (in order, at most 8). */
  before: string | null;
  during: string[];
  /** With the profiler: the frames the samples of the window fell in (self time), and the nearest frame of native/. */
  self?: { frame: string; ms: number }[];
  ours?: { frame: string; ms: number }[];
}

/** One flush: the loop's delay histogram and the stalls since the previous flush. */
export interface LoopReport {
  seq: number;
  /** Epoch ms of the window's start and end. */
  from: number;
  to: number;
  /** perf_hooks.monitorEventLoopDelay over the window (ms). */
  delay: { p50: number; p99: number; max: number; mean: number };
  /** Every stall over the threshold; `own`: those of this process's making (cause 'run' or 'sleep'). */
  stalls: { count: number; totalMs: number; maxMs: number; ownCount: number; ownMaxMs: number };
  /** The longest stalls of the window (at most 40), longest first, and the longest of its own making (at most 20). */
  longest: LoopStall[];
  longestOwn: LoopStall[];
}

export interface LoopStallOptions {
  /** Where each flush appends its JSON line. */
  file: string;
  /** A stall is recorded when the sampler runs this much later than its period (ms, default 20). */
  thresholdMs?: number;
  /** V8's sampling profiler on, for the frames of each stall (default true). */
  profile?: boolean;
  /** SIGUSR2 flushes (default true; for a bench driving the process from outside). */
  flushOnSignal?: boolean;
}

const PERIOD_MS = 10;
const MARKS = 512;
const KEEP = 40;

interface Mark {
  us: number;
  label: string;
}

interface Window {
  startUs: number;
  endUs: number;
  stall: LoopStall;
}

interface CpuProfile {
  nodes: { id: number; callFrame: { functionName: string; url: string; lineNumber: number }; children?: number[] }[];
  startTime: number;
  samples: number[];
  timeDeltas: number[];
}

const nowUs = (): number => Number(process.hrtime.bigint() / 1000n);
const round = (x: number) => Math.round(x * 10) / 10;

/** The main thread's time on a CPU and in the run queue (ns), or null where the kernel does not say. */
function schedReader(): () => [number, number] | null {
  let fd: number | null = null;
  try {
    fd = fs.openSync('/proc/thread-self/schedstat', 'r');
  } catch {
    return () => null;
  }
  const buf = Buffer.alloc(128);
  return () => {
    try {
      const n = fs.readSync(fd as number, buf, 0, buf.length, 0);
      const [run, wait] = buf.toString('latin1', 0, n).split(' ');
      return [Number(run), Number(wait)];
    } catch {
      return null;
    }
  };
}

/** Why a stall of `ms` over a window of `wallMs` happened, from the main thread's run and run-queue time in it. */
function causeOf(wallMs: number, ms: number, cpuMs: number | null, waitMs: number | null): LoopStall['cause'] {
  if (cpuMs === null || waitMs === null) return 'unknown';
  if (waitMs >= ms / 2) return 'wait';
  return cpuMs >= wallMs - cpuMs - waitMs ? 'run' : 'sleep';
}

/** The `n` longest (a list kept short as stalls come: trimmed when it doubles). */
function keepLongest(windows: Window[], n: number): Window[] {
  if (windows.length <= 2 * n) return windows;
  return windows.sort((a, b) => b.stall.ms - a.stall.ms).slice(0, n);
}

class Recorder {
  private readonly marks: Mark[] = [];
  private markHead = 0;
  private readonly histogram: IntervalHistogram = monitorEventLoopDelay({ resolution: 10 });
  private windows: Window[] = [];
  private ownWindows: Window[] = [];
  private count = 0;
  private totalMs = 0;
  private ownCount = 0;
  private ownMaxMs = 0;
  private seq = 0;
  private from = Date.now();
  private timer: NodeJS.Timeout | null = null;
  private session: Session | null = null;
  private readonly sched = schedReader();
  private readonly threshold: number;
  private prevUs = nowUs();
  private prevSched = this.sched();

  constructor(private readonly options: LoopStallOptions) {
    this.threshold = options.thresholdMs ?? 20;
    this.histogram.enable();
    if (options.profile ?? true) this.startProfiler();
    const tick = () => {
      const t = nowUs();
      const s = this.sched();
      const lagMs = (t - this.prevUs) / 1000 - PERIOD_MS;
      if (lagMs > this.threshold) this.record(this.prevUs, t, lagMs, this.prevSched, s);
      this.prevUs = t;
      this.prevSched = s;
      this.timer = setTimeout(tick, PERIOD_MS);
      this.timer.unref();
    };
    this.timer = setTimeout(tick, PERIOD_MS);
    this.timer.unref();
  }

  mark(label: string): void {
    this.marks[this.markHead] = { us: nowUs(), label };
    this.markHead = (this.markHead + 1) % MARKS;
  }

  private record(startUs: number, endUs: number, ms: number, s0: [number, number] | null, s1: [number, number] | null) {
    let before: string | null = null;
    let beforeUs = -1;
    const during: Mark[] = [];
    for (const m of this.marks) {
      if (!m) continue;
      if (m.us < startUs && m.us > beforeUs) {
        before = m.label;
        beforeUs = m.us;
      } else if (m.us >= startUs && m.us <= endUs) during.push(m);
    }
    during.sort((a, b) => a.us - b.us);
    const cpuMs = s0 && s1 ? (s1[0] - s0[0]) / 1e6 : null;
    const waitMs = s0 && s1 ? (s1[1] - s0[1]) / 1e6 : null;
    const stall: LoopStall = {
      at: Date.now() - (nowUs() - startUs) / 1000,
      ms: round(ms),
      cpuMs: cpuMs === null ? null : round(cpuMs),
      waitMs: waitMs === null ? null : round(waitMs),
      cause: causeOf((endUs - startUs) / 1000, ms, cpuMs, waitMs),
      before,
      during: [...new Set(during.map((m) => m.label))].slice(0, 8),
    };
    this.count++;
    this.totalMs += ms;
    const window = { startUs, endUs, stall };
    this.windows = keepLongest([...this.windows, window], KEEP);
    if (stall.cause === 'run' || stall.cause === 'sleep') {
      this.ownCount++;
      this.ownMaxMs = Math.max(this.ownMaxMs, stall.ms);
      this.ownWindows = keepLongest([...this.ownWindows, window], KEEP / 2);
    }
  }

  private startProfiler(): void {
    try {
      const session = new Session();
      session.connect();
      session.post('Profiler.enable');
      session.post('Profiler.setSamplingInterval', { interval: 1000 });
      session.post('Profiler.start');
      this.session = session;
    } catch {
      this.session = null;
    }
  }

  /** Stops the profiler, gives the samples to the stalls they fall in, and starts it again. */
  private attributeProfile(windows: Window[]): void {
    const session = this.session;
    if (!session) return;
    let profile: CpuProfile | null = null;
    session.post('Profiler.stop', (err, result) => {
      if (!err) profile = (result as { profile: CpuProfile }).profile;
    });
    session.post('Profiler.start');
    if (!profile || windows.length === 0) return;
    const p = profile as CpuProfile;
    const byId = new Map(p.nodes.map((n) => [n.id, n]));
    const parent = new Map<number, number>();
    for (const n of p.nodes) for (const c of n.children ?? []) parent.set(c, n.id);
    const frame = (id: number) => {
      const f = byId.get(id)?.callFrame;
      if (!f) return '?';
      const file = f.url.replace(/^file:\/\//, '').replace(/^.*\/(native|node_modules)\//, '$1/');
      return file ? `${f.functionName || '(anonymous)'} ${file}:${f.lineNumber + 1}` : f.functionName;
    };
    const ours = (id: number): string | null => {
      for (let at: number | undefined = id; at !== undefined; at = parent.get(at)) {
        const url = byId.get(at)?.callFrame.url ?? '';
        if (url.includes('/native/') && !url.includes('/native/base/loop-stalls')) return frame(at);
      }
      return null;
    };
    const sorted = [...windows].sort((a, b) => a.startUs - b.startUs);
    const self = sorted.map(() => new Map<string, number>());
    const own = sorted.map(() => new Map<string, number>());
    let t = p.startTime;
    let w = 0;
    for (let i = 0; i < p.samples.length; i++) {
      t += p.timeDeltas[i] ?? 0;
      const weight = (p.timeDeltas[i + 1] ?? 1000) / 1000;
      while (w < sorted.length && (sorted[w] as Window).endUs < t) w++;
      const win = sorted[w];
      if (!win) break;
      if (t < win.startUs) continue;
      const id = p.samples[i] as number;
      const add = (m: Map<string, number> | undefined, k: string | null) => {
        if (m && k) m.set(k, (m.get(k) ?? 0) + weight);
      };
      add(self[w], frame(id));
      add(own[w], ours(id));
    }
    const top = (m: Map<string, number>) =>
      [...m.entries()]
        .sort((a, b) => b[1] - a[1])
        .slice(0, 4)
        .map(([f, ms]) => ({ frame: f, ms: round(ms) }));
    sorted.forEach((win, i) => {
      win.stall.self = top(self[i] as Map<string, number>);
      win.stall.ours = top(own[i] as Map<string, number>);
    });
  }

  flush(): LoopReport {
    const byLength = (list: Window[], n: number) => [...list].sort((a, b) => b.stall.ms - a.stall.ms).slice(0, n);
    const windows = byLength(this.windows, KEEP);
    const own = byLength(this.ownWindows, KEEP / 2);
    this.attributeProfile([...new Set([...windows, ...own])]);
    const h = this.histogram;
    const ms = (ns: number) => round(ns / 1e6);
    const report: LoopReport = {
      seq: ++this.seq,
      from: this.from,
      to: Date.now(),
      delay: { p50: ms(h.percentile(50)), p99: ms(h.percentile(99)), max: ms(h.max), mean: ms(h.mean) },
      stalls: {
        count: this.count,
        totalMs: round(this.totalMs),
        maxMs: windows[0]?.stall.ms ?? 0,
        ownCount: this.ownCount,
        ownMaxMs: this.ownMaxMs,
      },
      longest: windows.map((w) => w.stall),
      longestOwn: own.map((w) => w.stall),
    };
    fs.appendFileSync(this.options.file, `${JSON.stringify(report)}\n`);
    this.windows = [];
    this.ownWindows = [];
    this.count = 0;
    this.totalMs = 0;
    this.ownCount = 0;
    this.ownMaxMs = 0;
    this.from = report.to;
    // The flush's own time is no stall of the next window: the sampler counts from here, and the histogram's first
    // sample after it (which would include it) is dropped with a reset a moment later.
    this.prevUs = nowUs();
    this.prevSched = this.sched();
    h.reset();
    setTimeout(() => h.reset(), 2 * PERIOD_MS).unref();
    return report;
  }

  stop(): void {
    if (this.timer) clearTimeout(this.timer);
    this.histogram.disable();
    this.session?.disconnect();
  }
}

let active: Recorder | null = null;

/** Notes what the loop begins now (a call, a job's message, an event), for the stalls that follow. */
export function loopActivity(label: string): void {
  active?.mark(label);
}

/** Starts recording this process's stalls (one recorder per process; a second call returns the first). */
export function startLoopStalls(options: LoopStallOptions): { flush(): LoopReport; stop(): void } {
  if (!active) {
    const recorder = new Recorder(options);
    active = recorder;
    if (options.flushOnSignal ?? true) process.on('SIGUSR2', () => recorder.flush());
  }
  const recorder = active;
  return {
    flush: () => recorder.flush(),
    stop: () => {
      recorder.stop();
      if (active === recorder) active = null;
    },
  };
}
