/**
 * The layering of DESIGN.md, enforced: no Electron outside electron/, no SQL outside native/store/, the renderer
 * imports only types from native/api, native/ never imports the shells.
 */
import fs from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { ROOT } from '../helpers/engine-process.js';

function sources(dir: string): string[] {
  const out: string[] = [];
  const walk = (d: string) => {
    for (const e of fs.readdirSync(d, { withFileTypes: true })) {
      const p = path.join(d, e.name);
      if (e.isDirectory()) walk(p);
      else if (/\.(c|m)?tsx?$/.test(e.name)) out.push(p);
    }
  };
  walk(path.join(ROOT, dir));
  return out;
}

interface Import {
  file: string;
  spec: string;
  typeOnly: boolean;
}

function imports(file: string): Import[] {
  const text = fs.readFileSync(file, 'utf8');
  const out: Import[] = [];
  const re =
    /(?:^|\n)\s*(import|export)\s+(type\s+)?(?:[^'";]*?\sfrom\s+)?['"]([^'"]+)['"]|require\(\s*['"]([^'"]+)['"]\s*\)|import\(\s*['"]([^'"]+)['"]\s*\)/g;
  for (const m of text.matchAll(re)) {
    const spec = m[3] ?? m[4] ?? m[5];
    if (spec) out.push({ file: path.relative(ROOT, file), spec, typeOnly: Boolean(m[2]) });
  }
  return out;
}

function resolveTarget(imp: Import): string | null {
  if (!imp.spec.startsWith('.')) return null;
  return path.relative(ROOT, path.resolve(ROOT, path.dirname(imp.file), imp.spec));
}

const NATIVE = sources('native');
const ELECTRON = sources('electron');
const RENDERER = sources('renderer/src');

describe('architecture', () => {
  it('finds the sources it checks', () => {
    expect(NATIVE.length).toBeGreaterThan(10);
    expect(ELECTRON.length).toBeGreaterThan(2);
    expect(RENDERER.length).toBeGreaterThan(5);
  });

  it('keeps Electron inside electron/', () => {
    const offenders = [...NATIVE, ...RENDERER]
      .flatMap(imports)
      .filter((i) => i.spec === 'electron' || i.spec.startsWith('electron/'));
    expect(offenders).toEqual([]);
  });

  it('keeps SQL and the SQLite driver inside native/store/', () => {
    const outside = [...NATIVE, ...ELECTRON, ...RENDERER].filter(
      (f) => !f.includes(`${path.sep}native${path.sep}store${path.sep}`),
    );
    const driver = outside.flatMap(imports).filter((i) => i.spec === 'better-sqlite3');
    expect(driver).toEqual([]);
    const sql =
      /\b(SELECT\s+[\w*(]|INSERT\s+INTO|UPDATE\s+\w+\s+SET|DELETE\s+FROM|CREATE\s+(TABLE|INDEX)|\.prepare\(|\.pragma\()/;
    const withSql = outside.filter((f) => sql.test(fs.readFileSync(f, 'utf8'))).map((f) => path.relative(ROOT, f));
    expect(withSql).toEqual([]);
  });

  it('lets the renderer import only types, and only from native/api', () => {
    const bad = RENDERER.flatMap(imports).filter((i) => {
      const target = resolveTarget(i);
      if (!target || target.startsWith('renderer')) return false;
      return !(i.typeOnly && target.startsWith(path.join('native', 'api')));
    });
    expect(bad).toEqual([]);
  });

  it('never imports the shells from native/', () => {
    const bad = NATIVE.flatMap(imports).filter((i) => {
      const target = resolveTarget(i);
      return target !== null && (target.startsWith('renderer') || target.startsWith('electron'));
    });
    expect(bad).toEqual([]);
  });

  it('keeps native/api free of engine internals (it is the contract)', () => {
    const api = NATIVE.filter((f) => f.includes(`${path.sep}native${path.sep}api${path.sep}`));
    const bad = api.flatMap(imports).filter((i) => {
      const target = resolveTarget(i);
      return target !== null && !target.startsWith(path.join('native', 'api'));
    });
    expect(bad).toEqual([]);
  });

  it('has a CONTEXT.md in every folder of native/', () => {
    const dirs = fs
      .readdirSync(path.join(ROOT, 'native'), { withFileTypes: true })
      .filter((d) => d.isDirectory())
      .map((d) => d.name);
    const missing = dirs.filter((d) => !fs.existsSync(path.join(ROOT, 'native', d, 'CONTEXT.md')));
    expect(missing).toEqual([]);
  });
});
