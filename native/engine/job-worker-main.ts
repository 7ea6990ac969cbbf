/**
 * Process entry of a job worker (started by the engine's runner through jobs/worker-host.ts): runs the engine's job
 * handlers off the engine's event loop, with their own model sessions and database connection. Sessions it makes
 * are told to the engine (the Device view's "in use" line). The same process serves the engine's heavy commands
 * (command-tasks.ts) when it is the engine's task worker. Each role loads its own modules only, and lazily: a job
 * worker (argument 'job') loads the job handlers as it starts and the command tasks if a task ever comes; the task
 * worker ('task') the reverse — so that starting one does not compile and load every capability of the app.
 */
import { parentChannel, serveJobs } from '../jobs/worker-child.js';
import { onSessionCreated, type RuntimeSettings } from '../runtime/session.js';
import { Project } from '../store/project.js';

const channel = parentChannel();
onSessionCreated((info) => channel.send({ type: 'session', info }));

const loadHandlers = async () => (await import('./job-handlers.js')).JOB_HANDLERS;
const loadTasks = async () => {
  const { commandTasks, workerDeps } = await import('./command-tasks.js');
  const { deps, setRuntime } = workerDeps();
  return Object.fromEntries(
    Object.entries(commandTasks(deps)).map(([name, fn]) => [
      name,
      (project: () => Project, args: never, runtime: RuntimeSettings) => {
        setRuntime(runtime);
        return (fn as (p: () => Project, a: never) => unknown)(project, args);
      },
    ]),
  );
};
const role = process.argv[2] === 'task' ? 'task' : 'job';
/** Starts loading now (the role's own modules: a warm worker is ready for its first call); a failure shows at use. */
const now = <T>(load: () => Promise<T>): (() => Promise<T>) => {
  const loading = load();
  loading.catch(() => {});
  return () => loading;
};
// A job worker's jobs build model sessions, and a session waits for the providers' probe (once per process; WebGPU's
// in a child process, 0.3-0.4 s): a warm worker probes as it starts, so its first job does not wait for it.
if (role === 'job') {
  import('../runtime/providers.js').then((m) => m.probeProviders()).catch(() => {});
}
serveJobs({
  handlers: role === 'job' ? now(loadHandlers) : loadHandlers,
  tasks: role === 'task' ? now(loadTasks) : loadTasks,
  channel,
  attach: (dir) => Project.attach(dir),
});
