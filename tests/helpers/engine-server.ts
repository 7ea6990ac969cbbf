import { Engine } from '../../native/engine/engine.js';
import { createEngineDispatcher } from '../../native/engine/handlers.js';
import { type RunningServer, startServer } from '../../native/server/http-server.js';
import { tmpDir } from './tmp.js';

/** An in-process engine over a fresh home behind the browser-mode server, serving `staticDir`; `close` ends both. */
export async function serveEngine(
  staticDir: string,
): Promise<{ engine: Engine; server: RunningServer; close(): Promise<void> }> {
  const engine = new Engine({ home: tmpDir() });
  const server = await startServer({
    dispatcher: createEngineDispatcher(engine),
    subscribe: (l) => engine.on(l),
    staticDir,
  });
  return {
    engine,
    server,
    close: async () => {
      await server.close();
      await engine.close();
    },
  };
}
