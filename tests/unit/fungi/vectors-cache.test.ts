import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { frameVectors } from '../../../native/fungi/vectors.js';
import { Project } from '../../../native/store/project.js';
import { tmpDir } from '../../helpers/tmp.js';

describe('frameVectors cache', () => {
  const root = tmpDir();

  it('reuses the vectors of a run while its frames stay the same, and rereads when frames come or go', async () => {
    const project = Project.create(path.join(root, 'p'), { appVersion: 'test' });
    const media = [1, 2].map(
      (i) => project.media.upsert({ path: `/data/v${i}.mp4`, bytes: 1, mtimeMs: 0, contentHash: null }).id,
    );
    const model = project.models.insert({
      name: 'm',
      sha256: 'a'.repeat(64),
      file: 'models/m.safetensors',
      bytes: 1,
      manifest: {},
    });
    const run = project.features.ensureRun({
      modelId: model.id,
      modelSha256: model.sha256,
      inputSize: 224,
      grid: 1,
      dim: 2,
      preprocessing: {},
      codeVersion: 'test',
    });
    const row = (mediaId: number, frameIdx: number, x: number, y: number) => ({
      mediaId,
      frameIdx,
      cls: Float32Array.of(x, y),
      patches: new Uint16Array(2),
    });
    project.features.putMany(run.id, [row(media[0] as number, 0, 3, 4), row(media[1] as number, 0, 0, 2)]);
    const source = { kind: 'embedding', runId: run.id } as const;

    const a = await frameVectors(project, source);
    expect(Array.from(a.vectors)).toEqual([0.6, 0.8, 0, 1].map((v) => Math.fround(v)));
    expect(await frameVectors(project, source)).toBe(a);

    // A new frame: read again, with it.
    project.features.putMany(run.id, [row(media[0] as number, 1, 1, 0)]);
    const b = await frameVectors(project, source);
    expect(b).not.toBe(a);
    expect(b.keys).toEqual([
      { mediaId: media[0], frameIdx: 0 },
      { mediaId: media[0], frameIdx: 1 },
      { mediaId: media[1], frameIdx: 0 },
    ]);

    // Removing a video and adding another frame keeps the count but changes the keys: read again.
    project.media.remove(media[1] as number);
    project.features.putMany(run.id, [row(media[0] as number, 2, 0, 1)]);
    const c = await frameVectors(project, source);
    expect(c.keys.map((k) => k.frameIdx)).toEqual([0, 1, 2]);
    expect(c.keys.every((k) => k.mediaId === media[0])).toBe(true);
    project.close();
  });
});
