/**
 * The ViT training graph as ONNX Runtime runs it (the DINO step of the parity fixture): GELU's forward stays one
 * fused kernel in the student too, and its output is computed again (fused) for the backward pass instead of kept;
 * so is a LayerNormalization's output that a Linear's weight gradient reads.
 */
import fs from 'node:fs';
import path from 'node:path';
import * as ort from 'onnxruntime-node';
import { describe, expect, it } from 'vitest';
import { readOnnxNodeOps } from '../../../native/graph/protobuf.js';
import { fixtureStepGraph } from '../../helpers/dino-fixture.js';
import { tmpDir } from '../../helpers/tmp.js';
import { readTrainFixture } from '../../helpers/train-fixture.js';

const dir = tmpDir('flaneur-training-graph-');

async function optimizedOps(onnx: Uint8Array): Promise<string[]> {
  const file = path.join(dir, 'optimized.onnx');
  const session = await ort.InferenceSession.create(onnx, {
    graphOptimizationLevel: 'all',
    optimizedModelFilePath: file,
  });
  await session.release();
  return readOnnxNodeOps(fs.readFileSync(file));
}

const count = (ops: string[], ...names: string[]) => ops.filter((o) => names.includes(o)).length;

describe('the DINO training graph', () => {
  const graph = fixtureStepGraph();

  it('runs every GELU forward, and every recomputation of one for the backward, as one fused Gelu kernel', async () => {
    const ops = await optimizedOps(graph.onnx);
    const erf = count(ops, 'Erf');
    const gelu = count(ops, 'com.microsoft:Gelu', 'com.microsoft:BiasGelu');
    // The only Erf left are the student GELUs' derivatives; every other Erf became part of a fused kernel, and
    // each student GELU has two (its forward and its recomputation), none merged into the other.
    expect(erf).toBeGreaterThan(0);
    expect(gelu).toBe(count(readOnnxNodeOps(graph.onnx), 'Erf') - erf);
    expect(gelu).toBeGreaterThanOrEqual(2 * erf);
  });

  it('computes a layer norm again for the weight gradient of the Linear after it, not merged into the forward', async () => {
    const plain = readOnnxNodeOps(graph.onnx);
    const ops = await optimizedOps(graph.onnx);
    const norms = (o: string[]) => count(o, 'LayerNormalization', 'com.microsoft:SkipLayerNormalization');
    // 2 norms a block and the final one in each forward pass (student: global and local crops; teacher: global),
    // and the student's 2 a block again in the backward of each of its passes; ORT keeps every one of them.
    const d = readTrainFixture('dino_tiny').vit.depth;
    expect(count(plain, 'LayerNormalization')).toBe(3 * (2 * d + 1) + 2 * 2 * d);
    expect(norms(ops)).toBe(3 * (2 * d + 1) + 2 * 2 * d);
  });
});
