/**
 * ShareLock's mechanics end to end on synthetic features: classes whose vision features are a fixed linear image of
 * their text feature plus noise. The head is trained (step graph, schedule, dropout, BatchNorm) on the text of seen
 * classes only; unseen classes are then named by their text alone: project their text features with the trained
 * projector (eval mode) and rank each image's classes by cosine similarity. Accuracy far above chance shows the
 * pieces fit; quality needs a real LLM and vision encoder.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Rng } from '../../../native/base/rng.js';
import { l2normalizeRows } from '../../../native/features/knn.js';
import { ModelSession, ort } from '../../../native/runtime/session.js';
import { TextRanker } from '../../../native/text/rank.js';
import {
  buildTextProjector,
  initShareLock,
  shareLockConfig,
  shareLockLrFactor,
} from '../../../native/text/sharelock.js';
import {
  buildShareLockStep,
  dropoutMasks,
  initialShareLockState,
  type ShareLockState,
  ShareLockStepRunner,
} from '../../../native/text/sharelock-step.js';

const TEXT = 16;
const VISION = 12;
const SEEN = 40;
const UNSEEN = 10;
const BATCH = 64;
const STEPS = 150;
const runtime = { provider: 'cpu' as const, threads: 1 };

describe('ShareLock zero-shot mechanics', () => {
  const rng = new Rng(11);
  const head = shareLockConfig(TEXT, VISION, { hidden: 64, layers: 3, dropout: 0.1 });
  const map = Float32Array.from({ length: VISION * TEXT }, () => rng.normal());
  const classText = Array.from({ length: SEEN + UNSEEN }, () =>
    Float32Array.from({ length: TEXT }, () => rng.normal()),
  );
  const image = (c: number) => {
    const t = classText[c] as Float32Array;
    return Float32Array.from({ length: VISION }, (_, i) => {
      let s = 0;
      for (let j = 0; j < TEXT; j++) s += (map[i * TEXT + j] as number) * (t[j] as number);
      return s / Math.sqrt(TEXT) + 0.3 * rng.normal();
    });
  };
  let state: ShareLockState;
  const losses: number[] = [];

  beforeAll(async () => {
    const graph = buildShareLockStep({ head, batch: BATCH });
    const runner = await ShareLockStepRunner.create(graph, runtime);
    const init = initShareLock(head, rng);
    state = initialShareLockState(graph, init.params, init.buffers);
    for (let s = 0; s < STEPS; s++) {
      const classes = Array.from({ length: BATCH }, () => rng.int(SEEN));
      const text = new Float32Array(BATCH * TEXT);
      const vision = new Float32Array(BATCH * VISION);
      classes.forEach((c, i) => {
        text.set(classText[c] as Float32Array, i * TEXT);
        vision.set(image(c), i * VISION);
      });
      const m = await runner.step(
        state,
        { text, vision, masks: dropoutMasks(head, BATCH, () => rng.next()) },
        { lr: 1e-2 * shareLockLrFactor(s, 10, STEPS), weightDecay: 1e-4, maxNorm: 1 },
      );
      losses.push(m.loss);
    }
    await runner.release();
  });

  it('lowers the training loss', () => {
    const mean = (xs: number[]) => xs.reduce((a, b) => a + b, 0) / xs.length;
    expect(mean(losses.slice(-20))).toBeLessThan(0.8 * mean(losses.slice(0, 20)));
  });

  describe('classifying images of unseen classes by their names alone', () => {
    let projector: ModelSession;
    afterAll(() => projector?.release());

    it('is far better than chance', async () => {
      projector = await ModelSession.create(
        buildTextProjector(head, new Map([...state.params, ...state.buffers])),
        runtime,
      );
      const unseen = classText.slice(SEEN);
      const res = await projector.run({
        text: new ort.Tensor('float32', Float32Array.from(unseen.flatMap((t) => [...t])), [UNSEEN, TEXT]),
      });
      const prototypes = (res.embedding as ort.Tensor).data as Float32Array;
      const ranker = new TextRanker(prototypes, VISION, runtime);
      let correct = 0;
      const n = 200;
      for (let k = 0; k < n; k++) {
        const c = k % UNSEEN;
        const v = l2normalizeRows(image(SEEN + c), VISION);
        const { indices } = await ranker.rank(v, 1);
        if (indices[0] === c) correct++;
      }
      await ranker.release();
      // chance is 10 % (the untrained head: 5.5 %; trained: 94 % when written)
      expect(correct / n).toBeGreaterThan(0.5);
    });
  });
});
