/**
 * The DINO loss: cross-entropy between the centred, sharpened teacher distribution of each global crop and the
 * student distribution of every other crop, averaged over the pairs; and the centre's EMA update.
 */
import type { GraphBuilder } from '../graph/builder.js';
import type { Value } from '../graph/ir.js';
import { l2normalize } from './dino-head.js';

export interface DinoLossInputs {
  /** Student logits, crops stacked along the batch: [crops * B, K]. */
  student: Value;
  /** Teacher logits of the global crops: [globals * B, K] (no gradient flows into them). */
  teacher: Value;
  center: Value;
  studentTemp: Value;
  teacherTemp: Value;
  crops: number;
  globals: number;
  batch: number;
}

export function dinoLoss(b: GraphBuilder, o: DinoLossInputs): { loss: Value; teacherProbs: Value } {
  return b.scope('dino_loss', () => {
    const B = o.batch;
    const rows = (v: Value, i: number) => b.slice(v, [i * B], [(i + 1) * B], [0]);
    const teacherProbs = b.softmax(b.div(b.sub(o.teacher, o.center), o.teacherTemp), -1);
    const logp = b.logSoftmax(b.div(o.student, o.studentTemp), -1);
    let total: Value | null = null;
    let terms = 0;
    for (let t = 0; t < o.globals; t++) {
      const q = rows(teacherProbs, t);
      for (let v = 0; v < o.crops; v++) {
        if (v === t) continue;
        const ce = b.reduceMean(b.neg(b.reduceSum(b.mul(q, rows(logp, v)), [-1], false)), [0], false);
        total = total ? b.add(total, ce) : ce;
        terms++;
      }
    }
    if (!total) throw new Error('DINO loss needs at least one pair of crops');
    return { loss: b.div(total, b.constFloat(terms)), teacherProbs };
  });
}

/**
 * Dora's loss: the teacher sees each frame's unmasked view once ([B, K]); the student sees `masked` object-masked
 * views and `locals` local crops of the same frames (stacked [(masked + locals) * B, K], masked first).
 * L = 1/2 [mean_j CE(teacher, student(mask_j)) + mean_l CE(teacher, student(local_l))]; without local crops the
 * masked term alone.
 */
export function doraLoss(
  b: GraphBuilder,
  o: Omit<DinoLossInputs, 'crops' | 'globals'> & { masked: number; locals: number },
): { loss: Value; teacherProbs: Value } {
  return b.scope('dora_loss', () => {
    const B = o.batch;
    const rows = (v: Value, i: number) => b.slice(v, [i * B], [(i + 1) * B], [0]);
    const teacherProbs = b.softmax(b.div(b.sub(o.teacher, o.center), o.teacherTemp), -1);
    const logp = b.logSoftmax(b.div(o.student, o.studentTemp), -1);
    const meanCe = (from: number, count: number): Value => {
      let total: Value | null = null;
      for (let v = from; v < from + count; v++) {
        const ce = b.reduceMean(b.neg(b.reduceSum(b.mul(teacherProbs, rows(logp, v)), [-1], false)), [0], false);
        total = total ? b.add(total, ce) : ce;
      }
      if (!total) throw new Error('Dora loss needs at least one masked view');
      return b.div(total, b.constFloat(count));
    };
    const masked = meanCe(0, o.masked);
    const loss = o.locals > 0 ? b.mul(b.add(masked, meanCe(o.masked, o.locals)), b.constFloat(0.5)) : masked;
    return { loss, teacherProbs };
  });
}

/** center' = m * center + (1 - m) * mean over the batch of the teacher logits. */
export function updateCenter(b: GraphBuilder, center: Value, teacher: Value, momentum: Value): Value {
  const batchCenter = b.reduceMean(teacher, [0], true);
  return b.add(b.mul(center, momentum), b.mul(batchCenter, b.sub(b.constFloat(1), momentum)));
}

/** Mean entropy of the teacher's distributions (log K means uniform collapse). */
export function meanEntropy(b: GraphBuilder, probs: Value): Value {
  const ent = b.neg(b.reduceSum(b.mul(probs, b.log(b.add(probs, b.constFloat(1e-12)))), [-1], false));
  return b.reduceMean(ent, [0], false);
}

/**
 * KoLeo (DINOv2; Sablayrolles et al. 2019): -mean_i log(min_{j≠i} ||x_i - x_j||) over the L2-normalised rows of
 * `x` [n, D], which spreads a batch's features apart (against all-identical outputs at initialisation). The min is
 * a soft-min at temperature `tau` (a log-sum-exp made stable by a shift that is returned in `stop`: pass it to
 * `gradients` as a detached value; its gradient cancels exactly anyway).
 */
export function koleoLoss(b: GraphBuilder, x: Value, n: number, tau = 0.01): { loss: Value; stop: Value[] } {
  return b.scope('koleo', () => {
    const z = l2normalize(b, x);
    const gram = b.matmul(z, b.transpose(z, [1, 0]));
    const eye = new Float32Array(n * n);
    for (let i = 0; i < n; i++) eye[i * n + i] = 1;
    const d2 = b.relu(b.sub(b.constFloat(2), b.mul(gram, b.constFloat(2))));
    const name = `koleo_self_${n}`;
    const self =
      b.value(name) ??
      b.initializer(
        name,
        eye.map((v) => v * 1e3),
        [n, n],
      );
    const d = b.add(b.sqrt(b.add(d2, b.constFloat(1e-8))), self);
    const neg = b.div(d, b.constFloat(-tau));
    const shift = b.identity(b.reduceMax(neg, [1], true));
    const lse = b.add(shift, b.log(b.reduceSum(b.exp(b.sub(neg, shift)), [1], true)));
    const nearest = b.mul(lse, b.constFloat(-tau)); // [n, 1] ≈ min_j d_ij
    const loss = b.neg(b.reduceMean(b.log(b.add(nearest, b.constFloat(1e-8))), [0, 1], false));
    return { loss, stop: [shift] };
  });
}
