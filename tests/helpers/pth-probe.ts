/**
 * Run as a child process by tests: parses each PyTorch checkpoint given on the command line as the importer does
 * (read from the file at offsets) and reads every tensor it holds, printing one JSON line: per file the error code
 * and message (or OK) and the milliseconds it took, and the process's peak resident memory (Linux VmHWM) before the
 * first file and after the last, so a test can bound both.
 */
import path from 'node:path';
import { FlaneurError } from '../../native/api/errors.js';
import { parsePytorchCheckpoint } from '../../native/models/pytorch.js';
import { modelFileSource } from '../../native/models/safetensors.js';
import { peakRss } from './memory.js';

const before = peakRss();
/** Run with --expose-gc: garbage of one file is collected before the next, so the peak bounds each file's own cost. */
const gc = (globalThis as { gc?: () => void }).gc;
const results = process.argv.slice(2).map((file) => {
  gc?.();
  const t0 = performance.now();
  try {
    const source = path.basename(file);
    const ckpt = parsePytorchCheckpoint(modelFileSource(file, source), source);
    for (const name of ckpt.tensors.keys()) ckpt.float32(name);
    return { file, code: 'OK', message: '', ms: performance.now() - t0 };
  } catch (err) {
    const code = err instanceof FlaneurError ? err.code : `THROWN ${(err as Error)?.name}`;
    return { file, code, message: String((err as Error)?.message), ms: performance.now() - t0 };
  }
});
console.log(JSON.stringify({ before, after: peakRss(), results }));
