import fs from 'node:fs';
import { afterEach, describe, expect, it } from 'vitest';
import { tmpDir } from '../helpers/tmp.js';
import { openApp } from './browser.js';

/** Processes whose environment names this app home (the engine is started with FLANEUR_HOME=home). */
function processesWithHome(home: string): number[] {
  const found: number[] = [];
  for (const entry of fs.readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      const environ = fs.readFileSync(`/proc/${entry}/environ`, 'utf8').split('\0');
      if (environ.includes(`FLANEUR_HOME=${home}`)) found.push(Number(entry));
    } catch {
      // Gone, or another user's process.
    }
  }
  return found;
}

describe('end-to-end setup', () => {
  const saved = process.env.CHROMIUM_PATH;
  afterEach(() => {
    if (saved === undefined) delete process.env.CHROMIUM_PATH;
    else process.env.CHROMIUM_PATH = saved;
  });

  it.runIf(process.platform === 'linux')('leaves no engine running when the browser fails to start', async () => {
    const home = tmpDir();
    // A "browser" that exits at once: the engine is already up when the launch fails.
    process.env.CHROMIUM_PATH = '/bin/false';
    await expect(openApp({ home })).rejects.toThrow();
    expect(processesWithHome(home)).toEqual([]);
  });

  it('says what to do when CHROMIUM_PATH names nothing, and leaves no engine running', async () => {
    const home = tmpDir();
    process.env.CHROMIUM_PATH = '/nowhere/chromium';
    await expect(openApp({ home })).rejects.toThrow(/CHROMIUM_PATH is set to \/nowhere\/chromium/);
    if (process.platform === 'linux') expect(processesWithHome(home)).toEqual([]);
  });
});
