import fs from 'node:fs';
import zlib from 'node:zlib';
import { describe, expect, it } from 'vitest';
import { PropagationParams } from '../../../native/api/propagate.js';
import { scoreSequence } from '../../../native/metrics/video.js';
import { ContextSimilarity } from '../../../native/track/affinity.js';
import {
  DINO_PROTOCOL,
  gridLabels,
  LabelPropagator,
  labelsToMask,
  neighbourhoods,
  PROPAGATE_DEFAULTS,
  type PropagateOptions,
} from '../../../native/track/propagate.js';
import { fixturePath } from '../../helpers/fixtures.js';

interface Meta extends PropagateOptions {
  frames: number;
  width: number;
  height: number;
  gridH: number;
  gridW: number;
  inputWidth: number;
  inputHeight: number;
  dim: number;
  classes: number;
}

/**
 * The parity fixture: DINO's protocol at the top, Flaneur's options beyond it in `product/` (firstPrior 0.5) and
 * `reidentify/` (reidentify -0.05, the product default).
 */
function fixture(...sub: string[]) {
  const at = (name: string) => fixturePath('propagate', ...sub, name);
  const meta = JSON.parse(fs.readFileSync(at('meta.json'), 'utf8')) as Meta;
  const buf = fs.readFileSync(at('features.f32'));
  const feats = new Float32Array(buf.buffer.slice(buf.byteOffset, buf.byteOffset + buf.byteLength));
  const n = meta.width * meta.height;
  const masks = zlib.gunzipSync(fs.readFileSync(at('masks.u8.gz')));
  const ref = zlib.gunzipSync(fs.readFileSync(at('reference-masks.u8.gz')));
  const frame = (b: Buffer, t: number) => new Uint8Array(b.subarray(t * n, (t + 1) * n));
  const perFrame = meta.gridH * meta.gridW * meta.dim;
  return {
    meta,
    features: (t: number) => feats.slice(t * perFrame, (t + 1) * perFrame),
    truth: Array.from({ length: meta.frames }, (_, t) => frame(masks, t)),
    reference: Array.from({ length: meta.frames }, (_, t) => frame(ref, t)),
    score: JSON.parse(fs.readFileSync(at('reference.json'), 'utf8')) as {
      J: number;
      F: number;
      JF: number;
    },
  };
}

function propagateFixture(f: ReturnType<typeof fixture>, options: PropagateOptions): Uint8Array[] {
  const m = f.meta;
  const grid = { gridH: m.gridH, gridW: m.gridW };
  const first = f.truth[0] as Uint8Array;
  const p = new LabelPropagator(
    grid,
    m.dim,
    m.classes,
    f.features(0),
    gridLabels(first, m.width, m.height, grid, m.classes),
    options,
  );
  const out = [first];
  for (let t = 1; t < m.frames; t++)
    out.push(labelsToMask(p.step(f.features(t)), grid, m.classes, { ...m, width: m.width, height: m.height }));
  return out;
}

describe('label propagation (DINO protocol)', () => {
  for (const [mode, sub] of [
    ["DINO's protocol", []],
    ["Flaneur's first-frame prior (firstPrior 0.5)", ['product']],
    ["Flaneur's re-identification of lost objects (reidentify -0.05)", ['reidentify']],
  ] as const)
    it(`gives the reference J&F within 0.5 % relative on the same features and masks: ${mode}`, () => {
      const f = fixture(...sub);
      const m = f.meta;
      const pred = propagateFixture(f, m);
      const ours = scoreSequence(pred, f.truth, m.width, m.height, m.classes - 1);
      expect(Math.abs(ours.JF - f.score.JF) / f.score.JF).toBeLessThan(0.005);
      expect(Math.abs(ours.J - f.score.J) / f.score.J).toBeLessThan(0.005);
      // And pixel by pixel: the masks themselves agree almost everywhere.
      let same = 0;
      let all = 0;
      pred.forEach((p, t) => {
        const r = f.reference[t] as Uint8Array;
        for (let i = 0; i < p.length; i++) {
          if (p[i] === r[i]) same++;
          all++;
        }
      });
      expect(same / all).toBeGreaterThan(0.999);
    });

  it('each parameter changes the result (context, top-k, radius, temperature, first-frame radius and prior are used)', () => {
    const f = fixture();
    const base = propagateFixture(f, f.meta);
    const differs = (o: Partial<PropagateOptions>) => {
      const other = propagateFixture(f, { ...f.meta, ...o });
      return other.some((m, t) => m.some((v, i) => v !== (base[t] as Uint8Array)[i]));
    };
    expect(differs({ context: 0 })).toBe(true);
    expect(differs({ topk: 1 })).toBe(true);
    expect(differs({ radius: 0 })).toBe(true);
    expect(differs({ temperature: 10 })).toBe(true);
    expect(differs({ firstRadius: 0 })).toBe(true);
    expect(differs({ firstPrior: 0.5 })).toBe(true);
    expect(differs({ reidentify: 0 })).toBe(true);
  });

  it('keeps the first frame and at most `context` recent predictions', () => {
    const grid = { gridH: 2, gridW: 2 };
    const feats = Float32Array.from([1, 0, 0, 1, 1, 0, 0, 1]);
    const p = new LabelPropagator(grid, 2, 2, feats, Float32Array.from([1, 0, 1, 0, 0, 1, 0, 1]), {
      ...DINO_PROTOCOL,
      context: 2,
    });
    for (let i = 0; i < 5; i++) p.step(feats);
    expect(p.contextSize).toBe(3);
  });

  it('takes labels only from patches within the radius', () => {
    // A 1 × 5 strip: the target's patch 4 looks exactly like the source's patch 0, too far at radius 1.
    const grid = { gridH: 1, gridW: 5 };
    const src = Float32Array.from([1, 0, 0, 1, 0, 1, 0, 1, 0, 1]);
    const labels = Float32Array.from([0, 1, 1, 1, 1, 1, 0, 0, 0, 0]); // class 1 only at patch 0
    const tgt = Float32Array.from([0, 1, 0, 1, 0, 1, 0, 1, 1, 0]);
    const near = new LabelPropagator(grid, 2, 2, src, labels, { ...DINO_PROTOCOL, radius: 1, topk: 1 }).step(tgt);
    const far = new LabelPropagator(grid, 2, 2, src, labels, { ...DINO_PROTOCOL, radius: 0, topk: 1 }).step(tgt);
    expect(near[5 + 4]).toBe(0);
    expect(far[5 + 4]).toBeCloseTo(1, 6);
    expect(neighbourhoods(grid, 1)[4]).toEqual(Int32Array.from([3, 4]));
  });

  it("finds the first frame's patches anywhere with firstRadius 0, the recent frames' only within the radius", () => {
    // A 1 × 5 strip: the object (class 1) was at patch 0 in the first frame and is back at patch 4.
    const grid = { gridH: 1, gridW: 5 };
    const src = Float32Array.from([1, 0, 0, 1, 0, 1, 0, 1, 0, 1]);
    const labels = Float32Array.from([0, 1, 1, 1, 1, 1, 0, 0, 0, 0]);
    const tgt = Float32Array.from([0, 1, 0, 1, 0, 1, 0, 1, 1, 0]);
    const opts = { ...DINO_PROTOCOL, radius: 1, topk: 1 };
    expect(new LabelPropagator(grid, 2, 2, src, labels, opts).step(tgt)[5 + 4]).toBe(0);
    const p = new LabelPropagator(grid, 2, 2, src, labels, { ...opts, firstRadius: 0 });
    expect(p.step(tgt)[5 + 4]).toBeCloseTo(1, 6);
    // The next frame: the object at patch 0 again. The recent frame (where it was at 4) is out of reach, the first
    // frame is not.
    expect(p.step(src)[5]).toBeCloseTo(1, 6);
  });

  it('finds a lost object again where it comes back with reidentify, by more than the margin only', () => {
    // A 1 × 6 strip: the object (class 1) at patch 0 in the first frame, gone in the next, back at patch 5 after.
    const grid = { gridH: 1, gridW: 6 };
    const bg = [0, 1];
    const obj = [1, 0];
    const frame = (at: number) => Float32Array.from(Array.from({ length: 6 }, (_, i) => (i === at ? obj : bg)).flat());
    const labels = Float32Array.from([0, 1, 1, 1, 1, 1, 1, 0, 0, 0, 0, 0]);
    const opts = { ...DINO_PROTOCOL, context: 1, radius: 1, topk: 1 };
    const run = (reidentify: number | null) => {
      const p = new LabelPropagator(grid, 2, 2, frame(0), labels, { ...opts, reidentify });
      p.step(frame(-1));
      return p.step(frame(5));
    };
    // Without it, the object's first-frame patch is out of patch 5's reach and the recent frame holds none.
    expect(run(null)[6 + 5]).toBe(0);
    const found = run(0);
    expect(found[6 + 5]).toBe(1);
    expect(found[5]).toBe(0);
    expect(Array.from(found.subarray(6, 11))).toEqual([0, 0, 0, 0, 0]);
    // Cosine 1 to the lost object against 0 to the recent neighbourhood: a margin of 1 is not beaten.
    expect(run(1)[6 + 5]).toBe(0);
    // An object still in view is left to propagation: the same labels with and without.
    const inView = (reidentify: number | null) =>
      Array.from(new LabelPropagator(grid, 2, 2, frame(0), labels, { ...opts, reidentify }).step(frame(1)));
    expect(inView(0)).toEqual(inView(null));
  });

  it('re-identifies only patches the propagation gives to the background, not a look-alike object in view', () => {
    // Objects 1 (patch 0) and 2 (patch 3) look alike; object 1 leaves, object 2 stays at patch 3.
    const grid = { gridH: 1, gridW: 6 };
    const frame = (...at: number[]) =>
      Float32Array.from(Array.from({ length: 6 }, (_, i) => (at.includes(i) ? [1, 0] : [0, 1])).flat());
    const labels = Float32Array.from([0, 1, 1, 0, 1, 1, 1, 0, 0, 0, 0, 0, 0, 0, 0, 1, 0, 0]);
    // A margin of -0.5: object 2's patch (cosine 1 to object 1's first-frame patch) would pass it.
    const p = new LabelPropagator(grid, 2, 3, frame(0, 3), labels, {
      ...DINO_PROTOCOL,
      context: 1,
      radius: 1,
      topk: 1,
      reidentify: -0.5,
    });
    p.step(frame(3));
    const out = p.step(frame(3));
    expect(out[12 + 3]).toBeCloseTo(1, 6);
    expect(out[6 + 3]).toBe(0);
  });

  it("has API defaults equal to the product defaults, and DINO's protocol one flag away", () => {
    const parsed = PropagationParams.parse({});
    expect({
      context: parsed.context,
      topk: parsed.topk,
      radius: parsed.radius,
      temperature: parsed.temperature,
      firstRadius: parsed.firstRadius,
      firstPrior: parsed.firstPrior,
      reidentify: parsed.reidentify,
    }).toEqual({ firstRadius: undefined, firstPrior: 0, reidentify: null, ...PROPAGATE_DEFAULTS });
    expect(DINO_PROTOCOL).toEqual({ context: 7, topk: 5, radius: 12, temperature: 0.1 });
  });

  it('weights the top-k neighbours by softmax(cos / temperature)', () => {
    const grid = { gridH: 1, gridW: 2 };
    const a = Math.SQRT1_2;
    const src = Float32Array.from([1, 0, a, a]);
    const labels = Float32Array.from([1, 0, 0, 1]); // patch 0 class 0, patch 1 class 1
    const out = new LabelPropagator(grid, 2, 2, src, labels, { context: 0, topk: 2, radius: 0, temperature: 0.1 }).step(
      Float32Array.from([1, 0, 1, 0]),
    );
    const w1 = Math.exp(a / 0.1) / (Math.exp(1 / 0.1) + Math.exp(a / 0.1));
    expect(out[2]).toBeCloseTo(w1, 6);
    expect(out[0]).toBeCloseTo(1 - w1, 6);
  });
});

describe('label propagation with the cosines on the execution provider', () => {
  it('gives the same labels as the exact JS step (ContextSimilarity, one MatMul per frame)', async () => {
    const f = fixture();
    const m = f.meta;
    const grid = { gridH: m.gridH, gridW: m.gridW };
    const labels = gridLabels(f.truth[0] as Uint8Array, m.width, m.height, grid, m.classes);
    const js = new LabelPropagator(grid, m.dim, m.classes, f.features(0), labels, m);
    const ort = new LabelPropagator(grid, m.dim, m.classes, f.features(0), labels, m);
    const sim = new ContextSimilarity(m.dim);
    try {
      for (let t = 1; t < m.frames; t++) {
        const a = js.step(f.features(t));
        const b = await ort.stepWith(f.features(t), sim.run);
        let worst = 0;
        for (let i = 0; i < a.length; i++) worst = Math.max(worst, Math.abs((a[i] as number) - (b[i] as number)));
        expect(worst).toBeLessThan(1e-4);
      }
    } finally {
      await sim.release();
    }
  });
});
