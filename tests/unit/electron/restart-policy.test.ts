import { describe, expect, it } from 'vitest';
import { RestartPolicy } from '../../../electron/restart-policy.js';

// Issue 15 item 9: the shell restarted a dead engine every 500 ms forever and never said so.
describe('restarting a dead engine', () => {
  it('backs off exponentially up to 30 s and tells the user once, after the third death in a row', () => {
    const p = new RestartPolicy();
    const decisions = Array.from({ length: 10 }, () => p.onExit(100));
    expect(decisions.map((d) => d.delayMs)).toEqual([500, 1000, 2000, 4000, 8000, 16000, 30000, 30000, 30000, 30000]);
    expect(decisions.map((d) => d.tell)).toEqual([false, false, true, false, false, false, false, false, false, false]);
    expect(p.message(3, 1, 2000)).toMatch(/stopped unexpectedly 3 times in a row \(last exit code 1\)/);
  });

  it('starts counting again after an engine that ran healthily for a minute', () => {
    const p = new RestartPolicy();
    for (let i = 0; i < 4; i++) p.onExit(100);
    const after = p.onExit(120_000);
    expect(after).toEqual({ delayMs: 500, failures: 1, tell: false });
    p.onExit(100);
    expect(p.onExit(100).tell).toBe(true); // a new streak is told again
  });
});
