/** An engine over a throw-away home and project folder, for benchmarks and tools that drive it by commands. */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { pathToFileURL } from 'node:url';
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

const BUILT = path.join(import.meta.dirname, '..', 'build', 'native', 'engine');
const BUILT_ENGINE = pathToFileURL(path.join(BUILT, 'engine.js')).href;
const BUILT_HANDLERS = pathToFileURL(path.join(BUILT, 'handlers.js')).href;

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

/**
 * `built`: the engine of build/native (`npm run build:native`), as `npm start` and the CLI run it: its job workers and
 * their threads then load JavaScript, where from the sources each compiles TypeScript through tsx as it starts
 * (~0.1-0.2 CPU s a worker or thread, in the wall time of a job's first seconds). Its objects are the same classes
 * built, used through the sources' types.
 */
export async function tempEngine(prefix: string, o: { built?: boolean } = {}): Promise<TempEngine> {
  const work = fs.mkdtempSync(path.join(os.tmpdir(), prefix));
  const lib = o.built
    ? {
        Engine: ((await import(BUILT_ENGINE)) as typeof import('../native/engine/engine.js')).Engine,
        createEngineDispatcher: ((await import(BUILT_HANDLERS)) as typeof import('../native/engine/handlers.js'))
          .createEngineDispatcher,
      }
    : { Engine, createEngineDispatcher };
  const engine = new lib.Engine({ home: path.join(work, 'home') });
  const d = lib.createEngineDispatcher(engine);
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
