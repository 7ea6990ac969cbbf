import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { beforeEach, describe, expect, it } from 'vitest';
import { COMMANDS } from '../../../native/cli/spec.js';
import { runCli } from '../../helpers/cli.js';
import { ROOT } from '../../helpers/engine-process.js';
import { tmpDir } from '../../helpers/tmp.js';

describe('flaneur CLI', () => {
  const home = tmpDir();
  const work = tmpDir();

  beforeEach(() => {
    process.env.FLANEUR_HOME = home;
  });

  it('creates a project and shows it as JSON', async () => {
    const created = await runCli(['project', 'create', path.join(work, 'p'), '--name', 'Tour', '--json']);
    expect(created.code).toBe(0);
    expect(created.json()).toMatchObject({ name: 'Tour', isDemo: false });
    const info = await runCli(['project', 'info', '--json']);
    expect(info.code).toBe(0);
    expect(info.json()).toMatchObject({ name: 'Tour', path: path.join(work, 'p') });
  });

  it('hashes a folder as a job and lists it', async () => {
    const data = path.join(work, 'data');
    fs.mkdirSync(data);
    for (let i = 0; i < 5; i++) fs.writeFileSync(path.join(data, `f${i}.txt`), `file ${i}`);
    const hashed = await runCli(['hash', data, '--project', path.join(work, 'p'), '--json']);
    expect(hashed.code).toBe(0);
    expect(hashed.json()).toMatchObject({ state: 'done', items: { ok: 5, failed: 0, skipped: 0 } });
    const list = await runCli(['jobs', 'list', '--project', path.join(work, 'p')]);
    expect(list.code).toBe(0);
    expect(list.stdout).toMatch(/#1\tdone 100%\tHash files in data/);
  });

  it('reports errors with their code and a non-zero exit', async () => {
    const cancel = await runCli(['jobs', 'cancel', '99', '--project', path.join(work, 'p'), '--json']);
    expect(cancel.code).toBe(1);
    expect(cancel.json()).toMatchObject({ ok: false, error: { code: 'NOT_FOUND' } });
    const info = await runCli(['project', 'info', path.join(work, 'nothing-here')]);
    expect(info.code).toBe(1);
    expect(info.stderr).toMatch(/No such folder/);
  });

  it('asks NeCo training for the model to adapt, and names the objectives', async () => {
    const neco = await runCli(['train', '--objective', 'neco', '--project', path.join(work, 'p')]);
    expect(neco.code).toBe(2);
    expect(neco.stderr).toMatch(/NeCo adapts a registered model: give --base ID/);
    const other = await runCli(['train', '--objective', 'simclr', '--project', path.join(work, 'p')]);
    expect(other.code).toBe(2);
    expect(other.stderr).toMatch(/--objective is one of dino, dora, neco, unco, not simclr/);
  });

  it('rejects an unknown command in one line that names it', async () => {
    const r = await runCli(['fly', 'away']);
    expect(r.code).toBe(2);
    expect(r.stderr.trim().split('\n')).toEqual([expect.stringMatching(/unknown command: fly/)]);
    const sub = await runCli(['segment', 'paint']);
    expect(sub.code).toBe(2);
    expect(sub.stderr).toMatch(/segment paint: unknown command; segment takes bank, banks, compare, apply/);
  });

  it('prints the overview with every command, and exits 2 without a command', async () => {
    const help = await runCli(['--help']);
    expect(help.code).toBe(0);
    for (const c of COMMANDS) expect(help.stdout).toContain(`  ${c.name} `.trimEnd());
    expect((await runCli([])).code).toBe(2);
  });

  it('answers --help and argument errors without loading the engine (no onnxruntime, no SQLite)', () => {
    // The native libraries in the process after main() returns, from Node's diagnostic report.
    const probe = path.join(work, 'probe.mts');
    fs.writeFileSync(
      probe,
      `import { main } from ${JSON.stringify(path.join(ROOT, 'native', 'cli', 'main.ts'))};
console.log = () => {};
console.error = () => {};
await main(JSON.parse(process.argv[2]));
const libs = process.report.getReport().sharedObjects.filter((s) => /onnxruntime|better_sqlite3/.test(s));
process.stdout.write(JSON.stringify(libs));`,
    );
    const loaded = (args: string[]) => {
      const r = spawnSync(process.execPath, ['--import', 'tsx', probe, JSON.stringify(args)], {
        cwd: ROOT,
        env: { ...process.env, FLANEUR_HOME: home },
        encoding: 'utf8',
      });
      return JSON.parse(r.stdout) as string[];
    };
    expect(loaded(['--help'])).toEqual([]);
    expect(loaded(['segment', 'apply', '--help'])).toEqual([]);
    expect(loaded(['count', 'x', '--no-such-option'])).toEqual([]);
    expect(loaded(['track'])).toEqual([]);
    // A command that runs does load it (the probe can see it).
    expect(loaded(['device']).some((l) => l.includes('onnxruntime'))).toBe(true);
  }, 120_000);

  describe.each(COMMANDS.map((c) => [c.name, c] as const))('%s', (name, c) => {
    const words = name.split(' ');

    it('has its own --help', async () => {
      const r = await runCli([...words, '--help']);
      expect(r.code).toBe(0);
      expect(r.stdout).toMatch(new RegExp(`^Usage: flaneur ${name}`));
      for (const o of Object.keys(c.options)) expect(r.stdout).toContain(`--${o}`);
    });

    it('refuses an unknown option in one line naming it', async () => {
      const r = await runCli([...words, '--no-such-option', '1']);
      expect(r.code).toBe(2);
      const lines = r.stderr.trim().split('\n');
      expect(lines).toHaveLength(1);
      expect(lines[0]).toContain(`${name}: unknown option --no-such-option`);
    });

    it.runIf(c.positionals.min > 0 || (c.required?.length ?? 0) > 0)(
      'refuses missing arguments in one line naming them',
      async () => {
        // Positionals first: a required option is reported once the positionals are there.
        const r = await runCli(words);
        expect(r.code).toBe(2);
        const lines = r.stderr.trim().split('\n');
        expect(lines).toHaveLength(1);
        const missing = c.positionals.min > 0 ? c.positionals.label : `--${c.required?.[0]}`;
        expect(lines[0]).toContain(`${name}: missing ${missing}`);
      },
    );
  });
});
