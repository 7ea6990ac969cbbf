/**
 * `npm run bench -- responsiveness [--seconds S] [--only kind,kind]`: how long a client waits for the engine while
 * heavy work runs. The real engine runs in browser mode in its own process (tests/helpers/engine-process.ts, from
 * source); this process is the client. While each of feature extraction, Dora tracking, DINO training, NeCo
 * training, k-means clustering (segment.clusterBank), a UMAP map, counting a 4000 px image and a 50 MB `.pth`
 * import runs, a client calls a cheap API method (`jobs.list`) every 20 ms and another pings the event WebSocket
 * every 20 ms (the pong is answered on the engine's event loop). A job is cancelled after S seconds (default 25)
 * if it has not finished. Reference: the same pollers on the idle engine. Figures per kind: p50 / p99 / max of the
 * API call and of the ping, and over all kinds `api_p99_ms_worst`, `api_max_ms_worst`. Also the load average.
 *
 * The engine's own view (`engine` per kind; far less sensitive to the machine's load than the client's latency):
 * the engine records its event loop's stalls (native/base/loop-stalls.ts, FLANEUR_LOOP_STALLS) and the bench reads
 * them at the end of each kind: monitorEventLoopDelay's p50 / p99 / max, the stalls over 20 ms (count, total, the
 * longest), and for the longest ones the main thread's CPU and run-queue time in them, what the engine was
 * handling (a call, a job's message, an event) and the frames V8's profiler sampled. A stall whose thread mostly
 * waited for a CPU is the machine's load (`cause` 'wait'); one it ran ('run') or slept through (a synchronous wait:
 * 'sleep') is the engine's own (`blocked_max_ms`).
 * `--no-profile` turns the profiler off.
 */
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import WebSocket from 'ws';
import type { JobInfo } from '../native/api/contract.js';
import type { LoopReport } from '../native/base/loop-stalls.js';
import { type EngineProcess, startEngineProcess } from '../tests/helpers/engine-process.js';
import { makeImage, makeVideo } from '../tests/helpers/media.js';

const ROOT = path.resolve(import.meta.dirname, '..');
const TICK_MS = 20;

interface Stats {
  n: number;
  p50_ms: number;
  p99_ms: number;
  max_ms: number;
}

function stats(samples: number[]): Stats {
  const s = [...samples].sort((a, b) => a - b);
  const at = (q: number) => s[Math.min(s.length - 1, Math.floor(q * s.length))] ?? 0;
  const r = (x: number) => Number(x.toFixed(1));
  return { n: s.length, p50_ms: r(at(0.5)), p99_ms: r(at(0.99)), max_ms: r(s[s.length - 1] ?? 0) };
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** Calls `jobs.list` and pings the WebSocket every 20 ms (each after the previous answer) until stopped. */
function poll(engine: EngineProcess, ws: WebSocket): { stop(): Promise<{ api: number[]; ws: number[] }> } {
  let running = true;
  const api: number[] = [];
  const pings: number[] = [];
  const apiLoop = (async () => {
    while (running) {
      const t0 = performance.now();
      await engine.raw('jobs.list', {});
      const dt = performance.now() - t0;
      api.push(dt);
      await sleep(Math.max(0, TICK_MS - dt));
    }
  })();
  const wsLoop = (async () => {
    while (running) {
      const t0 = performance.now();
      await new Promise<void>((resolve) => {
        ws.once('pong', () => resolve());
        ws.ping();
      });
      const dt = performance.now() - t0;
      pings.push(dt);
      await sleep(Math.max(0, TICK_MS - dt));
    }
  })();
  return {
    async stop() {
      running = false;
      await Promise.all([apiLoop, wsLoop]);
      return { api, ws: pings };
    },
  };
}

/** What the engine recorded of its loop since the previous flush (SIGUSR2 makes it append one line to `file`). */
async function engineLoop(engine: EngineProcess, file: string, seq: number): Promise<LoopReport> {
  process.kill(engine.pid, 'SIGUSR2');
  return until(async () => {
    const lines = fs.existsSync(file) ? fs.readFileSync(file, 'utf8').trim().split('\n') : [];
    const last = lines.length >= seq ? (JSON.parse(lines[seq - 1] as string) as LoopReport) : null;
    return last?.seq === seq ? last : null;
  }, 60_000);
}

function loopSummary(r: LoopReport) {
  return {
    delay_ms: r.delay,
    stalls_over_20ms: r.stalls.count,
    stalled_ms: r.stalls.totalMs,
    stall_max_ms: r.stalls.maxMs,
    /** The stalls of the engine's own making (its thread ran or slept in them, rather than wait for a CPU). */
    blocked_stalls: r.stalls.ownCount,
    blocked_max_ms: r.stalls.ownMaxMs,
    longest: r.longest.slice(0, 3),
    longest_blocked: r.longestOwn.slice(0, 4),
  };
}

async function until<T>(probe: () => Promise<T | null | undefined | false>, timeoutMs: number): Promise<T> {
  const end = Date.now() + timeoutMs;
  for (;;) {
    const v = await probe();
    if (v) return v;
    if (Date.now() > end) throw new Error('timed out waiting for the engine');
    await sleep(200);
  }
}

export async function benchResponsiveness(args: string[]): Promise<Record<string, unknown>> {
  const opt = (name: string) => {
    const i = args.indexOf(name);
    return i >= 0 ? args[i + 1] : undefined;
  };
  const seconds = Number(opt('--seconds') ?? 25);
  const only = opt('--only')?.split(',');
  const work = fs.mkdtempSync(path.join(os.tmpdir(), 'flaneur-resp-'));
  const loopFile = path.join(work, 'loop-stalls.jsonl');
  const engine = await startEngineProcess({
    home: path.join(work, 'home'),
    env: { FLANEUR_LOOP_STALLS: loopFile, FLANEUR_LOOP_PROFILE: args.includes('--no-profile') ? '0' : '1' },
    nodeArgs: opt('--node-args')?.split(' ') ?? [],
  });
  let flushes = 0;
  const flush = () => engineLoop(engine, loopFile, ++flushes);
  const ws = new WebSocket(`${engine.url.replace('http', 'ws')}/api/events`, {
    headers: { 'x-flaneur-token': engine.token, origin: engine.url },
  });
  await new Promise((resolve, reject) => {
    ws.once('open', resolve);
    ws.once('error', reject);
  });
  const out: Record<string, unknown> = {
    engine_pid: engine.pid,
    tick_ms: TICK_MS,
    job_cap_s: seconds,
    loadavg_start: os.loadavg().map((x) => Number(x.toFixed(2))),
    cpus: os.cpus().length,
    node_args: opt('--node-args') ?? '',
  };
  const kinds: Record<string, unknown> = {};
  try {
    // One retry when a kept-alive connection was closed by the server as the request went out (setup steps idle
    // for longer than its keep-alive timeout).
    const call = async (c: string, a: unknown): Promise<never> => {
      try {
        return await (engine.call as (c: string, a: unknown) => Promise<never>)(c, a);
      } catch (err) {
        if ((err as Error).message !== 'fetch failed') throw err;
        return (engine.call as (c: string, a: unknown) => Promise<never>)(c, a);
      }
    };
    const waitJob = async (id: number, timeoutMs: number): Promise<JobInfo> =>
      until(async () => {
        const j = (await call('jobs.get', { id })) as JobInfo;
        return ['done', 'failed', 'cancelled'].includes(j.state) ? j : null;
      }, timeoutMs);

    // Setup (not measured): the bundled ViT-Ti/16, a 60 s clip at 5 fps (300 frames, 224 px short side), a 4000 px
    // image, a 50 MB DINO checkpoint, and the features later scenarios need.
    await call('project.create', { path: path.join(work, 'p') });
    const manifest = JSON.parse(fs.readFileSync(path.join(ROOT, 'models', 'default', 'manifest.json'), 'utf8')) as {
      file: string;
    };
    const model = (await call('models.import', {
      path: path.join(ROOT, 'models', 'default', manifest.file),
      name: 'default',
    })) as { id: number };
    const video = makeVideo(path.join(work, 'clip.mp4'), { seconds: 60, fps: 10, width: 320, height: 240 });
    const big = makeImage(path.join(work, 'big.png'), 'testsrc2=size=4000x3000');
    const pth = path.join(work, 'dino-50mb.pth');
    execFileSync('/usr/bin/python3', [path.join(ROOT, 'tools', 'responsiveness_pth.py'), pth]);
    await call('library.add', {
      paths: [video],
      sampling: { policy: 'fps', fps: 5 },
      frameSize: { mode: 'short-side', size: 224 },
    });
    await call('library.add', { paths: [big], frameSize: { mode: 'short-side', size: 2048 } });
    const media = await until(async () => {
      const l = (await call('library.list', {})) as { items: { id: number; path: string; status: string }[] };
      return l.items.length === 2 && l.items.every((m) => m.status === 'done') ? l.items : null;
    }, 600_000);
    const clip = media.find((m) => m.path === video)?.id as number;
    const image = media.find((m) => m.path === big)?.id as number;
    const prep = (await call('features.extract', { modelId: model.id, media: [clip], size: 224 })) as JobInfo;
    await waitJob(prep.id, 900_000);
    const runs = (await call('features.runs', {})) as { id: number }[];
    const runId = runs[0]?.id as number;
    console.error(`responsiveness: setup done (model ${model.id}, clip ${clip}, image ${image}, run ${runId})`);

    const trainBase = {
      init: { kind: 'model', id: model.id },
      media: [clip],
      steps: 1000,
      batch: 4,
      globalSize: 112,
      localSize: 48,
      localCrops: 2,
      warmupSteps: 2,
      checkpointEvery: 5,
      seed: 1,
    };
    const scenarios: { kind: string; start: () => Promise<number | null> | Promise<unknown> }[] = [
      {
        kind: 'features.extract',
        start: async () =>
          ((await call('features.extract', { modelId: model.id, media: [clip], size: 448 })) as JobInfo).id,
      },
      {
        kind: 'track (Dora)',
        start: async () => ((await call('track.start', { modelId: model.id, mediaId: clip, size: 224 })) as JobInfo).id,
      },
      { kind: 'train DINO', start: async () => ((await call('train.start', trainBase)) as JobInfo).id },
      {
        kind: 'train NeCo',
        start: async () =>
          ((await call('train.start', { ...trainBase, batch: 2, neco: { queue: 512, localCrops: 2 } })) as JobInfo).id,
      },
      {
        kind: 'k-means (segment.clusterBank)',
        start: () =>
          call('segment.clusterBank', {
            runId,
            name: 'clusters',
            clusters: 12,
            frames: Array.from({ length: 150 }, (_, i) => ({ mediaId: clip, frameIdx: i * 2 })),
          }),
      },
      {
        kind: 'map (UMAP)',
        start: async () => ((await call('map.build', { runId, method: 'umap', seed: 1 })) as JobInfo).id,
      },
      {
        kind: 'count.auto (4000 px image)',
        start: () => call('count.auto', { modelId: model.id, mediaId: image, frameIdx: 0 }),
      },
      { kind: 'models.import (50 MB .pth)', start: () => call('models.import', { path: pth, name: 'pth' }) },
    ];

    // The idle engine first, as the reference (the engine's loop record starts afresh after the setup).
    await flush();
    {
      const load = os.loadavg()[0];
      const p = poll(engine, ws);
      await sleep(3000);
      const r = await p.stop();
      kinds.idle = { api: stats(r.api), ws: stats(r.ws), engine: loopSummary(await flush()), loadavg_1m: load };
    }
    for (const s of scenarios) {
      if (only && !only.some((o) => s.kind.startsWith(o))) continue;
      await flush();
      const load = os.loadavg()[0] as number;
      const p = poll(engine, ws);
      const t0 = performance.now();
      let outcome = 'done';
      const started = s.start();
      const result = await started.catch((err: Error) => {
        outcome = `failed: ${err.message}`;
        return null;
      });
      if (typeof result === 'number') {
        // A job: wait for it, cancelling it after `seconds`.
        const timer = setTimeout(() => {
          void call('jobs.cancel', { id: result }).catch(() => undefined);
        }, seconds * 1000);
        const end = await waitJob(result, 900_000);
        clearTimeout(timer);
        outcome = end.state === 'cancelled' ? `cancelled after ${seconds} s` : end.state;
        if (end.state === 'failed') outcome = `failed: ${end.error?.message}`;
      }
      const wall = (performance.now() - t0) / 1000;
      const r = await p.stop();
      kinds[s.kind] = {
        outcome,
        seconds: Number(wall.toFixed(1)),
        api: stats(r.api),
        ws: stats(r.ws),
        engine: loopSummary(await flush()),
        loadavg_1m: [load, Number((os.loadavg()[0] as number).toFixed(2))],
      };
      console.error(`responsiveness: ${s.kind}: ${JSON.stringify(kinds[s.kind])}`);
      await sleep(1000);
    }
  } finally {
    ws.close();
    await engine.stop();
    fs.rmSync(work, { recursive: true, force: true });
  }
  type Kind = { api: Stats; ws: Stats; engine: ReturnType<typeof loopSummary> };
  const measured = Object.entries(kinds).filter(([k]) => k !== 'idle') as [string, Kind][];
  const worst = (f: (v: Kind) => number) => Math.max(0, ...measured.map(([, v]) => f(v)));
  return {
    ...out,
    loadavg_end: os.loadavg().map((x) => Number(x.toFixed(2))),
    kinds,
    api_p99_ms_worst: worst((v) => v.api.p99_ms),
    api_max_ms_worst: worst((v) => v.api.max_ms),
    ws_p99_ms_worst: worst((v) => v.ws.p99_ms),
    ws_max_ms_worst: worst((v) => v.ws.max_ms),
    engine_delay_p99_ms_worst: worst((v) => v.engine.delay_ms.p99),
    engine_stall_max_ms_worst: worst((v) => v.engine.stall_max_ms),
    engine_blocked_max_ms_worst: worst((v) => v.engine.blocked_max_ms),
  };
}
