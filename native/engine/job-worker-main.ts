/**
 * Process entry of a job worker (started by the engine's runner through jobs/worker-host.ts): runs the engine's job
 * handlers off the engine's event loop, with their own model sessions and database connection. Sessions it makes
 * are told to the engine (the Device view's "in use" line). The same process serves the engine's heavy commands
 * (command-tasks.ts) when it is the engine's task worker.
 */
import { parentChannel, serveJobs } from '../jobs/worker-child.js';
import { onSessionCreated, type RuntimeSettings } from '../runtime/session.js';
import { Project } from '../store/project.js';
import { commandTasks, workerDeps } from './command-tasks.js';
import { JOB_HANDLERS } from './job-handlers.js';

const channel = parentChannel();
onSessionCreated((info) => channel.send({ type: 'session', info }));
const { deps, setRuntime } = workerDeps();
const tasks = Object.fromEntries(
  Object.entries(commandTasks(deps)).map(([name, fn]) => [
    name,
    (project: () => Project, args: never, runtime: RuntimeSettings) => {
      setRuntime(runtime);
      return (fn as (p: () => Project, a: never) => unknown)(project, args);
    },
  ]),
);
serveJobs({ handlers: JOB_HANDLERS, tasks, channel, attach: (dir) => Project.attach(dir) });
