/**
 * Typed errors that cross every transport. Each carries a stable code (for programs) and a message written for
 * the person using the app. `field` names the argument a validation error is about.
 */
export const ERROR_CODES = [
  'INVALID_ARGUMENT',
  'UNKNOWN_COMMAND',
  'NO_PROJECT',
  'NOT_A_PROJECT',
  'PROJECT_TOO_NEW',
  'PROJECT_EXISTS',
  'PROJECT_LOCKED',
  'NOT_FOUND',
  'PATH_REFUSED',
  'INVALID_MODEL',
  'UNSUPPORTED_MODEL',
  'UNREADABLE_MEDIA',
  'IO_ERROR',
  'DISK_FULL',
  'JOB_STATE',
  'UNAUTHORIZED',
  'INTERNAL',
] as const;

export type ErrorCode = (typeof ERROR_CODES)[number];

export interface SerializedError {
  code: ErrorCode;
  message: string;
  field?: string;
  details?: string;
}

export class FlaneurError extends Error {
  readonly code: ErrorCode;
  readonly field: string | undefined;
  readonly details: string | undefined;

  constructor(code: ErrorCode, message: string, options: { field?: string; details?: string; cause?: unknown } = {}) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause });
    this.name = 'FlaneurError';
    this.code = code;
    this.field = options.field;
    this.details = options.details;
  }

  toJSON(): SerializedError {
    const out: SerializedError = { code: this.code, message: this.message };
    if (this.field !== undefined) out.field = this.field;
    if (this.details !== undefined) out.details = this.details;
    return out;
  }
}

const DISK_FULL_CODES = new Set(['ENOSPC', 'EDQUOT', 'SQLITE_FULL']);

/** A write that failed because the disk (or the user's quota) is full: a file system error or SQLite's. */
export function isDiskFull(err: unknown): boolean {
  const code = (err as { code?: unknown } | null)?.code;
  return typeof code === 'string' && DISK_FULL_CODES.has(code);
}

/** The message a full disk gets wherever it happens: what was being written, and what to do. */
export function diskFullError(err: unknown): FlaneurError {
  const e = err as NodeJS.ErrnoException;
  const where = e.path
    ? ` while writing ${e.path}`
    : e.code === 'SQLITE_FULL'
      ? ' while writing the project database'
      : '';
  return new FlaneurError(
    'DISK_FULL',
    `The disk is full${where}. Free some space, then resume: everything finished before this is kept.`,
    { details: e.message, cause: err },
  );
}

/** Turns anything thrown into the wire form, keeping typed errors as they are and hiding nothing useful. */
export function serializeError(err: unknown): SerializedError {
  if (err instanceof FlaneurError) return err.toJSON();
  if (isDiskFull(err)) return diskFullError(err).toJSON();
  if (err instanceof Error) {
    const out: SerializedError = { code: 'INTERNAL', message: err.message || err.name };
    if (err.stack) out.details = err.stack;
    return out;
  }
  return { code: 'INTERNAL', message: String(err) };
}

export function isErrorCode(value: unknown): value is ErrorCode {
  return typeof value === 'string' && (ERROR_CODES as readonly string[]).includes(value);
}
