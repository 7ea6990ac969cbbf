/**
 * Our DINO training step against PyTorch (tools/train_reference.py): gradients of every student parameter at the
 * first step, then parameters, teacher and centre after 5 AdamW steps with clipping and schedules.
 */
import { beforeAll, describe, expect, it } from 'vitest';
import type { DinoStepGraph } from '../../../native/train/dino-step.js';
import { StepRunner } from '../../../native/train/step-runner.js';
import {
  expectFinalWeights,
  expectGradients,
  fixtureBatch,
  fixtureShapes,
  fixtureState,
  fixtureStepGraph,
  get,
  scalars,
} from '../../helpers/dino-fixture.js';
import { maxAbsDiff } from '../../helpers/fixtures.js';

describe('DINO step parity with PyTorch', () => {
  let graph: DinoStepGraph;
  let runner: StepRunner;

  beforeAll(async () => {
    graph = fixtureStepGraph();
    runner = await StepRunner.create(graph, fixtureShapes, { provider: 'cpu', threads: 1 });
  });

  it('gives every parameter gradient within 1e-3 relative error, and 5 AdamW steps within 1e-4', async () => {
    const state = fixtureState(graph);
    const batch = fixtureBatch();
    const losses: number[] = [];
    const norms: number[] = [];
    let worstGrad = 0;
    for (let step = 0; step < 5; step++) {
      const m = await runner.step(state, batch, scalars(step));
      losses.push(m.loss);
      norms.push(m.gradNorm);
      if (step === 0) worstGrad = expectGradients(m.gradients, graph.trainable.length);
    }
    expect(maxAbsDiff(losses, get('losses'))).toBeLessThan(1e-4);
    expect(maxAbsDiff(norms, get('grad_norms')) / 12).toBeLessThan(1e-4);
    const worstParam = expectFinalWeights(graph.params.keys(), state);
    expect(maxAbsDiff(state.center, get('center_final'))).toBeLessThanOrEqual(1e-4);
    console.log(
      `worst gradient relative error ${worstGrad.toExponential(2)}, worst parameter abs error ${worstParam.toExponential(2)}`,
    );
  });
});
