import fs from 'node:fs';
import path from 'node:path';
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { main } from '../../native/cli.js';
import { tmpDir } from '../helpers/tmp.js';

describe('flaneur CLI', () => {
  const home = tmpDir();
  const work = tmpDir();
  let lines: string[] = [];

  beforeEach(() => {
    process.env.FLANEUR_HOME = home;
    lines = [];
    vi.spyOn(console, 'log').mockImplementation((...a: unknown[]) => {
      lines.push(a.join(' '));
    });
    vi.spyOn(console, 'error').mockImplementation((...a: unknown[]) => {
      lines.push(a.join(' '));
    });
    vi.spyOn(process.stderr, 'write').mockImplementation(() => true);
  });
  afterEach(() => {
    vi.restoreAllMocks();
  });

  const json = () => JSON.parse(lines.join('\n')) as Record<string, unknown>;

  it('creates a project and shows it as JSON', async () => {
    expect(await main(['project', 'create', path.join(work, 'p'), '--name', 'Tour', '--json'])).toBe(0);
    expect(json()).toMatchObject({ name: 'Tour', isDemo: false });
    lines = [];
    expect(await main(['project', 'info', '--json'])).toBe(0);
    expect(json()).toMatchObject({ name: 'Tour', path: path.join(work, 'p') });
  });

  it('hashes a folder as a job and lists it', async () => {
    const data = path.join(work, 'data');
    fs.mkdirSync(data);
    for (let i = 0; i < 5; i++) fs.writeFileSync(path.join(data, `f${i}.txt`), `file ${i}`);
    expect(await main(['hash', data, '--project', path.join(work, 'p'), '--json'])).toBe(0);
    expect(json()).toMatchObject({ state: 'done', items: { ok: 5, failed: 0, skipped: 0 } });
    lines = [];
    expect(await main(['jobs', 'list', '--project', path.join(work, 'p')])).toBe(0);
    expect(lines.join('\n')).toMatch(/#1\tdone 100%\tHash files in data/);
  });

  it('reports errors with their code and a non-zero exit', async () => {
    expect(await main(['jobs', 'cancel', '99', '--project', path.join(work, 'p'), '--json'])).toBe(1);
    expect(json()).toMatchObject({ ok: false, error: { code: 'NOT_FOUND' } });
    lines = [];
    expect(await main(['project', 'info', path.join(work, 'nothing-here')])).toBe(1);
    expect(lines.join('\n')).toMatch(/No such folder/);
  });

  it('rejects unknown commands with usage', async () => {
    expect(await main(['fly', 'away'])).toBe(2);
    expect(lines.join('\n')).toMatch(/Usage: flaneur/);
  });
});
