/**
 * Our NeCo step against PyTorch (tools/neco_reference.py, written from vpariza/NeCo): relative crop boxes, the
 * queue with the reference run's random draws, gradients of every parameter at the first step, then losses,
 * parameters and EMA teacher after 5 AdamW steps with two learning rates and the weight-decay schedule.
 */
import { beforeAll, describe, expect, it } from 'vitest';
import { necoPairs } from '../../../native/models/neco.js';
import { type Box, NecoQueue, type QueuePlan, relativeBoxes, roiBatch } from '../../../native/train/neco-data.js';
import {
  buildNecoStep,
  type NecoStepConfig,
  type NecoStepGraph,
  NecoStepRunner,
} from '../../../native/train/neco-step.js';
import { initialState } from '../../../native/train/step-runner.js';
import { maxAbsDiff } from '../../helpers/fixtures.js';
import { readTrainFixture } from '../../helpers/train-fixture.js';

const { meta, vit, tensor, get, expectGradients, expectFinalWeights } = readTrainFixture('neco_tiny');
const headMeta = JSON.parse(meta.head as string) as { in_dim: number; hidden: number; out: number };
const B = Number(meta.batch);
const G = Number(meta.global_crops);
const L = Number(meta.local_crops);
const GS = Number(meta.global);
const LS = Number(meta.local);
const Q = Number(meta.queue);
const ALIGN = Number(meta.align);
const STEPS = Number(meta.steps);
const sched = (k: string) => JSON.parse(meta[k] as string) as number[];

const config: NecoStepConfig = {
  vit,
  head: { inDim: headMeta.in_dim, hiddenDim: headMeta.hidden, outDim: headMeta.out, layers: 3 },
  batch: B,
  globalSize: GS,
  globalCrops: G,
  localSize: LS,
  localCrops: L,
  aligned: ALIGN,
  steepness: { student: Number(meta.steepness), teacher: Number(meta.steepness) },
  emitGradients: true,
};

describe('NeCo step parity with PyTorch', () => {
  let graph: NecoStepGraph;
  let runner: NecoStepRunner;
  const pairs = necoPairs(G, L);
  const V = G + L;

  beforeAll(async () => {
    graph = buildNecoStep(config);
    runner = await NecoStepRunner.create(graph, config, { provider: 'cpu', threads: 1 });
  });

  const boxesOf = (b: number) => {
    const crops = get('crops');
    const boxes: Box[] = [];
    for (let v = 0; v < V; v++) boxes.push(Array.from(crops.subarray((b * V + v) * 4, (b * V + v + 1) * 4)) as Box);
    return relativeBoxes(boxes, [...Array(G).fill(GS), ...Array(L).fill(LS)], G);
  };

  it('computes the relative box of every crop pair as calculate_bboxes', () => {
    const gc = get('bbox_gc');
    const all = get('bbox_all');
    for (let b = 0; b < B; b++) {
      const r = boxesOf(b);
      for (let g = 0; g < G; g++)
        for (let v = 0; v < V; v++) {
          const at = ((b * G + g) * V + v) * 4;
          expect(maxAbsDiff(r.gc[g]?.[v] as Box, gc.subarray(at, at + 4))).toBeLessThan(1e-4);
          const at2 = ((b * V + v) * G + g) * 4;
          expect(maxAbsDiff(r.all[v]?.[g] as Box, all.subarray(at2, at2 + 4))).toBeLessThan(1e-4);
        }
    }
  });

  it('gives every parameter gradient within 1e-3 relative error, and 5 AdamW steps within 1e-4', async () => {
    const init = new Map([...graph.params.keys()].map((n) => [n, get(`init.${n}`)]));
    const state = initialState(graph, init);
    const roi = roiBatch([0, 1].map(boxesOf), pairs, {
      patch: vit.patchSize,
      globalGrid: GS / vit.patchSize,
      localGrid: LS / vit.patchSize,
      aligned: ALIGN,
    });
    const queue = new NecoQueue(G, Q, headMeta.out);
    const Ng = graph.dims.globalPatches;
    const push = tensor('push_idx');
    const draw = tensor('draw_idx');
    const k = push.shape[2] as number;
    const n = draw.shape[2] as number;
    expect(queue.pushCount(B, Ng)).toBe(k);
    const losses: number[] = [];
    let worstGrad = 0;
    for (let step = 0; step < STEPS; step++) {
      const plan: QueuePlan = {
        push: Array.from({ length: G }, (_, g) =>
          Array.from(push.data.subarray((step * G + g) * k, (step * G + g + 1) * k)),
        ),
        draws: pairs.map((_, p) =>
          Array.from(draw.data.subarray((step * pairs.length + p) * n, (step * pairs.length + p + 1) * n)),
        ),
      };
      const refs = queue.references(plan, pairs, B, Ng);
      const m = await runner.step(
        state,
        { globals: get('globals'), locals: get('locals'), ...roi, ...refs },
        {
          lr: sched('lr_backbone')[step] as number,
          lrHead: sched('lr_head')[step] as number,
          wd: sched('wd')[step] as number,
          ema: sched('ema')[step] as number,
        },
      );
      queue.push(plan, m.teacherPatches, B, Ng);
      losses.push(m.loss);
      if (step === 0) worstGrad = expectGradients(m.gradients, graph.trainable.length);
    }
    expect(maxAbsDiff(losses, get('losses'))).toBeLessThan(1e-4);
    const worstParam = expectFinalWeights(graph.params.keys(), state);
    console.log(
      `NeCo parity: losses ${losses.map((l) => l.toFixed(5)).join(' ')}; worst gradient relative error ${worstGrad.toExponential(2)}, worst parameter abs error ${worstParam.toExponential(2)}`,
    );
  });
});
