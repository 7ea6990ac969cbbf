/**
 * The ViT training graph as ONNX Runtime runs it (the DINO step of the parity fixture): GELU's forward stays one
 * fused kernel in the student too, and its output is computed again (fused) for the backward pass instead of kept;
 * so is a LayerNormalization's output that a Linear's weight gradient reads; q, k and v stay in the per-head layout
 * the attention products read.
 */
import fs from 'node:fs';
import path from 'node:path';
import * as ort from 'onnxruntime-node';
import { describe, expect, it } from 'vitest';
import { readField, readOnnxNodeOps } from '../../../native/graph/protobuf.js';
import { fixtureStepGraph } from '../../helpers/dino-fixture.js';
import { tmpDir } from '../../helpers/tmp.js';
import { readTrainFixture } from '../../helpers/train-fixture.js';

const dir = tmpDir('flaneur-training-graph-');

async function optimized(onnx: Uint8Array): Promise<Uint8Array> {
  const file = path.join(dir, 'optimized.onnx');
  const session = await ort.InferenceSession.create(onnx, {
    graphOptimizationLevel: 'all',
    optimizedModelFilePath: file,
  });
  await session.release();
  return fs.readFileSync(file);
}

const optimizedOps = async (onnx: Uint8Array) => readOnnxNodeOps(await optimized(onnx));

/** The nodes of a model: op type, inputs and outputs (ONNX NodeProto fields 4, 1, 2). */
function nodesOf(model: Uint8Array): { op: string; inputs: string[]; outputs: string[] }[] {
  const text = new TextDecoder();
  const graph = readField(model, 7)[0] ?? new Uint8Array();
  return readField(graph, 1).map((n) => ({
    op: text.decode(readField(n, 4)[0] ?? new Uint8Array()),
    inputs: readField(n, 1).map((b) => text.decode(b)),
    outputs: readField(n, 2).map((b) => text.decode(b)),
  }));
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

  it('keeps q, k and v in the per-head layout: ONNX Runtime does not move the head Transpose past their Split', async () => {
    const nodes = nodesOf(await optimized(graph.onnx));
    const readers = (v: string) => nodes.filter((n) => n.inputs.includes(v));
    const splits = nodes.filter((n) => n.op === 'Split' && n.outputs.length === 3);
    expect(splits.length).toBeGreaterThan(0);
    for (const split of splits) {
      // q, k, v (through their Reshape to [B, H, T, hd]) go to the products as they are, not through a Transpose
      // (which the backward pass would then repeat for each of them).
      const after = split.outputs.flatMap((o) =>
        readers(o).flatMap((r) => (r.op === 'Reshape' ? readers(r.outputs[0] ?? '') : [r])),
      );
      expect(after.length).toBeGreaterThan(0);
      expect(after.filter((r) => r.op === 'Transpose')).toEqual([]);
    }
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
