/** Process entry: `node ipc-host-main.js [--project DIR]` under Electron's utilityProcess or child_process.fork. */
import { parseArgs } from 'node:util';
import { currentPort, serveEngine } from './ipc-host.js';

const { values } = parseArgs({ options: { project: { type: 'string' }, home: { type: 'string' } }, strict: false });
await serveEngine(currentPort(), {
  ...(typeof values.project === 'string' ? { project: values.project } : {}),
  ...(typeof values.home === 'string' ? { home: values.home } : {}),
});
