import { describe, expect, it } from 'vitest';
import { RateMeter } from '../../../native/jobs/progress.js';

describe('RateMeter', () => {
  it('measures the rate over its window and derives the ETA', () => {
    let t = 0;
    const m = new RateMeter(5000, () => t);
    m.add(0);
    expect(m.rate()).toBeNull();
    t = 1000;
    m.add(50);
    expect(m.rate()).toBeCloseTo(50);
    expect(m.eta(50, 150)).toBeCloseTo(2);
    expect(m.eta(50, null)).toBeNull();
  });

  it('forgets samples older than the window, so a stall shows as a falling rate', () => {
    let t = 0;
    const m = new RateMeter(1000, () => t);
    for (let i = 0; i <= 10; i++) {
      t = i * 100;
      m.add(i * 10);
    }
    expect(m.rate()).toBeCloseTo(100);
    t = 3000;
    m.add(100); // no progress for two seconds
    expect(m.rate()).toBeLessThan(10);
  });
});
