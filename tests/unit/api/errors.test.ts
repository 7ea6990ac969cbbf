import fs from 'node:fs';
import { describe, expect, it } from 'vitest';
import { isDiskFull, serializeError } from '../../../native/api/errors.js';

/** A real "no space left on device" from the kernel: /dev/full refuses every write with ENOSPC. */
function enospc(): NodeJS.ErrnoException {
  try {
    fs.writeFileSync('/dev/full', 'x');
  } catch (err) {
    return err as NodeJS.ErrnoException;
  }
  throw new Error('/dev/full accepted a write');
}

describe('errors', () => {
  it('turns a full disk (ENOSPC, EDQUOT, SQLITE_FULL) into DISK_FULL with what was written and what to do', () => {
    const err = enospc();
    expect(err.code).toBe('ENOSPC');
    expect(isDiskFull(err)).toBe(true);
    const wire = serializeError(err);
    expect(wire.code).toBe('DISK_FULL');
    expect(wire.message).toBe(
      'The disk is full. Free some space, then resume: everything finished before this is kept.',
    );
    const withPath = Object.assign(new Error('no space'), { code: 'ENOSPC', path: '/p/cache/frames/3.rgb' });
    expect(serializeError(withPath).message).toMatch(/^The disk is full while writing \/p\/cache\/frames\/3\.rgb\./);
    expect(wire.details).toMatch(/ENOSPC/);
    const sqlite = Object.assign(new Error('database or disk is full'), { code: 'SQLITE_FULL' });
    expect(serializeError(sqlite).message).toMatch(/^The disk is full while writing the project database\./);
    expect(serializeError(Object.assign(new Error('quota'), { code: 'EDQUOT' })).code).toBe('DISK_FULL');
    expect(serializeError(Object.assign(new Error('nope'), { code: 'EACCES' })).code).toBe('INTERNAL');
  });
});
