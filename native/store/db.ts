/**
 * Opening project.sqlite: WAL, foreign keys, our application id, and the numbered migrations.
 */
import fs from 'node:fs';
import Database from 'better-sqlite3';
import { FlaneurError } from '../api/errors.js';
import { MIGRATIONS, SCHEMA_VERSION } from './migrations.js';

export type Db = Database.Database;

/** 'FLNR' — lets us tell our database from any other SQLite file. */
export const APPLICATION_ID = 0x464c4e52;

export function configure(db: Db): void {
  db.pragma('journal_mode = WAL');
  // NORMAL is durable across application crashes in WAL mode; only an OS crash can lose the last transactions.
  db.pragma('synchronous = NORMAL');
  db.pragma('foreign_keys = ON');
  db.pragma('busy_timeout = 5000');
}

export function readVersions(db: Db): { applicationId: number; userVersion: number } {
  return {
    applicationId: db.pragma('application_id', { simple: true }) as number,
    userVersion: db.pragma('user_version', { simple: true }) as number,
  };
}

/** Applies every migration above the file's version, each in its own transaction. Backs the file up first. */
export function migrate(db: Db, file: string | null): { from: number; to: number } {
  const from = readVersions(db).userVersion;
  if (from > SCHEMA_VERSION) {
    throw new FlaneurError(
      'PROJECT_TOO_NEW',
      `This project was written by a newer Flaneur (schema ${from}; this app knows up to ${SCHEMA_VERSION}). Update Flaneur to open it.`,
    );
  }
  if (from > 0 && from < SCHEMA_VERSION && file) {
    db.pragma('wal_checkpoint(TRUNCATE)');
    fs.copyFileSync(file, `${file}.v${from}.bak`);
  }
  for (const m of MIGRATIONS) {
    if (m.version <= from) continue;
    db.transaction(() => {
      db.exec(m.sql);
      db.pragma(`user_version = ${m.version}`);
    })();
  }
  if (from === 0) db.pragma(`application_id = ${APPLICATION_ID}`);
  return { from, to: SCHEMA_VERSION };
}

export function openDatabase(file: string, options: { readonly?: boolean } = {}): Db {
  try {
    const db = new Database(file, { readonly: options.readonly ?? false, fileMustExist: true });
    return db;
  } catch (err) {
    throw new FlaneurError('IO_ERROR', `Cannot open ${file}: ${(err as Error).message}`, { cause: err });
  }
}

export function createDatabase(file: string): Db {
  const db = new Database(file);
  configure(db);
  return db;
}
