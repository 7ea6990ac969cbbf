/**
 * What `features.extract` stores does not depend on where the float16 conversion runs: ONNX Runtime's Cast to
 * float16 (the graph's `patchesType: 'float16'`) gives the bits of toF16 (round to nearest even, subnormals,
 * overflow to infinity), and the job's stored patch tokens are toF16 of the float32 tokens the extractor computes from
 * the same stored frames. With FLANEUR_EXTRACT_TIMELINE the job also says where its time went (benches read it).
 */
import fs from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { FeatureExtractor, loadRegisteredModel, toF16 } from '../../../native/features/extract.js';
import type { ExtractTimelineJson } from '../../../native/features/extract-timeline.js';
import { GraphBuilder } from '../../../native/graph/builder.js';
import { toOnnx } from '../../../native/graph/onnx.js';
import { FrameStore } from '../../../native/media/frame-store.js';
import { ModelSession, ort } from '../../../native/runtime/session.js';
import { dispatchEngine } from '../../helpers/dispatch.js';
import { fixturePath } from '../../helpers/fixtures.js';
import { writeInitViT } from '../../helpers/models.js';
import { tmpDir } from '../../helpers/tmp.js';

/** float32 values from bit patterns: every exponent around float16's range, mantissas random, tied and exact. */
function hardFloats(): Float32Array {
  const bits = new Uint32Array(3 * 2 * 60 * 512);
  let seed = 12345;
  let n = 0;
  for (const kind of ['random', 'tie', 'exact'] as const)
    for (const sign of [0, 1])
      for (let e = 95; e < 155; e++)
        for (let k = 0; k < 512; k++) {
          seed = (Math.imul(seed, 1103515245) + 12345) >>> 0;
          const m = seed >>> 9;
          // 0x1000: exactly halfway between two float16 normals (subnormals have ties at other bits: random has them).
          const mant = kind === 'random' ? m : kind === 'tie' ? (m & ~0x1fff) | 0x1000 : m & ~0x1fff;
          bits[n++] = ((sign << 31) | (e << 23) | mant) >>> 0;
        }
  return new Float32Array(bits.buffer);
}

describe('float16 patch tokens', () => {
  const work = tmpDir();
  const { engine, call } = dispatchEngine();
  afterAll(() => engine.close());
  // The project both extraction tests use: the tour ingested (more frames than a batch: the decode-ahead thread
  // prepares them) and a model imported; each test extracts at an input size of its own (a run of its own).
  let modelId = 0;
  beforeAll(async () => {
    await call('project.create', { path: path.join(work, 'p') });
    await call('library.add', {
      paths: [fixturePath('synthetic', 'tour.mp4')],
      sampling: { policy: 'fps', fps: 1 },
      frameSize: { mode: 'short-side', size: 64 },
    });
    await engine.requireProject().runner.idle();
    modelId = (await call('models.import', { path: writeInitViT(path.join(work, 'vit.safetensors')) })).id;
  }, 120_000);
  const tour = async () => {
    const m = (await call('library.list', {})).items[0];
    if (!m?.frameWidth || !m.frameHeight) throw new Error('the tour was not ingested');
    return { ...m, frameWidth: m.frameWidth, frameHeight: m.frameHeight };
  };

  it("casts in the graph to toF16's bits, ties, subnormals and overflow included", async () => {
    const b = new GraphBuilder('cast');
    b.output(b.cast(b.input('x', 'float32', ['n']), 'float16'), 'y');
    const session = await ModelSession.create(toOnnx(b.build()));
    const x = hardFloats();
    const y = (await session.run({ x: new ort.Tensor('float32', x, [x.length]) })).y?.data as Uint16Array;
    await session.release();
    const want = toF16(x);
    let differ = 0;
    for (let i = 0; i < x.length; i++) if (y[i] !== want[i]) differ++;
    expect(differ).toBe(0);
    // The set reaches both ends: subnormal float16 results and infinities.
    expect(want.some((h) => h > 0 && h < 0x400)).toBe(true);
    expect(want.some((h) => (h & 0x7fff) === 0x7c00)).toBe(true);
  });

  it("stores the extractor's float32 tokens of the stored frames converted by toF16, bit for bit", async () => {
    const { project, runner } = engine.requireProject();
    const m = await tour();
    // More frames than a batch: the decode-ahead thread prepares them.
    expect(m.frameCount).toBeGreaterThan(4);
    await call('features.extract', { modelId, size: 64, batch: 4 });
    await runner.idle();
    const runId = (await call('features.runs', {})).find((r) => r.inputSize === 64)?.id ?? 0;

    const { model } = loadRegisteredModel(project, modelId);
    const ex = await FeatureExtractor.create(model, 64);
    try {
      const store = new FrameStore(project.cacheDir);
      const shape = ex.shapeOf(m.frameWidth, m.frameHeight);
      // The job's batches (4 frames in order): the same inputs to the same kernels.
      for (let at = 0; at < m.frameCount; at += 4) {
        const idx = [...Array(Math.min(4, m.frameCount - at)).keys()].map((k) => at + k);
        const feats = await ex.runAt(
          idx.map((i) => store.image(m.id, i, m.frameWidth, m.frameHeight)),
          shape,
        );
        idx.forEach((i, k) => {
          const stored = project.features.get(runId, m.id, i);
          expect(stored?.patches).toEqual(toF16(feats[k]?.patches as Float32Array));
          expect(stored?.cls).toEqual(feats[k]?.cls);
        });
      }
    } finally {
      await ex.release();
    }
  }, 120_000);

  it('writes its timeline where FLANEUR_EXTRACT_TIMELINE says: the moments in order, every frame in a batch', async () => {
    const file = path.join(work, 'timeline.json');
    const m = await tour();
    process.env.FLANEUR_EXTRACT_TIMELINE = file;
    try {
      await call('features.extract', { modelId, size: 48, batch: 4 });
      await engine.requireProject().runner.idle();
    } finally {
      delete process.env.FLANEUR_EXTRACT_TIMELINE;
    }
    const tl = JSON.parse(fs.readFileSync(file, 'utf8')) as ExtractTimelineJson;
    const order = ['job start', 'model loaded', 'preparation started', 'providers probed', 'session ready', 'job end'];
    expect(tl.marks.map((k) => k.at)).toEqual(order);
    const t = tl.marks.map((k) => k.t);
    expect(t).toEqual([...t].sort((a, b) => a - b));
    expect(tl.batches.reduce((a, b) => a + b.frames, 0)).toBe(m.frameCount);
    for (const b of tl.batches)
      for (const ms of [b.wait_ms, b.model_ms, b.store_ms]) expect(ms).toBeGreaterThanOrEqual(0);
  }, 120_000);
});
