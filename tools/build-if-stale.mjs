#!/usr/bin/env node
// The `prepare` script: builds the app (`npm run build`) unless the build is newer than every source file.
// npm runs `prepare` after `npm ci`, and also the first time `npx flaneur` runs in this folder (npx links the
// folder into its cache and runs the folder's `prepare`): without this check that first command waited for a full
// build (tsc + vite, 10-20 s) of an app that was already built. `npm run build` always rebuilds.
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const root = path.dirname(path.dirname(fileURLToPath(import.meta.url)));
const SOURCES = ['native', 'electron', 'renderer'];
const CONFIG = ['package.json', 'package-lock.json', 'tsconfig.json', 'tsconfig.base.json', 'tsconfig.build.json'];
const OUTPUTS = ['build/native/cli-main.js', 'build/electron/main.js', 'build/renderer/index.html'];

/** The newest modification time under a folder (node_modules and dot-folders skipped). */
function newest(p) {
  let st;
  try {
    st = fs.statSync(p);
  } catch {
    return 0;
  }
  if (!st.isDirectory()) return st.mtimeMs;
  let t = 0;
  for (const e of fs.readdirSync(p, { withFileTypes: true })) {
    if (e.name === 'node_modules' || e.name.startsWith('.')) continue;
    t = Math.max(t, newest(path.join(p, e.name)));
  }
  return t;
}

/** The oldest build output, or 0 when one is missing. */
function built() {
  let t = Number.POSITIVE_INFINITY;
  for (const o of OUTPUTS) {
    try {
      t = Math.min(t, fs.statSync(path.join(root, o)).mtimeMs);
    } catch {
      return 0;
    }
  }
  return t;
}

export function isStale() {
  const sources = Math.max(...[...SOURCES, ...CONFIG].map((p) => newest(path.join(root, p))));
  return built() <= sources;
}

if (process.argv[1] && path.resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  if (!isStale() && process.env.FLANEUR_FORCE_BUILD !== '1') {
    console.error('flaneur: the build is up to date (`npm run build` rebuilds it).');
    process.exit(0);
  }
  const npm = process.env.npm_execpath;
  const r = npm
    ? spawnSync(process.execPath, [npm, 'run', 'build'], { cwd: root, stdio: 'inherit' })
    : spawnSync('npm', ['run', 'build'], { cwd: root, stdio: 'inherit', shell: process.platform === 'win32' });
  process.exit(r.status ?? 1);
}
