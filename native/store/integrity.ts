/**
 * Damage to project.sqlite: found at open by a quick check within a time budget, by a full integrity check on
 * demand, and by any read that meets a damaged page. What is damaged is said in tables, with what the user can do:
 * restore the automatic backup (made in the background after a clean open), or rebuild the project without the
 * damaged derived tables (features, tracks, maps…: recomputed from the media by running their jobs again).
 */
import fs from 'node:fs';
import path from 'node:path';
import Database from 'better-sqlite3';
import { FlaneurError, isCorruptDatabase } from '../api/errors.js';
import { createDatabase, type Db, migrate, openDatabase } from './db.js';

/** Tables whose content is computed from the media and models, so losing them costs only recomputation. */
export const DERIVED_TABLES: ReadonlySet<string> = new Set([
  'features',
  'feature_cls',
  'feature_runs',
  'banks',
  'bank_items',
  'fungi_features',
  'fungi_runs',
  'maps',
  'track_boxes',
  'track_runs',
  'train_log',
  'text_features',
]);

/** The tables that hold most of the bytes: checked last at open, so the small tables always get checked. */
const BULK_TABLES = ['features', 'fungi_features', 'feature_cls', 'maps', 'track_boxes', 'bank_items', 'text_features'];

export const BACKUP_DIR = 'backups';
export const BACKUP_FILE = 'project.sqlite';
/** How old the automatic backup may get before the next clean open makes a new one. */
export const BACKUP_INTERVAL_MS = 24 * 3600 * 1000;

export interface Damage {
  /** Tables with errors (or the file itself when no table could be named). */
  tables: string[];
  /** SQLite's own first lines, for the details. */
  messages: string[];
}

export interface CheckResult {
  damage: Damage | null;
  /** Tables not reached within the time budget (checked by the full check on demand). */
  unchecked: string[];
  ms: number;
}

const isCorruption = isCorruptDatabase;

function tables(db: Db): string[] {
  const names = (
    db.prepare(`SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%'`).all() as {
      name: string;
    }[]
  ).map((r) => r.name);
  const bulk = (n: string) => BULK_TABLES.indexOf(n);
  return names.sort((a, b) => bulk(a) - bulk(b) || a.localeCompare(b));
}

/** Table names by b-tree root page, to name the table of an integrity_check line ("Tree 7 page 12 …"). */
function treeNames(db: Db): Map<number, string> {
  const out = new Map<number, string>();
  for (const r of db.prepare(`SELECT tbl_name, rootpage FROM sqlite_master WHERE rootpage > 0`).all() as {
    tbl_name: string;
    rootpage: number;
  }[])
    out.set(r.rootpage, r.tbl_name);
  return out;
}

function checkRows(db: Db, pragma: string): string[] {
  return (db.prepare(`PRAGMA ${pragma}`).raw().all() as unknown[][]).map((r) => String(r[0]));
}

/**
 * `PRAGMA quick_check` table by table, small tables first, until `budgetMs` is spent: bounded time at open
 * whatever the size of the feature tables. The schema itself is always checked.
 */
export function quickCheck(db: Db, budgetMs = 1500): CheckResult {
  const t0 = performance.now();
  const damaged: string[] = [];
  const messages: string[] = [];
  let names: string[];
  try {
    names = tables(db);
  } catch (err) {
    if (!isCorruption(err)) throw err;
    return { damage: { tables: ['(the schema)'], messages: [(err as Error).message] }, unchecked: [], ms: 0 };
  }
  const unchecked: string[] = [];
  for (const name of names) {
    if (performance.now() - t0 > budgetMs) {
      unchecked.push(name);
      continue;
    }
    try {
      const rows = checkRows(db, `quick_check("${name.replaceAll('"', '""')}")`);
      if (rows.length !== 1 || rows[0] !== 'ok') {
        damaged.push(name);
        messages.push(...rows.slice(0, 5));
      }
    } catch (err) {
      if (!isCorruption(err)) throw err;
      damaged.push(name);
      messages.push((err as Error).message);
    }
  }
  const ms = performance.now() - t0;
  return { damage: damaged.length > 0 ? { tables: damaged, messages } : null, unchecked, ms };
}

/**
 * The full `PRAGMA integrity_check` (every page, index and constraint), with its lines mapped to tables. When the
 * damage stops the check itself, each table is checked on its own to name the damaged ones.
 */
export function integrityCheck(db: Db): CheckResult {
  const t0 = performance.now();
  let rows: string[];
  try {
    rows = checkRows(db, 'integrity_check(100)');
  } catch (err) {
    if (!isCorruption(err)) throw err;
    const byTable = quickCheck(db, Number.POSITIVE_INFINITY);
    return {
      damage: byTable.damage ?? { tables: ['(the schema)'], messages: [(err as Error).message] },
      unchecked: [],
      ms: performance.now() - t0,
    };
  }
  const ms = performance.now() - t0;
  if (rows.length === 1 && rows[0] === 'ok') return { damage: null, unchecked: [], ms };
  let names = new Map<number, string>();
  try {
    names = treeNames(db);
  } catch {
    // the schema is damaged too: lines stay unnamed
  }
  const found = new Set<string>();
  for (const line of rows) {
    const tree = /Tree (\d+)/.exec(line);
    const named = tree ? names.get(Number(tree[1])) : /(?:index|table) (\w+)/.exec(line)?.[1];
    found.add(named ?? '(free space or an unnamed page)');
  }
  return { damage: { tables: [...found], messages: rows.slice(0, 10) }, unchecked: [], ms };
}

export interface BackupInfo {
  path: string;
  at: string;
  bytes: number;
}

export function backupInfo(projectDir: string): BackupInfo | null {
  const file = path.join(projectDir, BACKUP_DIR, BACKUP_FILE);
  try {
    const st = fs.statSync(file);
    return { path: file, at: st.mtime.toISOString(), bytes: st.size };
  } catch {
    return null;
  }
}

/** The sentence a damaged project gets: what is damaged, that nothing was changed, and the user's options. */
export function damageMessage(projectDir: string, damage: Damage): string {
  const derivedOnly = damage.tables.every((t) => DERIVED_TABLES.has(t));
  const backup = backupInfo(projectDir);
  const options: string[] = [];
  if (backup) {
    options.push(
      `restore the automatic backup of ${backup.at.slice(0, 16).replace('T', ' ')} UTC (Project view, or \`flaneur project restore-backup\`; work done since then is redone by running its jobs again)`,
    );
  }
  if (derivedOnly) {
    options.push(
      'rebuild the project without the damaged tables, which only hold results computed from your media (Project view, or `flaneur project rebuild`; then run those jobs again)',
    );
  }
  if (options.length === 0) {
    options.push(
      'there is no automatic backup yet: copy the project folder somewhere safe, then open it with an SQLite tool to recover what can be read, or create a new project and add your media again',
    );
  }
  return `The project database ${path.join(projectDir, 'project.sqlite')} is damaged (in ${damage.tables.join(', ')}). Flaneur did not change it and will not read wrong data from it. You can ${options.join('; or ')}.`;
}

export function damagedError(projectDir: string, damage: Damage): FlaneurError {
  return new FlaneurError('PROJECT_DAMAGED', damageMessage(projectDir, damage), {
    field: 'path',
    details: damage.messages.join('\n'),
  });
}

/**
 * Copies the open database to backups/project.sqlite with SQLite's online backup (in steps, between which the
 * engine goes on), through a temporary file renamed on success: the previous good backup is kept until then.
 */
export async function backupDatabase(db: Db, projectDir: string): Promise<BackupInfo> {
  const dir = path.join(projectDir, BACKUP_DIR);
  fs.mkdirSync(dir, { recursive: true });
  const final = path.join(dir, BACKUP_FILE);
  const tmp = `${final}.tmp`;
  fs.rmSync(tmp, { force: true });
  try {
    await db.backup(tmp);
    fs.renameSync(tmp, final);
  } catch (err) {
    fs.rmSync(tmp, { force: true });
    throw err;
  }
  return backupInfo(projectDir) as BackupInfo;
}

/** Moves the damaged database aside (kept, never deleted) and returns where it went. */
function setAside(projectDir: string): string {
  const file = path.join(projectDir, 'project.sqlite');
  const aside = `${file}.damaged-${new Date().toISOString().replace(/[:.]/g, '-')}`;
  fs.renameSync(file, aside);
  for (const ext of ['-wal', '-shm']) {
    if (fs.existsSync(file + ext)) fs.renameSync(file + ext, aside + ext);
  }
  return aside;
}

/** Puts the automatic backup in place of a damaged database (the damaged file is kept beside it). */
export function restoreBackup(projectDir: string): { restoredFrom: BackupInfo; damagedCopy: string } {
  const backup = backupInfo(projectDir);
  if (!backup) {
    throw new FlaneurError('NOT_FOUND', `${projectDir} has no automatic backup (${BACKUP_DIR}/${BACKUP_FILE}).`, {
      field: 'path',
    });
  }
  const probe = new Database(backup.path, { readonly: true, fileMustExist: true });
  try {
    const result = integrityCheck(probe);
    if (result.damage) {
      throw new FlaneurError(
        'PROJECT_DAMAGED',
        `The automatic backup ${backup.path} is damaged too; it was not used.`,
        {
          details: result.damage.messages.join('\n'),
        },
      );
    }
  } finally {
    probe.close();
  }
  const damagedCopy = setAside(projectDir);
  fs.copyFileSync(backup.path, path.join(projectDir, 'project.sqlite'));
  return { restoredFrom: backup, damagedCopy };
}

/**
 * Rebuilds project.sqlite from the readable tables of the damaged one: a fresh database with the same schema, every
 * table copied except the damaged derived ones (left empty, recomputed by running their jobs again). Refused when a
 * damaged table is not derived (media, frames, jobs, models…): only the backup can bring those back.
 */
export function rebuildWithoutDamaged(
  projectDir: string,
  damage: Damage,
  createFresh: (file: string) => Db,
): { dropped: string[]; damagedCopy: string } {
  const primary = damage.tables.filter((t) => !DERIVED_TABLES.has(t));
  if (primary.length > 0) {
    throw new FlaneurError(
      'PROJECT_DAMAGED',
      `The damaged tables include ${primary.join(', ')}, which hold your catalog and cannot be recomputed; restore the automatic backup instead.`,
      { field: 'path' },
    );
  }
  const file = path.join(projectDir, 'project.sqlite');
  const fresh = `${file}.rebuild`;
  fs.rmSync(fresh, { force: true });
  const out = createFresh(fresh);
  try {
    out.pragma('foreign_keys = OFF');
    out.prepare('ATTACH DATABASE ? AS old').run(file);
    const names = (
      out.prepare(`SELECT name FROM old.sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%'`).all() as {
        name: string;
      }[]
    ).map((r) => r.name);
    const keep = new Set(
      (out.prepare(`SELECT name FROM main.sqlite_master WHERE type = 'table'`).all() as { name: string }[]).map(
        (r) => r.name,
      ),
    );
    out.transaction(() => {
      for (const name of names) {
        if (damage.tables.includes(name) || !keep.has(name)) continue;
        const q = `"${name.replaceAll('"', '""')}"`;
        const cols = (db: string) =>
          (out.prepare(`PRAGMA ${db}.table_info(${q})`).all() as { name: string }[]).map((c) => c.name);
        const oldCols = new Set(cols('old'));
        const shared = cols('main')
          .filter((c) => oldCols.has(c))
          .map((c) => `"${c.replaceAll('"', '""')}"`)
          .join(', ');
        out.exec(`DELETE FROM main.${q}; INSERT INTO main.${q} (${shared}) SELECT ${shared} FROM old.${q}`);
      }
    })();
    out.exec('DETACH DATABASE old');
    out.pragma('foreign_keys = ON');
  } catch (err) {
    out.close();
    fs.rmSync(fresh, { force: true });
    throw new FlaneurError(
      'PROJECT_DAMAGED',
      `The project could not be rebuilt: more of it is damaged than the check found (${(err as Error).message}). Restore the automatic backup instead.`,
      { field: 'path', cause: err },
    );
  }
  out.close();
  const damagedCopy = setAside(projectDir);
  fs.renameSync(fresh, file);
  return { dropped: damage.tables, damagedCopy };
}

/** Finds what is damaged with the full check, then `rebuildWithoutDamaged` with a fresh database of this schema. */
export function rebuildDamagedProject(projectDir: string): { dropped: string[] } {
  const db = openDatabase(path.join(projectDir, 'project.sqlite'), { readonly: true });
  let damage: Damage | null;
  try {
    damage = integrityCheck(db).damage;
  } finally {
    db.close();
  }
  if (!damage) return { dropped: [] };
  return rebuildWithoutDamaged(projectDir, damage, (file) => {
    const fresh = createDatabase(file);
    migrate(fresh, null);
    return fresh;
  });
}
