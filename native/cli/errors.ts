/** The CLI's two kinds of failure (no engine imports: help and argument errors must stay fast). */

/** A mistake in how the command was called: one line naming it, exit code 2. */
export class UsageError extends Error {
  constructor(
    message: string,
    readonly command?: string,
  ) {
    super(message);
  }
}

/** A refusal by the engine or a failed job: exit code 1 with the typed error's sentence. */
export class CliError extends Error {
  constructor(
    message: string,
    readonly code: string,
    readonly exitCode = 1,
  ) {
    super(message);
  }
}
