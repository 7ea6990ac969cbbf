/** An engine over a throw-away home and project folder, for benchmarks and tools that drive it by commands. */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { Engine } from '../native/engine/engine.js';
import { createEngineDispatcher } from '../native/engine/handlers.js';

export interface TempEngine {
  /** The temporary folder (home in home/, the project in p/). */
  work: string;
  engine: Engine;
  /** Runs a command; a failure throws with the command's name and the engine's message. */
  call(command: string, args: unknown): Promise<never>;
  /** Closes the engine and deletes the folder. */
  close(): Promise<void>;
}

export const TOUR = path.join(import.meta.dirname, '..', 'tests', 'fixtures', 'synthetic', 'tour.mp4');

/**
 * Adds the synthetic walking tour (tests/fixtures/synthetic/tour.mp4, or `file`, e.g. the tour looped) at 10 fps,
 * short side 240, and waits for it.
 */
export async function addTour(t: Pick<TempEngine, 'engine' | 'call'>, file = TOUR): Promise<void> {
  await t.call('library.add', {
    paths: [file],
    sampling: { policy: 'fps', fps: 10 },
    frameSize: { mode: 'short-side', size: 240 },
  });
  await t.engine.requireProject().runner.idle();
}

export async function tempEngine(prefix: string): Promise<TempEngine> {
  const work = fs.mkdtempSync(path.join(os.tmpdir(), prefix));
  const engine = new Engine({ home: path.join(work, 'home') });
  const d = createEngineDispatcher(engine);
  const call = async (c: string, a: unknown) => {
    const r = await d.dispatch(c, a);
    if (!r.ok) throw new Error(`${c}: ${r.error.message}`);
    return r.result as never;
  };
  await call('project.create', { path: path.join(work, 'p') });
  return {
    work,
    engine,
    call,
    close: async () => {
      await engine.close();
      fs.rmSync(work, { recursive: true, force: true });
    },
  };
}
