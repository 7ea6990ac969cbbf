import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { classOfPath, confusionMatrix, vote } from '../../../native/classify/knn-classify.js';

describe('kNN classification', () => {
  it('takes the class from the first sub-folder under the root, and nothing outside or directly in it', () => {
    const root = path.join('/data', 'set');
    expect(classOfPath(root, '/data/set/cat/a.png')).toBe('cat');
    expect(classOfPath(root, '/data/set/cat/deep/b.png')).toBe('cat');
    expect(classOfPath(root, '/data/set/c.png')).toBeNull();
    expect(classOfPath(root, '/data/other/cat/a.png')).toBeNull();
    expect(classOfPath(root, '/data/settings/cat/a.png')).toBeNull();
  });

  it('votes with weights exp(sim / T), skipping the query itself when leaving one out', () => {
    // Query 0: neighbours 0 (itself, class 0), 1 (class 1, sim 0.9), 2 (class 0, sim 0.5), 3 (class 0, sim 0.45).
    const indices = Int32Array.from([0, 1, 2, 3]);
    const sims = Float32Array.from([1, 0.9, 0.5, 0.45]);
    const labels = Int32Array.from([0, 1, 0, 0]);
    // Without leave-one-out and T = 0.1: class 0 gets e^10 + e^5 + e^4.5, class 1 e^9.
    const plain = vote(indices, sims, 4, 4, labels, 2, 0.1);
    expect(plain.predicted[0]).toBe(0);
    // Leaving the query out (3 neighbours left): e^9 beats e^5 + e^4.5.
    const loo = vote(indices, sims, 4, 3, labels, 2, 0.1, Int32Array.from([0]));
    expect(loo.predicted[0]).toBe(1);
    const c1 = Math.exp(9);
    const c0 = Math.exp(5) + Math.exp(4.5);
    expect(loo.confidence[0]).toBeCloseTo(c1 / (c0 + c1), 5);
    // A high temperature flattens the weights: the two class-0 neighbours win.
    expect(vote(indices, sims, 4, 3, labels, 2, 100, Int32Array.from([0])).predicted[0]).toBe(0);
  });

  it('counts a confusion matrix with rows = truth', () => {
    expect(confusionMatrix(Int32Array.from([0, 0, 1, 2]), Int32Array.from([0, 1, 1, 0]), 3)).toEqual([
      [1, 1, 0],
      [0, 1, 0],
      [1, 0, 0],
    ]);
  });
});
