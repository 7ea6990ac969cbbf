/** Process entry of the CLI (kept apart from cli/main.ts so tests can call main() without exiting). */
import { main } from './cli/main.js';

const code = await main(process.argv.slice(2));
if (code >= 0) process.exit(code);
