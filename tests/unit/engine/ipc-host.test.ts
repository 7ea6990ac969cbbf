import { fork } from 'node:child_process';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import type { EngineEvent } from '../../../native/api/contract.js';
import { createRpcClient, type HostMessage } from '../../../native/api/rpc.js';
import { ROOT } from '../../helpers/engine-process.js';
import { tmpDir } from '../../helpers/tmp.js';

/**
 * The desktop transport minus Electron: the same host entry the utility process runs, forked as a Node child with
 * an IPC channel, driven by the same RPC client the main process uses.
 */
describe('engine host over a message port', () => {
  const home = tmpDir();
  const child = fork(path.join(ROOT, 'native', 'engine', 'ipc-host-main.ts'), [], {
    execArgv: ['--import', 'tsx'],
    env: { ...process.env, FLANEUR_HOME: home },
    stdio: ['ignore', 'ignore', 'pipe', 'ipc'],
  });
  const events: EngineEvent[] = [];
  const rpc = createRpcClient(
    (req) => child.send(req),
    (e) => events.push(e),
  );
  const ready = new Promise<number>((resolve) => {
    child.on('message', (m: HostMessage) => {
      if (m.type === 'ready') resolve(m.pid);
      rpc.receive(m);
    });
  });
  afterAll(() => {
    child.kill('SIGKILL');
  });

  it('starts, opens the demo project, answers calls and validates them', async () => {
    expect(await ready).toBe(child.pid);
    const current = await rpc.call('project.current', {});
    expect(current).toMatchObject({ ok: true, result: { isDemo: true, name: 'Demo project' } });
    const bad = await rpc.call('jobs.get', { id: 'seven' });
    expect(bad).toMatchObject({ ok: false, error: { code: 'INVALID_ARGUMENT', field: 'id' } });
  });

  it('pushes events for changes', async () => {
    const res = await rpc.call('project.create', { path: path.join(home, 'second') });
    expect(res.ok).toBe(true);
    expect(events.some((e) => e.type === 'project.changed' && e.project?.name === 'second')).toBe(true);
  });

  it('shuts down cleanly when asked', async () => {
    const exited = new Promise<number | null>((resolve) => child.once('exit', resolve));
    child.send({ type: 'shutdown' });
    expect(await exited).toBe(0);
  });
});
