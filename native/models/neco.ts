/**
 * NeCo (Pariselli et al., ICLR 2025; vpariza/NeCo src/neco.py): the patch projection head and the patch
 * neighbour-consistency loss. For every (global crop g, other crop v) pair, both crops' patch embeddings are
 * RoI-aligned to their common box (7x7 = 49 patches), each aligned patch is compared (cosine) with the same 49
 * reference patches, the similarities are sorted by a differentiable sorting network, and the student's soft
 * permutation matrices are trained towards the teacher's by cross-entropy.
 *
 * As the official code (loss_mask 'all', sim_dist 'cosine', sort_net 'bitonic', diffsort's default 'cauchy' swap,
 * steepness 100 for student and teacher): the head is Linear-GELU-Linear-GELU-Linear, L2-normalised; RoI-align is
 * applied to the head's (normalised) embeddings; the per-pair loss is -mean over (image, reference, aligned patch) of
 * sum over sorted positions of q log p; pairs are averaged.
 */

import type { GraphBuilder } from '../graph/builder.js';
import { bitonicNetwork, diffSort, type SortingLayer, type SwapRelaxation } from '../graph/diffsort.js';
import type { Value } from '../graph/ir.js';
import { l2normalize } from './dino-head.js';
import type { ParamSource } from './vit.js';

export interface NecoHeadConfig {
  inDim: number;
  /** 2048 in the paper. */
  hiddenDim: number;
  /** 256 in the paper. */
  outDim: number;
  /** 3 in the paper. */
  layers: number;
}

/** The official names: projection_head.{0,2,4}.{weight,bias}. */
export function necoHeadParamShapes(c: NecoHeadConfig): Map<string, number[]> {
  const m = new Map<string, number[]>();
  const dims = [c.inDim, ...Array(Math.max(c.layers, 1) - 1).fill(c.hiddenDim), c.outDim];
  for (let i = 0; i < dims.length - 1; i++) {
    m.set(`projection_head.${2 * i}.weight`, [dims[i + 1] as number, dims[i] as number]);
    m.set(`projection_head.${2 * i}.bias`, [dims[i + 1] as number]);
  }
  return m;
}

export const isNecoHeadParam = (name: string): boolean => name.startsWith('projection_head.');

/** Head on patch tokens [..., D] -> L2-normalised embeddings [..., out]. */
export function buildNecoHead(b: GraphBuilder, c: NecoHeadConfig, param: ParamSource, x: Value): Value {
  return b.scope('projection_head', () => {
    const layers = Math.max(c.layers, 1);
    let h = x;
    for (let i = 0; i < layers; i++) {
      const w = param(`projection_head.${2 * i}.weight`);
      h = b.linear(h, b.transpose(w, [1, 0]), param(`projection_head.${2 * i}.bias`), `${2 * i}`);
      if (i < layers - 1) h = b.gelu(h);
    }
    return l2normalize(b, h);
  });
}

/** One (global crop, other crop) pair, in the official loop order (g outer, v inner, v != g). */
export interface NecoPair {
  g: number;
  v: number;
  /** v is a local crop. */
  local: boolean;
  /** Index among the pairs of the same kind (global-global or global-local). */
  slot: number;
}

export function necoPairs(globals: number, locals: number): NecoPair[] {
  const out: NecoPair[] = [];
  let gs = 0;
  let ls = 0;
  for (let g = 0; g < globals; g++)
    for (let v = 0; v < globals + locals; v++) {
      if (v === g) continue;
      const local = v >= globals;
      out.push({ g, v, local, slot: local ? ls++ : gs++ });
    }
  return out;
}

export interface NecoLossInputs {
  /** Student aligned patches [P, B, A, K] and the teacher's [P, B, A, K] (no gradient flows into the teacher). */
  student: Value;
  teacher: Value;
  /** Reference patches [P, B, A, K]. */
  references: Value;
  steepness: { student: number; teacher: number };
  relaxation?: SwapRelaxation;
  /** The sorting network on A wires (bitonicNetwork(A) by default). */
  network?: readonly SortingLayer[];
}

/** Soft permutations [P*B*A, A, A] of the cosine similarities of `aligned` to `references`. */
function permutations(
  b: GraphBuilder,
  aligned: Value,
  references: Value,
  net: readonly SortingLayer[],
  steepness: number,
  relaxation: SwapRelaxation | undefined,
): Value {
  const A = aligned.shape[2] as number;
  const sims = b.matmul(l2normalize(b, aligned), b.transpose(l2normalize(b, references), [0, 1, 3, 2]), 'cosine');
  const rows = b.reshape(sims, [-1, A]);
  return diffSort(b, rows, net, { steepness, relaxation: relaxation ?? 'cauchy' }).permutation;
}

/** The NeCo loss over all pairs: mean over pairs of -mean(sum over positions of q log p). */
export function necoLoss(b: GraphBuilder, o: NecoLossInputs): Value {
  return b.scope('neco_loss', () => {
    const A = o.student.shape[2] as number;
    const net = o.network ?? bitonicNetwork(A);
    const p = b.scope('student', () =>
      permutations(b, o.student, o.references, net, o.steepness.student, o.relaxation),
    );
    const q = b.scope('teacher', () =>
      permutations(b, o.teacher, o.references, net, o.steepness.teacher, o.relaxation),
    );
    const rows = p.shape[0] as number;
    const total = b.reduceSum(b.mul(q, b.log(p)), [0, 1, 2], false);
    return b.div(b.neg(total), b.constFloat(rows * A));
  });
}
