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
  'PROJECT_DAMAGED',
  'DATABASE_BUSY',
  'NOT_FOUND',
  'PATH_REFUSED',
  'INVALID_MODEL',
  'UNSUPPORTED_MODEL',
  'UNREADABLE_MEDIA',
  'IO_ERROR',
  'NETWORK_UNAVAILABLE',
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

/** SQLite found a damaged page (the project's file was overwritten or truncated by something else). */
export function isCorruptDatabase(err: unknown): boolean {
  const code = (err as { code?: unknown } | null)?.code;
  return typeof code === 'string' && (code.startsWith('SQLITE_CORRUPT') || code === 'SQLITE_NOTADB');
}

/** SQLite waited its busy timeout for a lock another program holds on the project's database. */
export function isDatabaseBusy(err: unknown): boolean {
  const code = (err as { code?: unknown } | null)?.code;
  return typeof code === 'string' && (code.startsWith('SQLITE_BUSY') || code.startsWith('SQLITE_LOCKED'));
}

/** A read or write that met a damaged page after the project was opened: never answered with what could be read. */
export function corruptDatabaseError(err: unknown): FlaneurError {
  return new FlaneurError(
    'PROJECT_DAMAGED',
    'The project database is damaged: a part of it cannot be read correctly, so Flaneur stopped instead of showing wrong data. Use "Check database" in the Project view to see what is damaged and to restore the automatic backup or rebuild.',
    { details: (err as Error).message, cause: err },
  );
}

/** Another program kept the project's database locked for longer than Flaneur waits and retries. */
export function databaseBusyError(err: unknown): FlaneurError {
  return new FlaneurError(
    'DATABASE_BUSY',
    'Another program is keeping the project database (project.sqlite) locked. Close it — an SQLite browser, a backup or sync tool — then try again or resume the job; nothing was lost.',
    { details: (err as Error).message, cause: err },
  );
}

/** Turns anything thrown into the wire form, keeping typed errors as they are and hiding nothing useful. */
export function serializeError(err: unknown): SerializedError {
  if (err instanceof FlaneurError) return err.toJSON();
  if (isDiskFull(err)) return diskFullError(err).toJSON();
  if (isCorruptDatabase(err)) return corruptDatabaseError(err).toJSON();
  if (isDatabaseBusy(err)) return databaseBusyError(err).toJSON();
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
