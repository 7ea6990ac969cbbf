/**
 * Runs the engine behind a message port: Electron's utility process (process.parentPort) or a Node child process
 * (process.send). The desktop shell starts this file; it never imports Electron.
 */
import type { HostMessage, HostRequest } from '../api/rpc.js';
import { defaultHome } from '../store/app-home.js';
import { Engine } from './engine.js';
import { createEngineDispatcher } from './handlers.js';

export interface Port {
  onMessage(listener: (message: HostRequest) => void): void;
  post(message: HostMessage): void;
}

/** Electron's utility process exposes process.parentPort; declared here so native/ needs no Electron types. */
interface ParentPort {
  on(event: 'message', listener: (e: { data: unknown }) => void): void;
  postMessage(message: unknown): void;
}

export function currentPort(): Port {
  const parentPort = (process as unknown as { parentPort?: ParentPort }).parentPort;
  if (parentPort) {
    return {
      onMessage: (l) => parentPort.on('message', (e) => l(e.data as HostRequest)),
      post: (m) => parentPort.postMessage(m),
    };
  }
  if (process.send) {
    const send = process.send.bind(process);
    return { onMessage: (l) => process.on('message', (m) => l(m as HostRequest)), post: (m) => void send(m) };
  }
  throw new Error('ipc-host must run in an Electron utility process or a Node child process with IPC');
}

export async function serveEngine(port: Port, options: { home?: string; project?: string } = {}): Promise<Engine> {
  const engine = new Engine({ home: options.home ?? defaultHome() });
  const dispatcher = createEngineDispatcher(engine);
  engine.on((event) => port.post({ type: 'event', event }));
  let stopping = false;
  const shutdown = async () => {
    if (stopping) return;
    stopping = true;
    await engine.close();
    process.exit(0);
  };
  port.onMessage((msg) => {
    if (msg.type === 'shutdown') {
      void shutdown();
      return;
    }
    if (msg.type === 'resource') {
      let reply: HostMessage;
      try {
        const r = engine.resource(msg.path);
        reply = {
          type: 'resource',
          id: msg.id,
          contentType: r?.contentType ?? null,
          body: r ? new Uint8Array(r.body) : null,
        };
      } catch {
        reply = { type: 'resource', id: msg.id, contentType: null, body: null };
      }
      port.post(reply);
      return;
    }
    if (msg.type === 'call') {
      void dispatcher
        .dispatch(msg.command, msg.args)
        .then((response) => port.post({ type: 'result', id: msg.id, response }));
    }
  });
  process.once('SIGTERM', () => void shutdown());
  try {
    await engine.openStartupProject(options.project);
  } catch (err) {
    // The UI shows the project picker; the reason is kept for it in the recent list and this log.
    console.error(`flaneur engine: could not open the start-up project: ${(err as Error).message}`);
  }
  port.post({ type: 'ready', pid: process.pid });
  return engine;
}
