import path from 'node:path';
import type { CallResponse, CommandArgs, CommandName, CommandResult, ModelInfo } from '../../native/api/contract.js';
import { Engine, type EngineOptions } from '../../native/engine/engine.js';
import { createEngineDispatcher } from '../../native/engine/handlers.js';
import { fixturePath } from './fixtures.js';
import { writeInitViT } from './models.js';
import { tmpDir } from './tmp.js';

/**
 * An in-process engine over a fresh home with its dispatcher, and a typed `call` that throws with the command's
 * name and the engine's message on failure, the error's `code` on it (`d.dispatch` gives the raw response).
 * `options.jobWorkers: false` runs jobs in this process (for a test that spies on what a job calls).
 */
export function dispatchEngine(options: Omit<EngineOptions, 'home'> = {}) {
  const engine = new Engine({ home: tmpDir(), ...options });
  const d = createEngineDispatcher(engine);
  const call = async <K extends CommandName>(c: K, a: CommandArgs<K>): Promise<CommandResult<K>> => {
    const r = (await d.dispatch(c, a)) as CallResponse<CommandResult<K>>;
    if (!r.ok) throw Object.assign(new Error(`${c}: ${r.error.message}`), { code: r.error.code });
    return r.result;
  };
  return { engine, d, call };
}

/** A typed call of the engine's dispatcher (as `dispatchEngine().call`). */
export type EngineCall = ReturnType<typeof dispatchEngine>['call'];

/**
 * The app's engine on an existing project (e.g. one the CLI made), for the commands the views call; closed after.
 */
export async function withProjectEngine<T>(dir: string, fn: (call: EngineCall, engine: Engine) => Promise<T>) {
  const { engine, call } = dispatchEngine();
  await call('project.open', { path: dir });
  try {
    return await fn(call, engine);
  } finally {
    await engine.close();
  }
}

/**
 * A new project at `work`/p holding the synthetic tour sampled at 1 fps, 240 px short side (ingested), and a ViT-Ti/16
 * at DINO's initialisation (written to `work`/vit.safetensors) registered as a model.
 */
export async function tourProjectWithModel(
  { engine, call }: Pick<ReturnType<typeof dispatchEngine>, 'engine' | 'call'>,
  work: string,
): Promise<ModelInfo> {
  await call('project.create', { path: path.join(work, 'p') });
  await call('library.add', {
    paths: [fixturePath('synthetic', 'tour.mp4')],
    sampling: { policy: 'fps', fps: 1 },
    frameSize: { mode: 'short-side', size: 240 },
  });
  await engine.requireProject().runner.idle();
  return call('models.import', { path: writeInitViT(path.join(work, 'vit.safetensors')) });
}

/** Polls job `id` every `pollMs` until it is done or failed; the phases it was seen in, in order. */
export async function phasesUntilEnded(
  call: ReturnType<typeof dispatchEngine>['call'],
  id: number,
  pollMs: number,
): Promise<Set<string>> {
  const phases = new Set<string>();
  while (!['done', 'failed'].includes((await call('jobs.get', { id })).state)) {
    phases.add((await call('jobs.get', { id })).progress.phase);
    await new Promise((r) => setTimeout(r, pollMs));
  }
  return phases;
}
