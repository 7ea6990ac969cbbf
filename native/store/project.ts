/**
 * A project is a folder: project.sqlite (WAL), cache/ and checkpoints/. This module creates and opens them and
 * says clearly when a folder is not a project or was written by a newer app.
 */
import { randomUUID } from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { FlaneurError, isCorruptDatabase } from '../api/errors.js';
import { APPLICATION_ID, configure, createDatabase, type Db, migrate, openDatabase, readVersions } from './db.js';
import { checkFolderDestination } from './destination.js';
import { FeaturesRepository } from './features-repo.js';
import { FungiRepository } from './fungi-repo.js';
import { backupInfo, type CheckResult, damagedError, integrityCheck, quickCheck } from './integrity.js';
import { JobRepository } from './jobs-repo.js';
import { MapsRepository } from './maps-repo.js';
import { MediaRepository } from './media-repo.js';
import { SCHEMA_VERSION } from './migrations.js';
import { ModelRepository } from './models-repo.js';
import { TextFeaturesRepository } from './text-features-repo.js';
import { TextModelsRepository } from './text-models-repo.js';
import { TracksRepository } from './tracks-repo.js';
import { TrainLogRepository } from './train-log-repo.js';

export const PROJECT_FILE = 'project.sqlite';

/** Whether a file starts as an SQLite database does (so a failed read is damage, not another kind of file). */
function looksLikeSqlite(file: string): boolean {
  try {
    const fd = fs.openSync(file, 'r');
    const head = Buffer.alloc(16);
    fs.readSync(fd, head, 0, 16, 0);
    fs.closeSync(fd);
    return head.toString('latin1') === 'SQLite format 3\0';
  } catch {
    return false;
  }
}
/** The project's own record (id, name, when and by what it was made). */
function readMeta(db: Db, file: string): ProjectMeta {
  const row = db.prepare(`SELECT id, name, created_at, created_by FROM project WHERE singleton = 1`).get() as
    | { id: string; name: string; created_at: string; created_by: string }
    | undefined;
  if (!row) throw new FlaneurError('NOT_A_PROJECT', `${file} has no project record.`, { field: 'path' });
  return { id: row.id, name: row.name, createdAt: row.created_at, createdBy: row.created_by };
}

export const PROJECT_DIRS = ['cache', 'checkpoints', 'models'] as const;

export interface ProjectMeta {
  id: string;
  name: string;
  createdAt: string;
  createdBy: string;
}

export class Project {
  readonly jobs: JobRepository;
  readonly models: ModelRepository;
  readonly media: MediaRepository;
  readonly trainLog: TrainLogRepository;
  readonly features: FeaturesRepository;
  readonly fungi: FungiRepository;
  readonly maps: MapsRepository;
  readonly tracks: TracksRepository;
  readonly textFeatures: TextFeaturesRepository;
  readonly textModels: TextModelsRepository;

  private constructor(
    readonly dir: string,
    readonly db: Db,
    readonly meta: ProjectMeta,
    /** The quick check made at open (null for a new project): which tables it reached within its time budget. */
    readonly openCheck: CheckResult | null = null,
  ) {
    this.jobs = new JobRepository(db);
    this.models = new ModelRepository(db);
    this.media = new MediaRepository(db);
    this.trainLog = new TrainLogRepository(db);
    this.features = new FeaturesRepository(db);
    this.fungi = new FungiRepository(db);
    this.maps = new MapsRepository(db);
    this.tracks = new TracksRepository(db);
    this.textFeatures = new TextFeaturesRepository(db);
    this.textModels = new TextModelsRepository(db);
  }

  get cacheDir(): string {
    return path.join(this.dir, 'cache');
  }

  get modelsDir(): string {
    return path.join(this.dir, 'models');
  }

  get checkpointsDir(): string {
    return path.join(this.dir, 'checkpoints');
  }

  get schemaVersion(): number {
    return readVersions(this.db).userVersion;
  }

  close(): void {
    if (this.db.open) this.db.close();
  }

  /** Creates a project in `dir` (made if missing). Refuses a folder that already holds one. */
  static create(dir: string, options: { name?: string; appVersion: string }): Project {
    // A real, writable folder (or one that can be made) before anything is created: /proc is refused at once.
    const abs = checkFolderDestination(dir, 'path');
    const file = path.join(abs, PROJECT_FILE);
    if (fs.existsSync(file)) {
      throw new FlaneurError('PROJECT_EXISTS', `${abs} already holds a Flaneur project; open it instead.`, {
        field: 'path',
      });
    }
    try {
      fs.mkdirSync(abs, { recursive: true });
      for (const d of PROJECT_DIRS) fs.mkdirSync(path.join(abs, d), { recursive: true });
    } catch (err) {
      throw new FlaneurError('IO_ERROR', `Cannot create the project folder ${abs}: ${(err as Error).message}`, {
        cause: err,
        field: 'path',
      });
    }
    const db = createDatabase(file);
    try {
      migrate(db, null);
      const meta: ProjectMeta = {
        id: randomUUID(),
        name: options.name ?? path.basename(abs),
        createdAt: new Date().toISOString(),
        createdBy: `flaneur ${options.appVersion}`,
      };
      db.prepare(
        `INSERT INTO project (singleton, id, name, created_at, created_by) VALUES (1, @id, @name, @createdAt, @createdBy)`,
      ).run(meta);
      return new Project(abs, db, meta);
    } catch (err) {
      db.close();
      throw err;
    }
  }

  /** Opens an existing project (the folder, or its project.sqlite), migrating an older schema forward. */
  static open(dirOrFile: string): Project {
    let abs = path.resolve(dirOrFile);
    if (path.basename(abs) === PROJECT_FILE) abs = path.dirname(abs);
    if (!fs.existsSync(abs)) {
      throw new FlaneurError('NOT_FOUND', `No such folder: ${abs}`, { field: 'path' });
    }
    if (!fs.statSync(abs).isDirectory()) {
      throw new FlaneurError('NOT_A_PROJECT', `${abs} is a file, not a project folder.`, { field: 'path' });
    }
    const file = path.join(abs, PROJECT_FILE);
    if (!fs.existsSync(file)) {
      throw new FlaneurError(
        'NOT_A_PROJECT',
        `${abs} is not a Flaneur project (it has no ${PROJECT_FILE}). Create a project there or choose another folder.`,
        { field: 'path' },
      );
    }
    const db = openDatabase(file);
    let openCheck: CheckResult | null = null;
    try {
      let versions: { applicationId: number; userVersion: number };
      try {
        versions = readVersions(db);
      } catch (err) {
        if (isCorruptDatabase(err) && (looksLikeSqlite(file) || backupInfo(abs))) {
          throw damagedError(abs, { tables: ['(the file header)'], messages: [(err as Error).message] });
        }
        throw new FlaneurError('NOT_A_PROJECT', `${file} is not a readable SQLite database.`, {
          field: 'path',
          details: (err as Error).message,
        });
      }
      if (versions.applicationId !== APPLICATION_ID) {
        throw new FlaneurError('NOT_A_PROJECT', `${file} is an SQLite database, but not a Flaneur project.`, {
          field: 'path',
        });
      }
      if (versions.userVersion > SCHEMA_VERSION) migrate(db, file); // throws PROJECT_TOO_NEW
      // Damage is found before anything is migrated or read: small tables first, within a time budget.
      const check = quickCheck(db);
      if (check.damage) throw damagedError(abs, check.damage);
      openCheck = check;
      configure(db);
      migrate(db, file);
      for (const d of PROJECT_DIRS) fs.mkdirSync(path.join(abs, d), { recursive: true });
      return new Project(abs, db, readMeta(db, file), openCheck);
    } catch (err) {
      db.close();
      throw err;
    }
  }

  /**
   * A second connection to a project another part of this program has open (a job's worker process): the folder
   * was checked and migrated by that open, so this only connects and reads the project's record.
   */
  static attach(dir: string): Project {
    const abs = path.resolve(dir);
    const db = openDatabase(path.join(abs, PROJECT_FILE));
    try {
      configure(db);
      return new Project(abs, db, readMeta(db, path.join(abs, PROJECT_FILE)));
    } catch (err) {
      db.close();
      throw err;
    }
  }

  /** The full integrity check of this project's database (every page; takes as long as reading the file). */
  check(): CheckResult {
    return integrityCheck(this.db);
  }

  static exists(dir: string): boolean {
    return fs.existsSync(path.join(path.resolve(dir), PROJECT_FILE));
  }
}
