/**
 * Run as a child process by tests: imports each model file given on the command line with the engine's importer and
 * prints one JSON line: per file the error code and message (or ok) and the milliseconds it took, and the process's
 * peak resident memory (Linux VmHWM) before the first import and after the last, so a test can bound both.
 */
import { FlaneurError } from '../../native/api/errors.js';
import { importViTFile } from '../../native/models/import-vit.js';
import { peakRss } from './memory.js';

const before = peakRss();
const results = process.argv.slice(2).map((file) => {
  const t0 = performance.now();
  try {
    importViTFile(file, { heads: 3 });
    return { file, code: 'OK', message: '', ms: performance.now() - t0 };
  } catch (err) {
    const code = err instanceof FlaneurError ? err.code : `THROWN ${(err as Error)?.name}`;
    return { file, code, message: String((err as Error)?.message), ms: performance.now() - t0 };
  }
});
console.log(JSON.stringify({ before, after: peakRss(), results }));
