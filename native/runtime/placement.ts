/**
 * Where the runtime really ran each node of a graph: one profiled run (onnxruntime's session profiling records the
 * execution provider of every kernel it executes). Nodes that a GPU provider cannot run fall back to the CPU
 * provider, with copies between host and device around them; this lists both.
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import * as ort from 'onnxruntime-node';
import type { ProviderName } from './providers.js';

export interface NodePlacement {
  /** The node's name in the optimised graph. */
  name: string;
  op: string;
  /** 'WebGpuExecutionProvider', 'CPUExecutionProvider', ... */
  provider: string;
}

export interface Placement {
  nodes: NodePlacement[];
  /**
   * Nodes on the CPU provider that touch tensor data: the fallbacks that cost. Excluded: Memcpy nodes (in
   * `copies`) and shape arithmetic (in `shapeNodes`).
   */
  cpuNodes: NodePlacement[];
  /**
   * Nodes on the CPU provider whose inputs and outputs are all int64 (Shape -> Gather -> Concat feeding an Expand or
   * Reshape): onnxruntime keeps such shape computations on the CPU on purpose; they move a few integers, no data.
   */
  shapeNodes: NodePlacement[];
  /** Host<->device copies the runtime inserted (MemcpyToHost / MemcpyFromHost). */
  copies: NodePlacement[];
  /** The outputs of the profiled run. */
  outputs: Record<string, ort.Tensor>;
}

interface ProfileEvent {
  cat: string;
  name: string;
  args?: {
    op_name?: string;
    provider?: string;
    input_type_shape?: Record<string, unknown>[];
    output_type_shape?: Record<string, unknown>[];
  };
}

function onlyInt64(e: ProfileEvent): boolean {
  const types = [...(e.args?.input_type_shape ?? []), ...(e.args?.output_type_shape ?? [])].flatMap(Object.keys);
  return types.length > 0 && types.every((t) => t === 'int64');
}

/** Runs `model` once on `provider` with profiling and reports where each node ran. */
export async function profilePlacement(
  model: Uint8Array,
  feeds: Record<string, ort.Tensor>,
  provider: ProviderName,
): Promise<Placement> {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'flaneur-profile-'));
  try {
    const session = await ort.InferenceSession.create(model, {
      executionProviders: [provider],
      graphOptimizationLevel: 'all',
      enableProfiling: true,
      profileFilePrefix: path.join(dir, 'profile'),
      logSeverityLevel: 3,
    });
    let outputs: Record<string, ort.Tensor>;
    try {
      outputs = await session.run(feeds);
    } finally {
      session.endProfiling();
      await session.release();
    }
    const file = fs.readdirSync(dir).find((f) => f.endsWith('.json'));
    if (!file) throw new Error('onnxruntime wrote no profile');
    const events = JSON.parse(fs.readFileSync(path.join(dir, file), 'utf8')) as ProfileEvent[];
    const seen = new Map<string, NodePlacement>();
    const shape = new Set<string>();
    for (const e of events) {
      if (e.cat !== 'Node' || !e.args?.provider || !e.name.endsWith('_kernel_time')) continue;
      const name = e.name.slice(0, -'_kernel_time'.length);
      seen.set(name, { name, op: e.args.op_name ?? '?', provider: e.args.provider });
      if (onlyInt64(e)) shape.add(name);
    }
    const nodes = [...seen.values()];
    const isCopy = (n: NodePlacement) => n.op.startsWith('Memcpy');
    const onCpu = nodes.filter((n) => n.provider === 'CPUExecutionProvider' && !isCopy(n));
    return {
      nodes,
      cpuNodes: onCpu.filter((n) => !shape.has(n.name)),
      shapeNodes: onCpu.filter((n) => shape.has(n.name)),
      copies: nodes.filter(isCopy),
      outputs,
    };
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
}
