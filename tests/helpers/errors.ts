import { FlaneurError } from '../../native/api/errors.js';

/** The FlaneurError `fn` throws (anything else thrown is rethrown; not throwing fails). */
export function errorOf(fn: () => unknown): FlaneurError {
  try {
    fn();
  } catch (err) {
    if (err instanceof FlaneurError) return err;
    throw err;
  }
  throw new Error('expected an error');
}
