/**
 * Runs the engine in this process and serves the UI to a browser on 127.0.0.1. Used by `npm start` when no
 * Electron runtime is present, by `flaneur serve`, and by the end-to-end tests.
 */
import path from 'node:path';
import { startLoopStalls } from '../base/loop-stalls.js';
import { APP_ROOT } from '../base/version.js';
import { Engine } from '../engine/engine.js';
import { createEngineDispatcher } from '../engine/handlers.js';
import { defaultHome } from '../store/app-home.js';
import { type RunningServer, startServer } from './http-server.js';

export interface BrowserModeOptions {
  port?: number;
  /** Project folder to open; otherwise the most recent project, otherwise the demo project. */
  project?: string;
  home?: string;
  /** Print one JSON line (url, token, pid) instead of prose: for scripts and tests. */
  json?: boolean;
  staticDir?: string;
}

export async function runBrowserMode(
  options: BrowserModeOptions = {},
): Promise<{ engine: Engine; server: RunningServer }> {
  // `npm run bench -- responsiveness`: the engine's own record of its event loop's stalls (base/loop-stalls.ts).
  const stallReport = process.env.FLANEUR_LOOP_STALLS;
  if (stallReport) startLoopStalls({ file: stallReport, profile: process.env.FLANEUR_LOOP_PROFILE !== '0' });
  const engine = new Engine({ home: options.home ?? defaultHome() });
  let server: RunningServer;
  try {
    await engine.openStartupProject(options.project);
    server = await startServer({
      dispatcher: createEngineDispatcher(engine),
      subscribe: (l) => engine.on(l),
      resource: async (p) => engine.resource(p),
      staticDir: options.staticDir ?? path.join(APP_ROOT, 'build', 'renderer'),
      ...(options.port !== undefined ? { port: options.port } : {}),
    });
  } catch (err) {
    // A locked project or a port in use: the caller prints the message; nothing is left half-open.
    await engine.close();
    throw err;
  }

  let stopping = false;
  const stop = async (signal: string) => {
    if (stopping) return;
    stopping = true;
    if (!options.json) console.log(`\nFlaneur: ${signal}, stopping (running jobs will resume next time)…`);
    await server.close();
    await engine.close();
    process.exit(0);
  };
  process.once('SIGINT', () => void stop('SIGINT'));
  process.once('SIGTERM', () => void stop('SIGTERM'));

  const project = engine.projectInfo();
  if (options.json) {
    console.log(
      JSON.stringify({
        event: 'listening',
        url: server.url,
        token: server.token,
        pid: process.pid,
        project: project?.path ?? null,
      }),
    );
  } else {
    console.log(`Flaneur is running in browser mode. Open:\n\n  ${server.launchUrl}\n`);
    console.log(`Project: ${project ? `${project.name} (${project.path})` : 'none'}`);
    console.log('The address works only on this machine and only for this launch. Press Ctrl+C to stop.');
  }
  return { engine, server };
}
