/** Process entry of the CLI (kept apart from cli/main.ts so tests can call main() without exiting). */
import { main } from './cli/main.js';

/** Exit status when the output could not be delivered (the reader of a pipe went away): as a shell's 128 + SIGPIPE. */
const EXIT_BROKEN_PIPE = 141;

let broken = false;
for (const stream of [process.stdout, process.stderr]) {
  stream.on('error', (err: NodeJS.ErrnoException) => {
    // A reader that stops reading: nothing more can be written, and the exit status must say so.
    if (err.code === 'EPIPE') broken = true;
    else throw err;
  });
}

/** Resolves once everything written to `stream` so far has been handed to the operating system. */
function flushed(stream: NodeJS.WriteStream): Promise<void> {
  if (broken || stream.destroyed) return Promise.resolve();
  return new Promise((resolve) => stream.write('', () => resolve()));
}

const code = await main(process.argv.slice(2));
if (code >= 0) {
  // process.exit() right after writing to a pipe drops what the pipe has not taken yet: wait for it first.
  await flushed(process.stdout);
  await flushed(process.stderr);
  process.exit(broken && code === 0 ? EXIT_BROKEN_PIPE : code);
}
