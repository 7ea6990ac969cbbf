/**
 * The features.export job: .npy / .safetensors bodies as numpy and safetensors read them, and a stop part-way
 * (a cancel, a full disk) keeps what was written and recorded, so the next attempt writes only the rest.
 */
import fs from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ExportFeaturesArgs, encodeNpy, exportFeaturesJob } from '../../../native/features/export.js';
import { f16RowsToF32 } from '../../../native/features/knn.js';
import type { ItemResult, JobContext } from '../../../native/jobs/types.js';
import { DEFAULT_RUNTIME } from '../../../native/runtime/session.js';
import type { Project } from '../../../native/store/project.js';
import { readNpy } from '../../helpers/cli.js';
import { dispatchEngine, tourProjectWithModel } from '../../helpers/dispatch.js';
import { tmpDir } from '../../helpers/tmp.js';

describe('features.export', () => {
  const work = tmpDir();
  const { engine, call } = dispatchEngine();
  let project: Project;
  let runId = 0;
  afterAll(() => engine.close());

  beforeAll(async () => {
    const model = await tourProjectWithModel({ engine, call }, work);
    await call('features.extract', { modelId: model.id, size: 64 });
    await engine.requireProject().runner.idle();
    runId = (await call('features.runs', {}))[0]?.id ?? 0;
    project = engine.requireProject().project;
  }, 120_000);

  it('writes .npy headers numpy reads: 1-D shapes with a trailing comma, 64-byte aligned', () => {
    const v = Float32Array.from([1, 2, 3]);
    const npy = encodeNpy(v, [3]);
    expect(npy.toString('latin1', 10, 10 + npy.readUInt16LE(8))).toContain("'shape': (3,)");
    const file = path.join(work, 'v.npy');
    fs.writeFileSync(
      file,
      encodeNpy(
        Float32Array.from({ length: 24 }, (_, i) => i),
        [2, 3, 4],
      ),
    );
    expect(readNpy(file)).toEqual({ shape: [2, 3, 4], data: Float32Array.from({ length: 24 }, (_, i) => i) });
    expect(() => encodeNpy(v, [2, 2])).toThrow(/do not fill/);
  });

  it('resumes after a stop part-way: recorded frames are kept as written, the rest written, one manifest', async () => {
    const outDir = path.join(work, 'export');
    const args = ExportFeaturesArgs.parse({ runId, outDir, what: 'patches' });
    const committed: ItemResult[] = [];
    const context = (finished: Set<string>, stopAfter: number): JobContext<typeof args, { frames: number }> => {
      let checks = 0;
      return {
        jobId: 1,
        args,
        checkpoint: null,
        attempt: 1,
        project,
        runtime: DEFAULT_RUNTIME,
        signal: new AbortController().signal,
        phase: () => undefined,
        progress: () => undefined,
        commit: (items) => {
          committed.push(...items);
        },
        finishedKeys: () => finished,
        throwIfAborted: () => {
          if (++checks > stopAfter) throw new Error('stopped');
        },
      };
    };
    await expect(exportFeaturesJob.run(context(new Set(), 7))).rejects.toThrow('stopped');
    // The 7 frames written before the stop are recorded with their files, though no batch of 50 was full.
    expect(committed).toHaveLength(7);
    expect(fs.existsSync(path.join(outDir, 'manifest.json'))).toBe(false);
    const mediaId = project.media.list({}).items[0]?.id ?? 0;
    const first = path.join(outDir, String(mediaId), '000001.npy');
    const writtenAt = fs.statSync(first).mtimeMs;
    fs.writeFileSync(first, fs.readFileSync(first)); // same bytes, new mtime: proves the resume leaves it alone
    const touched = fs.statSync(first).mtimeMs;
    expect(touched).toBeGreaterThanOrEqual(writtenAt);

    await exportFeaturesJob.run(context(new Set(committed.map((c) => c.key)), Number.POSITIVE_INFINITY));
    expect(fs.statSync(first).mtimeMs).toBe(touched);
    expect(committed.map((c) => c.key)).toEqual([
      ...Array.from({ length: 20 }, (_, i) => `${mediaId}:${i}`),
      'manifest',
    ]);
    const manifest = JSON.parse(fs.readFileSync(path.join(outDir, 'manifest.json'), 'utf8')) as {
      frames: { frameIdx: number; files: string[]; grid: [number, number] }[];
    };
    expect(manifest.frames).toHaveLength(20);
    for (const f of manifest.frames) {
      const { shape, data } = readNpy(path.join(outDir, f.files[0] as string));
      expect(shape).toEqual([...f.grid, 192]);
      expect(data).toEqual(f16RowsToF32(project.features.get(runId, mediaId, f.frameIdx)?.patches as Uint16Array));
    }
    expect(fs.readdirSync(path.join(outDir, String(mediaId))).filter((n) => n.endsWith('.tmp'))).toEqual([]);
  });

  it('refuses a run without frames of the chosen items, naming what to do', async () => {
    const job = await call('features.export', { runId, outDir: path.join(work, 'none'), media: [999] });
    await engine.requireProject().runner.idle();
    const done = await call('jobs.get', { id: job.id });
    expect(done.state).toBe('failed');
    expect(done.error?.message).toMatch(/has no frames of these items: extract features first/);
  });
});
