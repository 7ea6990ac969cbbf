#!/usr/bin/env node
// Entry for `npx flaneur`: runs the compiled CLI (npm ci builds it through the prepare script).
import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';

const cli = new URL('../build/native/cli-main.js', import.meta.url);
if (!existsSync(fileURLToPath(cli))) {
  console.error('flaneur: the app is not built yet. Run `npm run build` (npm ci does it) and try again.');
  process.exit(1);
}
await import(cli.href);
