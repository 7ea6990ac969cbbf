/**
 * On the CPU the step runner writes the next state into the host arrays it fed (AdamW, EMA, centre in place): the
 * state keeps its arrays, no second copy of the state exists between steps, and the numbers are those of a run that
 * reads the state back from the step's outputs.
 */
import * as ort from 'onnxruntime-node';
import { describe, expect, it } from 'vitest';
import { StepRunner } from '../../../native/train/step-runner.js';
import { fixtureBatch, fixtureShapes, fixtureState, fixtureStepGraph, scalars } from '../../helpers/dino-fixture.js';

describe('the CPU step runner', () => {
  it('updates the state in its own arrays, to the numbers of copied-out outputs', async () => {
    const graph = fixtureStepGraph();
    const runner = await StepRunner.create(graph, fixtureShapes, { provider: 'cpu', threads: 1 });
    try {
      const state = fixtureState(graph);
      const arrays = [...state.params.values(), ...state.teacher.values(), ...state.m.values(), ...state.v.values()];
      const center = state.center;
      const before = new Map([...state.params].map(([k, v]) => [k, v.slice()]));
      // The same step on a copy of the state in a plain session, its outputs allocated by the runtime.
      const plain = await ort.InferenceSession.create(graph.onnx, { intraOpNumThreads: 1 });
      const out = await plain.run(runner.stepFeeds(fixtureState(graph), fixtureBatch(), scalars(0)));
      await plain.release();
      await runner.step(state, fixtureBatch(), scalars(0));
      const after = [...state.params.values(), ...state.teacher.values(), ...state.m.values(), ...state.v.values()];
      expect(after).toHaveLength(arrays.length);
      for (const [i, a] of after.entries()) expect(a, `state array ${i}`).toBe(arrays[i]);
      expect(state.center).toBe(center);
      let changed = 0;
      for (const name of graph.trainable) {
        const p = state.params.get(name) as Float32Array;
        expect(p).toEqual(out[`p_next/${name}`]?.data);
        expect(state.m.get(name)).toEqual(out[`m_next/${name}`]?.data);
        expect(state.v.get(name)).toEqual(out[`v_next/${name}`]?.data);
        expect(state.teacher.get(name)).toEqual(out[`t_next/${name}`]?.data);
        if (p.some((x, i) => x !== (before.get(name) as Float32Array)[i])) changed++;
      }
      expect(state.center).toEqual(out.center_next?.data);
      expect(changed).toBeGreaterThan(0);
    } finally {
      await runner.release();
    }
  });
});
