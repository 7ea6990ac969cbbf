/**
 * Checks applied in the main process before anything from the renderer reaches the engine: the sender must be our
 * own page, and the call must name a contract command with valid arguments. Pure functions, testable without the
 * Electron runtime.
 */
import { type CallResponse, commands, isCommandName } from '../native/api/contract.js';
import { validationError } from '../native/api/dispatcher.js';

export const APP_SCHEME = 'app';
export const APP_HOST = 'flaneur';
export const APP_ORIGIN = `${APP_SCHEME}://${APP_HOST}`;

/** True only for frames showing our bundled UI (not a page navigated to, not a data: or file: URL). */
export function isTrustedSenderUrl(url: string | undefined | null): boolean {
  if (!url) return false;
  try {
    const u = new URL(url);
    return u.protocol === `${APP_SCHEME}:` && u.host === APP_HOST;
  } catch {
    return false;
  }
}

/** Returns an error envelope when the call is malformed, or null when it may be forwarded. */
export function checkCall(payload: unknown): CallResponse | null {
  if (typeof payload !== 'object' || payload === null) {
    return { ok: false, error: { code: 'INVALID_ARGUMENT', message: 'A call must be an object {command, args}' } };
  }
  const { command, args } = payload as { command?: unknown; args?: unknown };
  if (!isCommandName(command)) {
    return { ok: false, error: { code: 'UNKNOWN_COMMAND', message: `Unknown command: ${String(command)}` } };
  }
  const parsed = commands[command].args.safeParse(args ?? {});
  if (!parsed.success) return { ok: false, error: validationError(command, parsed.error).toJSON() };
  return null;
}

/** Navigation inside the window is allowed only within our own origin. */
export function isAllowedNavigation(url: string): boolean {
  return isTrustedSenderUrl(url);
}

/** Resolves an app:// URL path to a file inside the renderer build, or null if it escapes it. */
export function resolveAppAsset(
  rendererDir: string,
  url: string,
  join: (...p: string[]) => string,
  sep: string,
): string | null {
  let pathname: string;
  try {
    const u = new URL(url);
    if (u.protocol !== `${APP_SCHEME}:` || u.host !== APP_HOST) return null;
    pathname = decodeURIComponent(u.pathname);
  } catch {
    return null;
  }
  if (pathname === '/' || pathname === '') pathname = '/index.html';
  const file = join(rendererDir, pathname);
  if (!file.startsWith(rendererDir + sep)) return null;
  return file;
}
