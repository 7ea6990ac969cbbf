/**
 * The ViT training graph as ONNX Runtime runs it (the DINO step of the parity fixture): GELU's forward stays one
 * fused kernel in the student too, and its output is computed again (fused) for the backward pass instead of kept.
 */
import fs from 'node:fs';
import path from 'node:path';
import * as ort from 'onnxruntime-node';
import { describe, expect, it } from 'vitest';
import { readOnnxNodeOps } from '../../../native/graph/protobuf.js';
import { fixtureStepGraph } from '../../helpers/dino-fixture.js';
import { tmpDir } from '../../helpers/tmp.js';

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
});
