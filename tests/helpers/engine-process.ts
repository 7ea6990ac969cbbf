/**
 * Starts the real engine in browser mode as a separate process (from source through tsx, or from the build), and
 * talks to it over HTTP with the launch token, as the UI does.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { createInterface } from 'node:readline';
import type { CallResponse, CommandArgs, CommandName, CommandResult } from '../../native/api/contract.js';

export const ROOT = path.resolve(import.meta.dirname, '..', '..');

export interface EngineProcess {
  child: ChildProcess;
  url: string;
  token: string;
  pid: number;
  call<K extends CommandName>(command: K, args: CommandArgs<K>): Promise<CommandResult<K>>;
  raw(command: string, args: unknown): Promise<CallResponse>;
  stop(signal?: NodeJS.Signals): Promise<number | null>;
}

export async function startEngineProcess(options: {
  home: string;
  project?: string;
  fromBuild?: boolean;
  env?: Record<string, string>;
  /** Options of Node itself for the engine's process (V8 flags). */
  nodeArgs?: string[];
}): Promise<EngineProcess> {
  const args = [
    ...(options.nodeArgs ?? []),
    ...(options.fromBuild
      ? [path.join(ROOT, 'build', 'native', 'cli-main.js')]
      : ['--import', 'tsx', path.join(ROOT, 'native', 'cli-main.ts')]),
  ];
  args.push('serve', '--json', ...(options.project ? ['--project', options.project] : []));
  const child = spawn(process.execPath, args, {
    cwd: ROOT,
    env: { ...process.env, FLANEUR_HOME: options.home, ...options.env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let stderr = '';
  child.stderr?.on('data', (d: Buffer) => {
    stderr += d.toString();
  });
  const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
  const first = await new Promise<{ url: string; token: string; pid: number }>((resolve, reject) => {
    const rl = createInterface({ input: child.stdout as NodeJS.ReadableStream });
    rl.once('line', (line) => {
      try {
        resolve(JSON.parse(line) as { url: string; token: string; pid: number });
      } catch {
        // Not the address line: stop the engine rather than leave it running without a handle.
        child.kill('SIGKILL');
        reject(new Error(`engine printed ${line}\n${stderr}`));
      }
    });
    child.once('exit', (code) => reject(new Error(`engine exited with ${code} before listening:\n${stderr}`)));
  });
  const raw = async (command: string, callArgs: unknown): Promise<CallResponse> => {
    const res = await fetch(`${first.url}/api/call`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', 'x-flaneur-token': first.token },
      body: JSON.stringify({ command, args: callArgs }),
    });
    return (await res.json()) as CallResponse;
  };
  return {
    child,
    ...first,
    raw,
    async call(command, callArgs) {
      const r = await raw(command, callArgs);
      if (!r.ok) throw new Error(`${command}: ${r.error.code}: ${r.error.message}`);
      return r.result as never;
    },
    async stop(signal = 'SIGTERM') {
      if (child.exitCode === null && child.signalCode === null) child.kill(signal);
      return exited;
    },
  };
}

export async function waitFor<T>(probe: () => Promise<T | undefined | null | false>, timeoutMs = 20_000): Promise<T> {
  const end = Date.now() + timeoutMs;
  for (;;) {
    const v = await probe();
    if (v) return v;
    if (Date.now() > end) throw new Error('waitFor: timed out');
    await new Promise((r) => setTimeout(r, 25));
  }
}

/** Process ids of the job workers (native/engine/job-worker-main, role 'job') the engine process `enginePid` started. */
export function jobWorkerPids(enginePid: number): number[] {
  const pids: number[] = [];
  for (const entry of fs.readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      const stat = fs.readFileSync(`/proc/${entry}/stat`, 'utf8');
      const ppid = Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]);
      if (ppid !== enginePid) continue;
      const argv = fs.readFileSync(`/proc/${entry}/cmdline`, 'utf8').split('\0').filter(Boolean);
      if (argv.at(-2)?.includes('job-worker-main') && argv.at(-1) === 'job') pids.push(Number(entry));
    } catch {
      // The process ended while it was read.
    }
  }
  return pids;
}
