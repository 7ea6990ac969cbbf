import type { CallResponse, CommandArgs, CommandName, CommandResult } from '../../native/api/contract.js';
import { Engine } from '../../native/engine/engine.js';
import { createEngineDispatcher } from '../../native/engine/handlers.js';
import { tmpDir } from './tmp.js';

/**
 * An in-process engine over a fresh home with its dispatcher, and a typed `call` that throws with the command's
 * name and the engine's message on failure (`dispatch` gives the raw response, for error tests).
 */
export function dispatchEngine() {
  const engine = new Engine({ home: tmpDir() });
  const d = createEngineDispatcher(engine);
  const call = async <K extends CommandName>(c: K, a: CommandArgs<K>): Promise<CommandResult<K>> => {
    const r = (await d.dispatch(c, a)) as CallResponse<CommandResult<K>>;
    if (!r.ok) throw new Error(`${c}: ${r.error.message}`);
    return r.result;
  };
  return { engine, d, call };
}
