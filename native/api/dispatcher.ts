/**
 * One dispatcher for every transport: looks the command up, validates the arguments against the contract, runs the
 * handler, and returns the envelope. Errors never escape as exceptions; they come back typed.
 */
import type { z } from 'zod';
import {
  type CallResponse,
  type CommandName,
  type CommandResult,
  commands,
  isCommandName,
  type ParsedArgs,
} from './contract.js';
import { FlaneurError, serializeError } from './errors.js';

export type Handlers = {
  [K in CommandName]: (args: ParsedArgs<K>) => Promise<CommandResult<K>> | CommandResult<K>;
};

export interface Dispatcher {
  dispatch(command: unknown, args: unknown): Promise<CallResponse>;
}

/** Formats a zod issue path the way people read it: `items[2].name`. */
export function formatPath(path: readonly PropertyKey[]): string {
  let out = '';
  for (const part of path) {
    if (typeof part === 'number') out += `[${part}]`;
    else out += out ? `.${String(part)}` : String(part);
  }
  return out;
}

export function validationError(command: string, error: z.ZodError): FlaneurError {
  const issue = error.issues[0];
  if (!issue) return new FlaneurError('INVALID_ARGUMENT', `Invalid arguments for ${command}`);
  let field = formatPath(issue.path);
  let message = issue.message;
  if (issue.code === 'unrecognized_keys') {
    const key = issue.keys[0] ?? '';
    field = field ? `${field}.${key}` : key;
    message = 'unknown argument';
  }
  const where = field ? `"${field}"` : 'arguments';
  return new FlaneurError('INVALID_ARGUMENT', `${command}: invalid ${where}: ${message}`, {
    field: field || undefined,
    details: error.issues.map((i) => `${formatPath(i.path) || '(root)'}: ${i.message}`).join('\n'),
  });
}

export function createDispatcher(handlers: Handlers): Dispatcher {
  return {
    async dispatch(command, rawArgs) {
      try {
        if (!isCommandName(command)) {
          throw new FlaneurError('UNKNOWN_COMMAND', `Unknown command: ${String(command)}`);
        }
        const spec = commands[command];
        const parsed = spec.args.safeParse(rawArgs ?? {});
        if (!parsed.success) throw validationError(command, parsed.error);
        const handler = handlers[command] as (args: unknown) => unknown;
        const result = await handler(parsed.data);
        return { ok: true, result };
      } catch (err) {
        return { ok: false, error: serializeError(err) };
      }
    },
  };
}
