/**
 * The DINO step fixture (tools/train_reference.py): a tiny ViT and head, initial weights, one batch of global and
 * local crops, schedules, and PyTorch's gradients, losses and weights after 5 AdamW steps.
 */
import { buildDinoStep, type DinoStepConfig, type DinoStepGraph } from '../../native/train/dino-step.js';
import { initialState } from '../../native/train/step-runner.js';
import { readTrainFixture } from './train-fixture.js';

const fixture = readTrainFixture('dino_tiny');
const { meta, vit, get } = fixture;
const headMeta = JSON.parse(meta.head as string) as { in_dim: number; hidden: number; bottleneck: number; out: number };
const B = Number(meta.batch);
const G = Number(meta.global);
const L = Number(meta.local);
const lr = JSON.parse(meta.lr as string) as number[];
const wd = JSON.parse(meta.wd as string) as number[];
const ema = JSON.parse(meta.ema as string) as number[];

export { get };
export const { expectGradients, expectFinalWeights } = fixture;

/** The step graph of the fixture's configuration (`extra`: e.g. the Dora loss). */
export function fixtureStepGraph(extra: Partial<DinoStepConfig> = {}): DinoStepGraph {
  return buildDinoStep({
    vit,
    head: {
      inDim: headMeta.in_dim,
      hiddenDim: headMeta.hidden,
      bottleneckDim: headMeta.bottleneck,
      outDim: headMeta.out,
      layers: 3,
    },
    batch: B,
    globalSize: G,
    globalCrops: 2,
    localSize: L,
    localCrops: 2,
    emitGradients: true,
    ...extra,
  });
}

/** Crops per batch: 2 global, 2 local. */
export const fixtureShapes = { globals: [2 * B, 3, G, G], locals: [2 * B, 3, L, L] };

/** The fixture's initial state (weights and centre). */
export function fixtureState(graph: DinoStepGraph) {
  const init = new Map([...graph.params.keys()].map((name) => [name, get(`init.${name}`)] as const));
  const state = initialState(graph, init);
  state.center = get('center0').slice();
  return state;
}

export const fixtureBatch = () => ({ globals: get('globals'), locals: get('locals') });

export const scalars = (step: number) => ({
  lr: lr[step] as number,
  wd: wd[step] as number,
  ema: ema[step] as number,
  center_momentum: Number(meta.center_momentum),
  student_temp: Number(meta.student_temp),
  teacher_temp: Number(meta.teacher_temp),
  max_norm: Number(meta.max_norm),
});

/** The head's output size (for Dora's teacher logits). */
export const outDim = headMeta.out;
export const batchSize = B;
