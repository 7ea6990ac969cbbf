/** The app's version, read once from the package.json that ships beside the code (source or build tree). */
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

function findPackageRoot(): { root: string; version: string } {
  let dir = path.dirname(fileURLToPath(import.meta.url));
  for (;;) {
    const file = path.join(dir, 'package.json');
    if (fs.existsSync(file)) {
      const pkg = JSON.parse(fs.readFileSync(file, 'utf8')) as { name?: string; version?: string };
      if (pkg.name === 'flaneur') return { root: dir, version: pkg.version ?? '0.0.0' };
    }
    const up = path.dirname(dir);
    if (up === dir) return { root: process.cwd(), version: '0.0.0' };
    dir = up;
  }
}

const found = findPackageRoot();
export const APP_VERSION = found.version;
/** The repository / installation root (holds package.json, build/, models/). */
export const APP_ROOT = found.root;
