import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { Rng } from '../../../native/base/rng.js';
import { ExactKnn } from '../../../native/features/knn.js';
import { f16ToF32, f32ToF16 } from '../../../native/models/safetensors.js';
import { patchBank } from '../../../native/retrieve/patch-bank.js';
import { similarPatches } from '../../../native/retrieve/service.js';
import { Project } from '../../../native/store/project.js';
import { tmpDir } from '../../helpers/tmp.js';

describe('patch retrieval bank', () => {
  const root = tmpDir();

  it('finds the most similar patch of each frame as an exact search would, and keeps its bank until frames change', async () => {
    const project = Project.create(path.join(root, 'p'), { appVersion: 'test' });
    const mediaId = project.media.upsert({ path: '/v.mp4', bytes: 1, mtimeMs: 0, contentHash: null }).id;
    const model = project.models.insert({ name: 'm', sha256: 'b'.repeat(64), file: 'f', bytes: 1, manifest: {} });
    const grid = 3;
    const dim = 8;
    const n = grid * grid;
    const run = project.features.ensureRun({
      modelId: model.id,
      modelSha256: model.sha256,
      inputSize: 48,
      grid,
      dim,
      preprocessing: {},
      codeVersion: 'test',
    });
    const rng = new Rng(11);
    const tokens = new Map<number, Float32Array>();
    const put = (frameIdx: number) => {
      const t = Float32Array.from({ length: n * dim }, () => rng.normal());
      tokens.set(frameIdx, t);
      project.features.putMany(run.id, [
        { mediaId, frameIdx, cls: new Float32Array(dim), patches: Uint16Array.from(t, (x) => f32ToF16(x)) },
      ]);
    };
    for (let f = 0; f < 12; f++) put(f);
    const knn = new ExactKnn();

    // Exact reference in f32: the stored (f16) tokens, normalised; each other frame scored by its best patch.
    const stored = (f: number, p: number) => {
      const v = Float32Array.from((tokens.get(f) as Float32Array).subarray(p * dim, (p + 1) * dim), (x) =>
        f16ToF32(f32ToF16(x)),
      );
      const s = Math.hypot(...v);
      return v.map((x) => x / s);
    };
    const q = stored(3, 4);
    const score = (f: number) => {
      let m = Number.NEGATIVE_INFINITY;
      for (let p = 0; p < n; p++)
        m = Math.max(
          m,
          stored(f, p).reduce((a, x, d) => a + x * (q[d] as number), 0),
        );
      return m;
    };
    const ranked = [...tokens.keys()].filter((f) => f !== 3).sort((a, b) => score(b) - score(a));

    const r = await similarPatches(project, knn, { runId: run.id, mediaId, frameIdx: 3, patch: 4, k: 5 });
    expect(r.results.map((x) => x.frameIdx)).toEqual(ranked.slice(0, 5));
    for (const x of r.results) {
      // The reported patch is the frame's best, and the exact heat map agrees with the f16 search.
      expect(x.heat[x.patch]).toBeCloseTo(score(x.frameIdx), 5);
      expect(Math.abs(score(x.frameIdx) - x.sim)).toBeLessThan(3e-3);
    }

    // Kept while the run's frames are the same; read again when a frame is added.
    const bank = patchBank(project, run);
    expect(patchBank(project, run)).toBe(bank);
    expect(bank.frames).toHaveLength(12);
    put(12);
    const again = patchBank(project, run);
    expect(again).not.toBe(bank);
    expect(again.frames).toHaveLength(13);
    expect(again.bank.size).toBe(13 * n);

    // Over the memory budget, every s-th frame is searched, and the result says how many.
    const frameBytes = n * dim * 2;
    const small = await similarPatches(
      project,
      knn,
      { runId: run.id, mediaId, frameIdx: 3, patch: 4, k: 3 },
      5 * frameBytes,
    );
    expect(small.framesTotal).toBe(13);
    expect(small.framesSearched).toBe(5);
    const strided = patchBank(project, run, 5 * frameBytes);
    expect(strided.stride).toBe(3);
    expect(strided.frames.map((f) => f.frameIdx)).toEqual([0, 3, 6, 9, 12]);
    expect(small.results.every((x) => x.frameIdx % 3 === 0 && x.frameIdx !== 3)).toBe(true);
    expect(r.framesSearched).toBe(12);
    await knn.release();
    project.close();
  });
});
