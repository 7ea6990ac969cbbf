/**
 * The layering of DESIGN.md, enforced: no Electron outside electron/, no SQL outside native/store/, the renderer
 * imports only types from native/api, native/ never imports the shells; each folder of native/ imports only the
 * folders its layer allows (VS Code's layer rules are the model: a new upward or sideways import fails here until it
 * is argued and listed), and no file of native/ takes part in an import circle.
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

/**
 * What each folder of native/ may import, besides itself and the ground floor (base/: the seeded generator and
 * shared numerics, the app's root and version; api/: the contract and typed errors), which every folder may import.
 * Floors, bottom up: base, api, graph → media, store, models, runtime → jobs → the capabilities (a capability
 * imports another only where listed: the feature store and FUNGI are what the analyses build on) → engine, server,
 * cli (composition). Type-only imports count: a layer that needs a type from above is a layer in the wrong place.
 */
const ALLOWED: Record<string, readonly string[]> = {
  base: [],
  api: [],
  graph: [],
  media: [],
  store: [],
  metrics: [],
  models: ['graph'],
  runtime: ['graph'],
  jobs: ['runtime', 'store'],
  ingest: ['jobs', 'media', 'store'],
  features: ['graph', 'jobs', 'media', 'models', 'runtime', 'store'],
  fungi: ['features', 'graph', 'jobs', 'media', 'models', 'runtime', 'store'],
  classify: ['features', 'fungi', 'store'],
  map: ['classify', 'features', 'fungi', 'jobs', 'store'],
  retrieve: ['features', 'fungi', 'store'],
  segment: ['features', 'jobs', 'media', 'store'],
  // count → track: the type of a frame's last-block attention (collage-objects.ts) and the attention extractor the
  // collage library is built with; count → train: UnCo is an objective of the one trainer (train-unco.ts).
  count: ['features', 'graph', 'jobs', 'media', 'models', 'runtime', 'store', 'track', 'train'],
  // track → segment: only the mask file reader (masks.ts) and the COCO writer (export.ts), shared file formats.
  track: ['features', 'graph', 'jobs', 'media', 'metrics', 'models', 'runtime', 'segment', 'store'],
  // train → text: the ShareLock objective's head, step graph and language model (train-sharelock.ts).
  train: ['graph', 'jobs', 'media', 'models', 'runtime', 'store', 'text'],
  text: ['graph', 'models', 'runtime'],
  engine: [
    'classify',
    'count',
    'features',
    'fungi',
    'ingest',
    'jobs',
    'map',
    'media',
    'models',
    'retrieve',
    'runtime',
    'segment',
    'store',
    'text',
    'track',
    'train',
  ],
  server: ['engine', 'store'],
  cli: ['engine', 'features', 'runtime', 'server', 'store'],
};
/** The entry points at native/'s root and what they may import. */
const ROOT_ALLOWED = ['cli'];
const GROUND = ['base', 'api'];

/** The folder of native/ a path (relative to the repository) is in, '' for native/'s root, null outside native/. */
function nativeFolder(file: string): string | null {
  const parts = file.split(path.sep);
  if (parts[0] !== 'native') return null;
  return parts.length > 2 ? (parts[1] as string) : '';
}

/** Every relative import of native/, resolved to the file it names (.js → .ts). */
function nativeEdges(): { from: string; to: string; spec: string }[] {
  return NATIVE.flatMap(imports).flatMap((i) => {
    const target = resolveTarget(i);
    if (target === null) return [];
    return [{ from: i.file, to: target.replace(/\.js$/, '.ts'), spec: i.spec }];
  });
}
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

  it('lets each folder of native/ import only what its layer allows (no new upward or sideways import)', () => {
    const folders = fs
      .readdirSync(path.join(ROOT, 'native'), { withFileTypes: true })
      .filter((d) => d.isDirectory())
      .map((d) => d.name);
    // Every folder has its line in the table: a new folder states its place.
    expect(folders.filter((f) => !(f in ALLOWED))).toEqual([]);
    const bad = nativeEdges().flatMap(({ from, to, spec }) => {
      const a = nativeFolder(from);
      const b = nativeFolder(to);
      if (a === null || b === null || a === b) return [];
      if (a === 'base') return [`${from} imports ${spec} (base/ imports nothing of native/)`];
      if (a === 'api') return []; // checked below: api/ imports only api/
      if (GROUND.includes(b)) return [];
      const allowed = a === '' ? ROOT_ALLOWED : (ALLOWED[a] ?? []);
      return allowed.includes(b) ? [] : [`${from} imports ${spec} (${a || 'native/'} may not import ${b}/)`];
    });
    expect(bad).toEqual([]);
  });

  it('has no import circle in native/', () => {
    const graph = new Map<string, string[]>();
    for (const { from, to } of nativeEdges()) graph.set(from, [...(graph.get(from) ?? []), to]);
    // Depth-first search; a file met again while on the current path closes a circle.
    const state = new Map<string, 'open' | 'done'>();
    const circles: string[] = [];
    const visit = (file: string, trail: string[]) => {
      state.set(file, 'open');
      for (const next of graph.get(file) ?? []) {
        const s = state.get(next);
        if (s === 'open') circles.push([...trail.slice(trail.indexOf(next)), next].join(' → '));
        else if (s === undefined) visit(next, [...trail, next]);
      }
      state.set(file, 'done');
    };
    for (const file of graph.keys()) if (!state.has(file)) visit(file, [file]);
    expect(circles).toEqual([]);
  });

  it('keeps every file of native/api under 400 lines (the contract is split per capability)', () => {
    const api = NATIVE.filter((f) => f.includes(`${path.sep}native${path.sep}api${path.sep}`));
    const long = api
      .map((f) => ({ file: path.relative(ROOT, f), lines: fs.readFileSync(f, 'utf8').split('\n').length }))
      .filter((f) => f.lines > 400);
    expect(api.length).toBeGreaterThan(10);
    expect(long).toEqual([]);
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
