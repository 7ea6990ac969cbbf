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
  /** Compute nodes on the CPU provider (Memcpy nodes excluded). */
  cpuNodes: NodePlacement[];
  /** Host<->device copies the runtime inserted (MemcpyToHost / MemcpyFromHost). */
  copies: NodePlacement[];
}

interface ProfileEvent {
  cat: string;
  name: string;
  args?: { op_name?: string; provider?: string };
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
    try {
      await session.run(feeds);
    } finally {
      session.endProfiling();
      await session.release();
    }
    const file = fs.readdirSync(dir).find((f) => f.endsWith('.json'));
    if (!file) throw new Error('onnxruntime wrote no profile');
    const events = JSON.parse(fs.readFileSync(path.join(dir, file), 'utf8')) as ProfileEvent[];
    const seen = new Map<string, NodePlacement>();
    for (const e of events) {
      if (e.cat !== 'Node' || !e.args?.provider || !e.name.endsWith('_kernel_time')) continue;
      const name = e.name.slice(0, -'_kernel_time'.length);
      seen.set(name, { name, op: e.args.op_name ?? '?', provider: e.args.provider });
    }
    const nodes = [...seen.values()];
    const isCopy = (n: NodePlacement) => n.op.startsWith('Memcpy');
    return {
      nodes,
      cpuNodes: nodes.filter((n) => n.provider === 'CPUExecutionProvider' && !isCopy(n)),
      copies: nodes.filter(isCopy),
    };
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
}
