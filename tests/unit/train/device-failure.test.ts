/**
 * Which training errors send a GPU run to the CPU: the GPU's own (ONNX Runtime's errors, the simulated device loss)
 * do; a full disk, a folder that cannot be written, the database's errors, typed refusals and programming errors
 * do not (they fail the job with their reason).
 */
import { describe, expect, it } from 'vitest';
import { FlaneurError } from '../../../native/api/errors.js';
import { isDeviceFailure } from '../../../native/train/gpu-fallback.js';

const systemError = (code: string, message: string) => Object.assign(new Error(message), { code });

describe('isDeviceFailure', () => {
  it("counts the GPU's failures: ONNX Runtime's errors and the simulated device loss", () => {
    expect(isDeviceFailure(new Error('Non-zero status code returned while running MatMul node. Device lost'))).toBe(
      true,
    );
    expect(isDeviceFailure(new FlaneurError('INTERNAL', 'The GPU device was lost at step 3 (simulated).'))).toBe(true);
  });

  it('does not count the disk, the file system, the database, refusals or bugs', () => {
    expect(isDeviceFailure(systemError('ENOSPC', 'ENOSPC: no space left on device, write'))).toBe(false);
    expect(isDeviceFailure(systemError('EACCES', "EACCES: permission denied, open '/x'"))).toBe(false);
    expect(isDeviceFailure(systemError('SQLITE_FULL', 'database or disk is full'))).toBe(false);
    expect(isDeviceFailure(new FlaneurError('DISK_FULL', 'The disk is full.'))).toBe(false);
    expect(isDeviceFailure(new FlaneurError('IO_ERROR', 'Flaneur cannot write the checkpoint.'))).toBe(false);
    expect(isDeviceFailure(new TypeError("Cannot read properties of undefined (reading 'data')"))).toBe(false);
    expect(isDeviceFailure(new RangeError('Invalid typed array length: -1'))).toBe(false);
  });
});
