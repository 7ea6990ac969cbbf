/**
 * The shapes of the CLI's command table and of a parsed command line: what spec.ts declares and what a command's
 * code (commands/, session.ts) receives. Types only, imported by both, so that the table (which loads the
 * commands' code on demand) and the commands do not import each other.
 */
export type OptionValue = string | boolean | string[] | undefined;

export interface OptionSpec {
  type: 'string' | 'boolean';
  multiple?: boolean;
  short?: string;
  /** The value's placeholder in help (string options). */
  value?: string;
  help: string;
}

/** What a command's code receives: its positionals and options, already checked against its spec. */
export interface Invocation {
  command: CommandSpec;
  positionals: string[];
  values: Record<string, OptionValue>;
  json: boolean;
}

export type CommandRun = (inv: Invocation) => Promise<void>;

export interface CommandSpec {
  /** The words that name it: `segment apply`. */
  name: string;
  /** Positionals and options as shown in the usage line. */
  synopsis: string;
  summary: string;
  /** More lines for `flaneur <command> --help`. */
  details?: string;
  /** Positionals: at least `min`, at most `max` (Infinity when a list), called `label` in errors. */
  positionals: { min: number; max: number; label: string };
  options: Record<string, OptionSpec>;
  /** Options that must be given (each names its placeholder in the error). */
  required?: string[];
  /** Alternatives: `items` may be replaced by this boolean option (e.g. --all). */
  orAll?: boolean;
  load(): Promise<CommandRun>;
}
