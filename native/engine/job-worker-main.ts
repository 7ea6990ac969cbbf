/**
 * Process entry of a job worker (started by the engine's runner through jobs/worker-host.ts): runs the engine's job
 * handlers off the engine's event loop, with their own model sessions and database connection. Sessions it makes
 * are told to the engine (the Device view's "in use" line).
 */
import { parentChannel, serveJobs } from '../jobs/worker-child.js';
import { onSessionCreated } from '../runtime/session.js';
import { Project } from '../store/project.js';
import { JOB_HANDLERS } from './job-handlers.js';

const channel = parentChannel();
onSessionCreated((info) => channel.send({ type: 'session', info }));
serveJobs({ handlers: JOB_HANDLERS, channel, attach: (dir) => Project.attach(dir) });
