import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { checkCall, isAllowedNavigation, isTrustedSenderUrl, resolveAppAsset } from '../../../electron/ipc-guard.js';

describe('Electron IPC guard', () => {
  it('trusts only frames showing the bundled UI', () => {
    expect(isTrustedSenderUrl('app://flaneur/')).toBe(true);
    expect(isTrustedSenderUrl('app://flaneur/index.html#/jobs')).toBe(true);
    expect(isTrustedSenderUrl('https://flaneur/')).toBe(false);
    expect(isTrustedSenderUrl('app://evil/')).toBe(false);
    expect(isTrustedSenderUrl('file:///etc/passwd')).toBe(false);
    expect(isTrustedSenderUrl('data:text/html,hi')).toBe(false);
    expect(isTrustedSenderUrl(undefined)).toBe(false);
    expect(isTrustedSenderUrl('not a url')).toBe(false);
  });

  it('allows navigation only within the app', () => {
    expect(isAllowedNavigation('app://flaneur/#/jobs')).toBe(true);
    expect(isAllowedNavigation('https://example.com/')).toBe(false);
  });

  it('validates every call against the contract before forwarding', () => {
    expect(checkCall({ command: 'app.info', args: {} })).toBeNull();
    expect(checkCall('app.info')).toMatchObject({ ok: false, error: { code: 'INVALID_ARGUMENT' } });
    expect(checkCall({ command: 'shell.exec', args: {} })).toMatchObject({
      ok: false,
      error: { code: 'UNKNOWN_COMMAND' },
    });
    expect(checkCall({ command: 'project.open', args: { path: 42 } })).toMatchObject({
      ok: false,
      error: { code: 'INVALID_ARGUMENT', field: 'path' },
    });
    expect(checkCall({ command: '__proto__', args: {} })).toMatchObject({
      ok: false,
      error: { code: 'UNKNOWN_COMMAND' },
    });
  });

  it('serves only files inside the UI build', () => {
    const dir = '/opt/flaneur/build/renderer';
    expect(resolveAppAsset(dir, 'app://flaneur/', path.join, path.sep)).toBe(`${dir}/index.html`);
    expect(resolveAppAsset(dir, 'app://flaneur/assets/a.js', path.join, path.sep)).toBe(`${dir}/assets/a.js`);
    expect(resolveAppAsset(dir, 'app://flaneur/..%2F..%2Fetc%2Fpasswd', path.join, path.sep)).toBeNull();
    expect(resolveAppAsset(dir, 'app://other/index.html', path.join, path.sep)).toBeNull();
  });
});
