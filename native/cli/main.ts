/**
 * `flaneur` — headless commands over the same dispatcher as the UI. Parsing, help and argument errors load nothing
 * but this folder's table (spec.ts); a command's code, and the engine with it, is imported only when it runs.
 */
import { parseArgs } from 'node:util';
import { APP_VERSION } from '../base/version.js';
import { CliError } from './errors.js';
import {
  COMMANDS,
  type CommandSpec,
  commandHelp,
  findCommand,
  GLOBAL_OPTIONS,
  type OptionSpec,
  subcommandsOf,
  UsageError,
  usage,
} from './spec.js';

type ParseOptions = Record<string, { type: 'string' | 'boolean'; multiple?: boolean; short?: string }>;

function parseConfig(options: Record<string, OptionSpec>): ParseOptions {
  return Object.fromEntries(
    Object.entries(options).map(([k, o]) => [
      k,
      { type: o.type, ...(o.multiple ? { multiple: true } : {}), ...(o.short ? { short: o.short } : {}) },
    ]),
  );
}

/** Leading words before the first option: the command's name and then its positionals. */
function leadingWords(argv: readonly string[]): string[] {
  const words: string[] = [];
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i] as string;
    if (a === '--project') {
      i++;
      continue;
    }
    if (a.startsWith('-')) {
      if (a === '--json' || a === '--help' || a === '-h' || a.startsWith('--project=')) continue;
      break;
    }
    words.push(a);
  }
  return words;
}

/** Node's parseArgs messages, as one line naming the option. */
function parseMessage(err: Error, command: string): string {
  const m = err.message;
  const unknown = /Unknown option '([^']+)'/.exec(m);
  if (unknown) return `${command}: unknown option ${unknown[1]}`;
  const missing = /Option '([^']+?)(?: <value>)?' argument missing/.exec(m);
  if (missing) return `${command}: ${missing[1]?.replace(/^-\w, /, '')} needs a value`;
  const positional = /Unexpected argument '([^']+)'/.exec(m);
  if (positional) return `${command}: unexpected argument ${positional[1]}`;
  const strictValue = /Option '([^']+)' argument is ambiguous/.exec(m);
  if (strictValue) return `${command}: ${strictValue[1]} needs a value (use --opt=-value for one starting with -)`;
  return `${command}: ${m.split('\n')[0]}`;
}

export function parseInvocation(argv: readonly string[]):
  | { kind: 'help'; text: string; code: number }
  | {
      kind: 'run';
      command: CommandSpec;
      positionals: string[];
      values: Record<string, string | boolean | string[] | undefined>;
    } {
  // `flaneur --version` (or -v / -V, alone): the version on stdout, exit 0.
  if (argv.length === 1 && ['--version', '-v', '-V'].includes(argv[0] as string))
    return { kind: 'help', text: `flaneur ${APP_VERSION}`, code: 0 };
  const words = leadingWords(argv);
  const wantsHelp = argv.includes('--help') || argv.includes('-h');
  if (words.length === 0) return { kind: 'help', text: usage(APP_VERSION), code: wantsHelp ? 0 : 2 };
  const found = findCommand(words);
  if (!found) {
    const subs = subcommandsOf(words[0] as string);
    if (subs.length && wantsHelp) return { kind: 'help', text: subs.map((n) => `flaneur ${n}`).join('\n'), code: 0 };
    throw new UsageError(
      subs.length
        ? `${words.join(' ')}: unknown command; ${words[0]} takes ${subs.map((n) => n.split(' ')[1]).join(', ')}`
        : `unknown command: ${words[0]} (flaneur --help lists the commands)`,
    );
  }
  const { command, used } = found;
  if (wantsHelp) return { kind: 'help', text: commandHelp(command), code: 0 };
  // The command's words come first (after any global options); everything after them is its own.
  const rest = [...argv];
  for (const w of command.name.split(' ')) rest.splice(rest.indexOf(w), 1);
  let parsed: ReturnType<typeof parseArgs>;
  try {
    parsed = parseArgs({
      args: rest,
      allowPositionals: true,
      strict: true,
      options: parseConfig({ ...command.options, ...GLOBAL_OPTIONS }),
    });
  } catch (err) {
    throw new UsageError(parseMessage(err as Error, command.name), command.name);
  }
  void used;
  const values = parsed.values as Record<string, string | boolean | string[] | undefined>;
  const positionals = parsed.positionals;
  const p = command.positionals;
  const all = command.orAll && values.all === true;
  if (all && positionals.length) throw new UsageError(`${command.name}: give items or --all, not both`, command.name);
  if (positionals.length < p.min && !all) {
    throw new UsageError(
      `${command.name}: missing ${p.label}${command.orAll ? ' (or --all)' : ''} — usage: flaneur ${command.name} ${command.synopsis}`,
      command.name,
    );
  }
  if (positionals.length > p.max) {
    const extra = positionals.slice(p.max).join(' ');
    throw new UsageError(`${command.name}: unexpected argument ${extra}`, command.name);
  }
  for (const r of command.required ?? []) {
    const v = values[r];
    if (v === undefined || (Array.isArray(v) && v.length === 0)) {
      const o = command.options[r];
      throw new UsageError(`${command.name}: missing --${r}${o?.value ? ` ${o.value}` : ''}`, command.name);
    }
  }
  return { kind: 'run', command, positionals, values };
}

function report(err: unknown, json: boolean): number {
  const e =
    err instanceof UsageError
      ? new CliError(err.message, 'USAGE', 2)
      : err instanceof CliError
        ? err
        : // A typed engine error thrown outside a call (serve on a locked project): its code and sentence.
          new CliError((err as Error).message ?? String(err), String((err as { code?: unknown }).code ?? 'INTERNAL'));
  if (json) console.log(JSON.stringify({ ok: false, error: { code: e.code, message: e.message } }));
  const hint =
    err instanceof UsageError && !e.message.includes('--help') && !e.message.includes('usage:')
      ? ` (flaneur ${err.command ?? ''} --help)`.replace('  ', ' ')
      : '';
  console.error(`flaneur: ${e.message}${hint}`);
  return e.exitCode;
}

/** Runs one command line; resolves to the exit code (-1: keeps running, e.g. serve). */
export async function main(argv: string[]): Promise<number> {
  const json = argv.includes('--json');
  try {
    const inv = parseInvocation(argv);
    if (inv.kind === 'help') {
      (inv.code === 0 ? console.log : console.error)(inv.text);
      return inv.code;
    }
    // Node reads the command line as UTF-8: bytes that are not become U+FFFD, so such a path would be "not found",
    // or written under another name. Refuse it, saying why.
    const args = [...inv.positionals, ...Object.values(inv.values).flat()];
    const bad = args.find((a): a is string => typeof a === 'string' && a.includes('\uFFFD'));
    if (bad !== undefined) {
      throw new UsageError(
        `${inv.command.name}: the argument ${JSON.stringify(bad)} has a name that is not valid UTF-8 text; Flaneur cannot open or write it under that name. Rename it (e.g. with convmv) and try again.`,
        inv.command.name,
      );
    }
    const run = await inv.command.load();
    await run({ command: inv.command, positionals: inv.positionals, values: inv.values, json });
    return inv.command.name === 'serve' ? -1 : 0;
  } catch (err) {
    return report(err, json);
  }
}

export { COMMANDS };
