/**
 * The engine's contract: every command's name, argument schema and result schema, and every event. All transports
 * (Electron IPC, browser-mode HTTP/WebSocket, the CLI, tests) go through one dispatcher built from this table, so an
 * argument is validated the same way wherever it comes from. The renderer imports only the types from here.
 *
 * This is the index: each capability's schemas and commands are in its own file beside it (jobs.ts, train.ts, …);
 * every name is exported from here as before.
 */
import { z } from 'zod';
import { countCommands } from './count.js';
import { featuresCommands } from './features.js';
import { fungiCommands } from './fungi.js';
import { type ErrorInfo, JobInfo, jobsCommands } from './jobs.js';
import { libraryCommands } from './library.js';
import { mapCommands } from './map.js';
import { ModelInfo, modelsCommands } from './models.js';
import { ProjectInfo, projectCommands } from './project.js';
import { retrieveCommands } from './retrieve.js';
import { RuntimeInfo, runtimeCommands } from './runtime.js';
import { segmentCommands } from './segment.js';
import { textCommands } from './text.js';
import { textSearchCommands } from './text-search.js';
import { trackCommands } from './track.js';
import { trainCommands } from './train.js';
import { uncoCommands } from './unco.js';

export * from './count.js';
export * from './features.js';
export * from './fungi.js';
export * from './jobs.js';
export * from './library.js';
export * from './map.js';
export * from './models.js';
export * from './project.js';
export * from './retrieve.js';
export * from './runtime.js';
export * from './segment.js';
export * from './text.js';
export * from './text-search.js';
export * from './track.js';
export * from './train.js';
export * from './unco.js';

/**
 * The command table: every capability's table (`trainCommands` in train.ts, …). Add a command there, then a
 * handler in native/engine/handlers.ts.
 */
export const commands = {
  ...projectCommands,
  ...jobsCommands,
  ...modelsCommands,
  ...runtimeCommands,
  ...libraryCommands,
  ...featuresCommands,
  ...segmentCommands,
  ...fungiCommands,
  ...mapCommands,
  ...retrieveCommands,
  ...countCommands,
  ...trackCommands,
  ...trainCommands,
  ...textCommands,
  ...textSearchCommands,
  ...uncoCommands,
} as const;

export type CommandTable = typeof commands;
export type CommandName = keyof CommandTable;
export type CommandArgs<K extends CommandName> = z.input<CommandTable[K]['args']>;
export type ParsedArgs<K extends CommandName> = z.output<CommandTable[K]['args']>;
export type CommandResult<K extends CommandName> = z.output<CommandTable[K]['result']>;

export const COMMAND_NAMES = Object.keys(commands) as CommandName[];

export function isCommandName(name: unknown): name is CommandName {
  return typeof name === 'string' && Object.hasOwn(commands, name);
}

/** Events pushed from the engine to every connected UI. */
export const EngineEvent = z.discriminatedUnion('type', [
  z.object({ type: z.literal('job.updated'), job: JobInfo }),
  z.object({ type: z.literal('project.changed'), project: ProjectInfo.nullable() }),
  z.object({ type: z.literal('runtime.changed'), runtime: RuntimeInfo }),
  z.object({ type: z.literal('models.changed'), models: z.array(ModelInfo) }),
]);
export type EngineEvent = z.infer<typeof EngineEvent>;

/** The envelope every transport returns for a call. */
export type CallResponse<T = unknown> = { ok: true; result: T } | { ok: false; error: ErrorInfo };
