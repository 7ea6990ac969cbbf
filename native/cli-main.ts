/** Process entry of the CLI (kept apart from cli.ts so tests can call main() without exiting). */
import { main } from './cli.js';

const code = await main(process.argv.slice(2));
if (code >= 0) process.exit(code);
