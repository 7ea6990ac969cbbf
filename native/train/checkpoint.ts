/**
 * Training checkpoints: the whole state (student, teacher, AdamW moments, centre) in one .safetensors file, and the
 * step, generator state and configuration in JSON beside it. Written to a temporary name, then renamed, so a crash
 * during a write leaves the previous checkpoint intact.
 */
import fs from 'node:fs';
import path from 'node:path';
import { encodeSafetensors, readSafetensors, type TensorToWrite } from '../models/safetensors.js';
import type { DinoStepGraph } from './dino-step.js';
import type { TrainState } from './step-runner.js';

export interface CheckpointMeta {
  step: number;
  rngState: number;
  savedAt: string;
  /** Objective-specific numbers (NeCo: the queue's filled count). */
  counters?: Record<string, number>;
}

/** What a checkpoint needs of a step graph: its parameters and which of them train. */
export type StepParams = Pick<DinoStepGraph, 'params' | 'trainable'>;

/** Tensors beside the state (NeCo: the queue), saved as `x.<name>`. */
export interface CheckpointExtras {
  tensors?: ReadonlyMap<string, TensorToWrite>;
  counters?: Record<string, number>;
}

export function saveCheckpoint(
  dir: string,
  graph: StepParams,
  state: TrainState,
  rngState: number,
  extras: CheckpointExtras = {},
): string {
  fs.mkdirSync(dir, { recursive: true });
  const tensors = new Map<string, TensorToWrite>();
  for (const [name, shape] of graph.params) {
    tensors.set(`p.${name}`, { shape, data: state.params.get(name) as Float32Array });
    tensors.set(`t.${name}`, { shape, data: state.teacher.get(name) as Float32Array });
  }
  for (const name of graph.trainable) {
    const shape = graph.params.get(name) as number[];
    tensors.set(`m.${name}`, { shape, data: state.m.get(name) as Float32Array });
    tensors.set(`v.${name}`, { shape, data: state.v.get(name) as Float32Array });
  }
  if (state.center.length > 0) tensors.set('center', { shape: [state.center.length], data: state.center });
  for (const [name, t] of extras.tensors ?? []) tensors.set(`x.${name}`, t);
  const base = path.join(dir, `step-${String(state.step).padStart(7, '0')}`);
  fs.writeFileSync(`${base}.safetensors.tmp`, encodeSafetensors(tensors, { step: String(state.step) }));
  const meta: CheckpointMeta = {
    step: state.step,
    rngState,
    savedAt: new Date().toISOString(),
    ...(extras.counters ? { counters: extras.counters } : {}),
  };
  fs.writeFileSync(`${base}.json.tmp`, JSON.stringify(meta));
  fs.renameSync(`${base}.safetensors.tmp`, `${base}.safetensors`);
  fs.renameSync(`${base}.json.tmp`, `${base}.json`);
  // Keep the two most recent checkpoints.
  const all = fs
    .readdirSync(dir)
    .filter((f) => /^step-\d+\.json$/.test(f))
    .sort();
  for (const old of all.slice(0, -2)) {
    fs.rmSync(path.join(dir, old), { force: true });
    fs.rmSync(path.join(dir, old.replace(/\.json$/, '.safetensors')), { force: true });
  }
  return `${base}.json`;
}

/** A checkpoint read back: the state, its meta, and the objective's tensors beside it (`x.<name>`). */
export interface LoadedCheckpoint {
  state: TrainState;
  meta: CheckpointMeta;
  extra: (name: string) => Float32Array;
}

export function loadCheckpoint(jsonFile: string, graph: StepParams): LoadedCheckpoint {
  const meta = JSON.parse(fs.readFileSync(jsonFile, 'utf8')) as CheckpointMeta;
  const st = readSafetensors(jsonFile.replace(/\.json$/, '.safetensors'));
  const state: TrainState = {
    step: meta.step,
    params: new Map([...graph.params.keys()].map((n) => [n, st.float32(`p.${n}`)])),
    teacher: new Map([...graph.params.keys()].map((n) => [n, st.float32(`t.${n}`)])),
    m: new Map(graph.trainable.map((n) => [n, st.float32(`m.${n}`)])),
    v: new Map(graph.trainable.map((n) => [n, st.float32(`v.${n}`)])),
    center: st.tensors.has('center') ? st.float32('center') : new Float32Array(0),
  };
  return { state, meta, extra: (name) => st.float32(`x.${name}`) };
}

/**
 * The marker beside an exported encoder that the engine has not registered as a model yet. A training job writes it
 * before it ends; the engine removes it once the model is in the registry, and registers the encoders still marked
 * when their project opens (an engine stopped between a job's end and the registration would otherwise leave the
 * trained encoder only on disk). A model the user removes later stays removed: its marker is gone.
 */
export function pendingRegistration(encoder: string): string {
  return `${encoder}.pending-registration`;
}

export function markPendingRegistration(encoder: string): void {
  fs.writeFileSync(pendingRegistration(encoder), '');
}
