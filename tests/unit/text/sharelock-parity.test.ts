/**
 * The ShareLock head's training step against PyTorch (tools/sharelock_reference.py, written from the official
 * code): loss and every gradient at the first step, then 5 steps of Adam with weight decay, the cosine schedule
 * with warm-up (first step at lr 0), clip_grad_norm_ 1 — losses, gradient norms, parameters and BatchNorm running
 * statistics after the 5 steps, with the reference's dropout masks.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Rng } from '../../../native/base/rng.js';
import { readOnnxNodeOps } from '../../../native/graph/protobuf.js';
import { encodeSafetensors, parseSafetensors, readSafetensors } from '../../../native/models/safetensors.js';
import { ModelSession, ort } from '../../../native/runtime/session.js';
import {
  buildTextProjector,
  encodeShareLockWeights,
  initShareLock,
  readShareLockWeights,
  shareLockConfig,
  shareLockLrFactor,
} from '../../../native/text/sharelock.js';
import {
  buildShareLockStep,
  dropoutMasks,
  initialShareLockState,
  type ShareLockMetrics,
  type ShareLockState,
  type ShareLockStepGraph,
  ShareLockStepRunner,
} from '../../../native/text/sharelock-step.js';
import { fixturePath, relErr } from '../../helpers/fixtures.js';

const file = readSafetensors(fixturePath('text', 'sharelock_tiny.safetensors'));
const meta = file.metadata;
const n = (k: string) => Number(meta[k]);
const list = (k: string) => JSON.parse(meta[k] as string) as number[];
const get = (name: string) => file.float32(name);
const TOL = 1e-4;

/**
 * A Linear's bias that feeds a BatchNorm has a gradient of exactly zero in real arithmetic (the batch mean removes
 * it); both sides compute rounding noise of ~1e-7 there, so it is compared absolutely, and after 5 steps — where
 * Adam's normalisation turns that noise into ±lr moves for elements whose decay term is as small — loosely.
 */
const beforeBatchNorm = (name: string) => /projection\.(0|4|8)\.bias$/.test(name);

const head = shareLockConfig(n('text'), n('vision'), {
  hidden: n('hidden'),
  layers: n('layers'),
  dropout: n('dropout'),
});
const B = n('batch');

function prefixed(prefix: string, names: Iterable<string>): Map<string, Float32Array> {
  return new Map([...names].map((k) => [k, get(`${prefix}.${k}`)]));
}

/** A runner (CPU, 1 thread) for `g` and a state from the fixture's tensors under `prefix`. */
async function startFrom(g: ShareLockStepGraph, prefix: string) {
  const runner = await ShareLockStepRunner.create(g, { provider: 'cpu', threads: 1 });
  const state = initialShareLockState(g, prefixed(prefix, g.params.keys()), prefixed(prefix, g.buffers.keys()));
  return { runner, state };
}

/** The reference's 5 steps (its batches, dropout masks and learning rates) on `runner` from `state`. */
async function referenceSteps(runner: ShareLockStepRunner, state: ShareLockState): Promise<ShareLockMetrics[]> {
  const metrics: ShareLockMetrics[] = [];
  for (let s = 0; s < n('steps'); s++) {
    const lr = n('lr') * shareLockLrFactor(s, n('warmup'), n('total'));
    expect(lr).toBeCloseTo(list('lrs')[s] as number, 12);
    const masks = Array.from({ length: head.layers - 1 }, (_, j) => get(`batch.${s}.mask.${j}`));
    metrics.push(
      await runner.step(
        state,
        { text: get(`batch.${s}.text`), vision: get(`batch.${s}.vision`), masks },
        { lr, weightDecay: n('wd'), maxNorm: 1 },
      ),
    );
  }
  return metrics;
}

describe('ShareLock head step parity with PyTorch', () => {
  let graph: ShareLockStepGraph;
  let runner: ShareLockStepRunner;
  let state: ShareLockState;
  const losses: number[] = [];
  const norms: number[] = [];
  let grads0: Map<string, Float32Array> | undefined;

  beforeAll(async () => {
    graph = buildShareLockStep({ head, batch: B, emitGradients: true });
    runner = await ShareLockStepRunner.create(graph, { provider: 'cpu', threads: 1 });
    state = initialShareLockState(graph, prefixed('init', graph.params.keys()), prefixed('init', graph.buffers.keys()));
    const metrics = await referenceSteps(runner, state);
    losses.push(...metrics.map((m) => m.loss));
    norms.push(...metrics.map((m) => m.gradNorm));
    grads0 = metrics[0]?.gradients;
  });
  afterAll(async () => {
    await runner?.release();
  });

  it('names its parameters as the official state dict does', () => {
    expect([...graph.params.keys()]).toEqual([
      'language_projector.projection.0.weight',
      'language_projector.projection.0.bias',
      'language_projector.projection.1.weight',
      'language_projector.projection.1.bias',
      'language_projector.projection.4.weight',
      'language_projector.projection.4.bias',
      'language_projector.projection.5.weight',
      'language_projector.projection.5.bias',
      'language_projector.projection.8.weight',
      'language_projector.projection.8.bias',
      'language_projector.projection.9.weight',
      'language_projector.projection.9.bias',
      'language_projector.projection.12.weight',
      'language_projector.projection.12.bias',
    ]);
  });

  it('computes the loss and every gradient of the first step', () => {
    expect(
      Math.abs((losses[0] as number) - (list('losses')[0] as number)) / (list('losses')[0] as number),
    ).toBeLessThan(TOL);
    expect(grads0?.size).toBe(graph.params.size);
    const scale = Math.max(...[...graph.params.keys()].map((k) => Math.max(...get(`grad0.${k}`).map(Math.abs))));
    for (const name of graph.params.keys()) {
      const ours = grads0?.get(name) as Float32Array;
      if (beforeBatchNorm(name)) {
        expect(Math.max(...ours.map(Math.abs)), name).toBeLessThan(TOL * scale);
        expect(Math.max(...get(`grad0.${name}`).map(Math.abs)), name).toBeLessThan(TOL * scale);
      } else expect(relErr(ours, get(`grad0.${name}`)), name).toBeLessThan(TOL);
    }
  });

  it('matches losses, clipped norms, parameters and running statistics over 5 Adam steps', () => {
    const refLosses = list('losses');
    const refNorms = list('grad_norms');
    const rel = (a: number, b: number) => Math.abs(a - b) / Math.abs(b);
    expect(Math.max(...losses.map((l, i) => rel(l, refLosses[i] as number)))).toBeLessThan(TOL);
    expect(Math.max(...norms.map((g, i) => rel(g, refNorms[i] as number)))).toBeLessThan(TOL);
    expect(losses).toHaveLength(refLosses.length);
    expect(state.step).toBe(5);
    for (const name of graph.params.keys()) {
      const init = get(`init.${name}`);
      const final = get(`final.${name}`);
      expect(relErr(state.params.get(name) as Float32Array, final), name).toBeLessThan(
        beforeBatchNorm(name) ? 1e-2 : TOL,
      );
      // the steps moved it (a frozen parameter would pass the check above only if the reference froze it too)
      expect(relErr(init, final), name).toBeGreaterThan(1e-3);
    }
    for (const name of graph.buffers.keys()) {
      expect(relErr(state.buffers.get(name) as Float32Array, get(`final.${name}`)), name).toBeLessThan(TOL);
    }
  });

  it('projects texts for inference with trained running statistics, as the official eval mode', async () => {
    // the reference's trained weights: ours differ in the BatchNorm-fed biases (see beforeBatchNorm), which
    // evaluation with running statistics does not cancel
    const weights = prefixed('final', [...graph.params.keys(), ...graph.buffers.keys()]);
    const session = await ModelSession.create(buildTextProjector(head, weights), { provider: 'cpu', threads: 1 });
    const res = await session.run({ text: new ort.Tensor('float32', get('eval.text'), [3, head.textDim]) });
    await session.release();
    expect(relErr((res.embedding as ort.Tensor).data as Float32Array, get('eval.embedding'))).toBeLessThan(TOL);
  });

  it('saves a trained head under the official names and reads it back unchanged', () => {
    const w = { config: head, tensors: new Map([...state.params, ...state.buffers]) };
    const buf = encodeShareLockWeights(w, { 'flaneur.language_model': 'llm:abc' });
    const back = readShareLockWeights(parseSafetensors(buf, 'head.safetensors'), 'head.safetensors');
    expect(back.config).toEqual(head);
    expect([...back.tensors.keys()].sort()).toEqual([...graph.params.keys(), ...graph.buffers.keys()].sort());
    for (const [k, v] of w.tensors) expect(back.tensors.get(k), k).toEqual(v);
    const bare = parseSafetensors(encodeSafetensors({ x: { shape: [1], data: Float32Array.of(1) } }), 'x.safetensors');
    expect(() => readShareLockWeights(bare, 'x.safetensors')).toThrow(/not a ShareLock head saved by Flaneur/);
  });

  it('initialises as PyTorch does and draws dropout masks of the right rate', () => {
    const { params, buffers } = initShareLock(head, new Rng(3));
    const w0 = params.get('language_projector.projection.0.weight') as Float32Array;
    const bound = 1 / Math.sqrt(head.textDim);
    expect(Math.max(...w0.map(Math.abs))).toBeLessThanOrEqual(bound);
    expect(Math.max(...w0.map(Math.abs))).toBeGreaterThan(0.9 * bound);
    expect([...(params.get('language_projector.projection.1.weight') as Float32Array)].every((v) => v === 1)).toBe(
      true,
    );
    expect(
      [...(buffers.get('language_projector.projection.1.running_var') as Float32Array)].every((v) => v === 1),
    ).toBe(true);
    const rng = new Rng(5);
    const masks = dropoutMasks(head, 64, () => rng.next());
    expect(masks).toHaveLength(3);
    const dropped = masks.flatMap((m) => [...m]).filter((v) => v === 0).length / (3 * 64 * head.hidden);
    expect(dropped).toBeGreaterThan(0.17);
    expect(dropped).toBeLessThan(0.23);
    expect(new Set(masks.flatMap((m) => [...m]))).toEqual(new Set([0, Math.fround(1 / 0.8)]));
  });

  it('matches the reference with every Gemm split into row slices (the large-batch layout)', async () => {
    // gemm-rows.ts at full size splits only 4096-row products; here every Gemm, in uneven slices of ≤ 3 rows
    const split = buildShareLockStep({ head, batch: B, gemmRows: { rows: 3, minMacs: 0 } });
    const concats = (onnx: Uint8Array) => readOnnxNodeOps(onnx).filter((op) => op === 'Concat').length;
    expect(concats(split.onnx)).toBeGreaterThan(concats(graph.onnx) + 10);
    const { runner: r, state: st } = await startFrom(split, 'init');
    const refLosses = list('losses');
    const metrics = await referenceSteps(r, st);
    metrics.forEach((m, s) => {
      expect(Math.abs(m.loss - (refLosses[s] as number)) / (refLosses[s] as number)).toBeLessThan(TOL);
    });
    await r.release();
    for (const name of split.params.keys()) {
      const err = relErr(st.params.get(name) as Float32Array, get(`final.${name}`));
      expect(err, name).toBeLessThan(beforeBatchNorm(name) ? 1e-2 : TOL);
    }
  });

  it('accumulates gradients over micro-batches as Lightning does (loss / k, BatchNorm per micro-batch)', async () => {
    const k = n('accumulation');
    const acc = buildShareLockStep({ head, batch: B, accumulation: k });
    expect(acc.accumulateOnnx).not.toBeNull();
    const { runner: r, state: st } = await startFrom(acc, 'accum.init');
    const refLosses = list('accum_losses');
    const refNorms = list('accum_grad_norms');
    for (let s = 0; s < n('accum_steps'); s++) {
      const micro = Array.from({ length: k }, (_, i) => ({
        text: get(`accum.batch.${s}.${i}.text`),
        vision: get(`accum.batch.${s}.${i}.vision`),
        masks: Array.from({ length: head.layers - 1 }, (_, j) => get(`accum.batch.${s}.${i}.mask.${j}`)),
      }));
      const lr = n('lr') * shareLockLrFactor(s, n('warmup'), n('total'));
      const m = await r.step(st, micro, { lr, weightDecay: n('wd'), maxNorm: 1 });
      expect(Math.abs(m.loss - (refLosses[s] as number)) / (refLosses[s] as number)).toBeLessThan(TOL);
      expect(Math.abs(m.gradNorm - (refNorms[s] as number)) / (refNorms[s] as number)).toBeLessThan(TOL);
    }
    await r.release();
    expect(st.step).toBe(n('accum_steps'));
    await expect(r.step(st, [], { lr: 0, weightDecay: 0, maxNorm: 1 })).rejects.toThrow(/takes 2 micro-batch/);
    for (const name of acc.params.keys()) {
      const err = relErr(st.params.get(name) as Float32Array, get(`accum.final.${name}`));
      expect(err, name).toBeLessThan(beforeBatchNorm(name) ? 1e-2 : TOL);
    }
    for (const name of acc.buffers.keys()) {
      expect(relErr(st.buffers.get(name) as Float32Array, get(`accum.final.${name}`)), name).toBeLessThan(TOL);
    }
  });
});
