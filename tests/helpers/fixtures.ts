import fs from 'node:fs';
import path from 'node:path';
import { parseSafetensors } from '../../native/models/safetensors.js';
import { ROOT } from './engine-process.js';

export const FIXTURES = path.join(ROOT, 'tests', 'fixtures');

export function fixturePath(...parts: string[]): string {
  return path.join(FIXTURES, ...parts);
}

/** All float tensors of a fixture file with their shapes. */
export function loadTensors(file: string): Map<string, { shape: number[]; data: Float32Array }> {
  const st = parseSafetensors(fs.readFileSync(file), path.basename(file));
  const out = new Map<string, { shape: number[]; data: Float32Array }>();
  for (const [name, t] of st.tensors) out.set(name, { shape: t.shape, data: st.float32(name) });
  return out;
}

export function maxAbsDiff(a: ArrayLike<number>, b: ArrayLike<number>): number {
  if (a.length !== b.length) throw new Error(`length ${a.length} vs ${b.length}`);
  let m = 0;
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs((a[i] as number) - (b[i] as number)));
  return m;
}

/** max |ours - ref| / max |ref| over a tensor. */
export function relErr(ours: Float32Array, ref: Float32Array): number {
  let scale = 0;
  for (const x of ref) scale = Math.max(scale, Math.abs(x));
  return maxAbsDiff(ours, ref) / Math.max(scale, 1e-12);
}
