/**
 * How fast the CLI answers: `flaneur --help`, an argument error and `flaneur device` (a command that loads the
 * engine) through bin/flaneur.js on the build, against Node's own start-up (`node -e ''`), runs interleaved so
 * the machine's load hits all alike; `--npx` adds `npx flaneur --help` (npm's start-up on top). Needs
 * `npm run build`. Figures: median and min seconds over N runs (default 15), each as a multiple of Node's start.
 */
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { APP_ROOT } from '../native/base/version.js';

export async function benchCli(args: string[]): Promise<Record<string, unknown>> {
  const runs = Number(args.find((a) => /^\d+$/.test(a)) ?? 15);
  const bin = path.join(APP_ROOT, 'bin', 'flaneur.js');
  if (!fs.existsSync(path.join(APP_ROOT, 'build', 'native', 'cli', 'main.js')))
    throw new Error('bench cli measures the build: run `npm run build` first');
  const cases: Record<string, string[]> = {
    node: [process.execPath, '-e', ''],
    help: [process.execPath, bin, '--help'],
    commandHelp: [process.execPath, bin, 'segment', 'apply', '--help'],
    usageError: [process.execPath, bin, 'count', 'x', '--no-such-option'],
    device: [process.execPath, bin, 'device'],
    ...(args.includes('--npx') ? { npxHelp: ['npx', 'flaneur', '--help'] } : {}),
  };
  const times: Record<string, number[]> = Object.fromEntries(Object.keys(cases).map((k) => [k, []]));
  for (let i = 0; i < runs; i++) {
    for (const [name, [cmd, ...rest]] of Object.entries(cases)) {
      const t0 = performance.now();
      spawnSync(cmd as string, rest, { cwd: APP_ROOT, stdio: 'ignore' });
      times[name]?.push((performance.now() - t0) / 1000);
    }
    process.stderr.write(`run ${i + 1}/${runs}\n`);
  }
  const stat = (xs: number[]) => {
    const s = [...xs].sort((a, b) => a - b);
    return { median: s[Math.floor(s.length / 2)] as number, min: s[0] as number };
  };
  const node = stat(times.node ?? []).median;
  return {
    bench: 'cli',
    runs,
    seconds: Object.fromEntries(Object.entries(times).map(([k, v]) => [k, stat(v)])),
    overNodeStart: Object.fromEntries(Object.entries(times).map(([k, v]) => [k, stat(v).median / node])),
  };
}
