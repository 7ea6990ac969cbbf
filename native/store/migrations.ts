/**
 * Numbered schema migrations of project.sqlite. Never edit a migration that has shipped; add the next one.
 * PRAGMA user_version holds the number of the last migration applied.
 */
export interface Migration {
  version: number;
  name: string;
  sql: string;
}

export const MIGRATIONS: readonly Migration[] = [
  {
    version: 1,
    name: 'project and jobs',
    sql: `
      CREATE TABLE project (
        singleton INTEGER PRIMARY KEY CHECK (singleton = 1),
        id TEXT NOT NULL,
        name TEXT NOT NULL,
        created_at TEXT NOT NULL,
        created_by TEXT NOT NULL
      );
      CREATE TABLE jobs (
        id INTEGER PRIMARY KEY,
        kind TEXT NOT NULL,
        title TEXT NOT NULL,
        state TEXT NOT NULL CHECK (state IN ('queued','running','done','failed','cancelled','interrupted')),
        args TEXT NOT NULL,
        progress TEXT NOT NULL,
        checkpoint TEXT,
        attempt INTEGER NOT NULL DEFAULT 0,
        cancel_requested INTEGER NOT NULL DEFAULT 0,
        error TEXT,
        created_at TEXT NOT NULL,
        started_at TEXT,
        finished_at TEXT,
        updated_at TEXT NOT NULL
      );
      CREATE INDEX jobs_by_state ON jobs (state, id);
      CREATE TABLE job_items (
        job_id INTEGER NOT NULL REFERENCES jobs (id) ON DELETE CASCADE,
        key TEXT NOT NULL,
        status TEXT NOT NULL CHECK (status IN ('ok','failed','skipped')),
        result TEXT,
        error TEXT,
        attempt INTEGER NOT NULL,
        finished_at TEXT NOT NULL,
        PRIMARY KEY (job_id, key)
      ) WITHOUT ROWID;
      CREATE INDEX job_items_by_status ON job_items (job_id, status);
    `,
  },
  {
    version: 2,
    name: 'model registry',
    sql: `
      CREATE TABLE models (
        id INTEGER PRIMARY KEY,
        name TEXT NOT NULL,
        sha256 TEXT NOT NULL UNIQUE,
        file TEXT NOT NULL,
        bytes INTEGER NOT NULL,
        manifest TEXT NOT NULL,
        created_at TEXT NOT NULL
      );
    `,
  },
  {
    version: 3,
    name: 'media catalog',
    sql: `
      CREATE TABLE media (
        id INTEGER PRIMARY KEY,
        kind TEXT NOT NULL CHECK (kind IN ('image','video','unknown')),
        path TEXT NOT NULL UNIQUE,
        bytes INTEGER NOT NULL,
        mtime_ms REAL NOT NULL,
        content_hash TEXT,
        status TEXT NOT NULL CHECK (status IN ('pending','ingesting','done','failed')),
        problem TEXT,
        probe TEXT,
        sampling TEXT,
        frame_width INTEGER,
        frame_height INTEGER,
        frame_count INTEGER NOT NULL DEFAULT 0,
        added_at TEXT NOT NULL,
        updated_at TEXT NOT NULL
      );
      CREATE INDEX media_by_hash ON media (content_hash);
      CREATE INDEX media_by_status ON media (status, id);
      CREATE TABLE frames (
        media_id INTEGER NOT NULL REFERENCES media (id) ON DELETE CASCADE,
        idx INTEGER NOT NULL,
        pts REAL NOT NULL,
        PRIMARY KEY (media_id, idx)
      ) WITHOUT ROWID;
    `,
  },
  {
    version: 4,
    name: 'training log',
    sql: `
      CREATE TABLE train_log (
        job_id INTEGER NOT NULL REFERENCES jobs (id) ON DELETE CASCADE,
        step INTEGER NOT NULL,
        loss REAL NOT NULL,
        lr REAL NOT NULL,
        wd REAL NOT NULL,
        ema REAL NOT NULL,
        grad_norm REAL NOT NULL,
        teacher_entropy REAL NOT NULL,
        imgs_per_s REAL NOT NULL,
        at TEXT NOT NULL,
        PRIMARY KEY (job_id, step)
      ) WITHOUT ROWID;
    `,
  },
  {
    version: 5,
    name: 'features and memory banks',
    sql: `
      CREATE TABLE feature_runs (
        id INTEGER PRIMARY KEY,
        model_id INTEGER NOT NULL REFERENCES models (id) ON DELETE CASCADE,
        model_sha256 TEXT NOT NULL,
        input_size INTEGER NOT NULL,
        grid INTEGER NOT NULL,
        dim INTEGER NOT NULL,
        preprocessing TEXT NOT NULL,
        code_version TEXT NOT NULL,
        created_at TEXT NOT NULL,
        UNIQUE (model_sha256, input_size, preprocessing)
      );
      CREATE TABLE features (
        run_id INTEGER NOT NULL REFERENCES feature_runs (id) ON DELETE CASCADE,
        media_id INTEGER NOT NULL REFERENCES media (id) ON DELETE CASCADE,
        frame_idx INTEGER NOT NULL,
        cls BLOB NOT NULL,
        patches BLOB NOT NULL,
        PRIMARY KEY (run_id, media_id, frame_idx)
      ) WITHOUT ROWID;
      CREATE TABLE banks (
        id INTEGER PRIMARY KEY,
        name TEXT NOT NULL,
        run_id INTEGER NOT NULL REFERENCES feature_runs (id) ON DELETE CASCADE,
        classes TEXT NOT NULL,
        settings TEXT NOT NULL,
        patches INTEGER NOT NULL DEFAULT 0,
        created_at TEXT NOT NULL
      );
      CREATE TABLE bank_items (
        bank_id INTEGER NOT NULL REFERENCES banks (id) ON DELETE CASCADE,
        media_id INTEGER NOT NULL,
        frame_idx INTEGER NOT NULL,
        n INTEGER NOT NULL,
        vectors BLOB NOT NULL,
        labels BLOB NOT NULL,
        PRIMARY KEY (bank_id, media_id, frame_idx)
      ) WITHOUT ROWID;
    `,
  },
  {
    version: 6,
    name: 'tracks',
    sql: `
      CREATE TABLE track_runs (
        id INTEGER PRIMARY KEY,
        media_id INTEGER NOT NULL REFERENCES media (id) ON DELETE CASCADE,
        model_id INTEGER NOT NULL,
        params TEXT NOT NULL,
        grid INTEGER NOT NULL,
        created_at TEXT NOT NULL
      );
      CREATE TABLE track_boxes (
        run_id INTEGER NOT NULL REFERENCES track_runs (id) ON DELETE CASCADE,
        object INTEGER NOT NULL,
        frame_idx INTEGER NOT NULL,
        x REAL NOT NULL,
        y REAL NOT NULL,
        w REAL NOT NULL,
        h REAL NOT NULL,
        area INTEGER NOT NULL,
        mask BLOB NOT NULL,
        PRIMARY KEY (run_id, frame_idx, object)
      ) WITHOUT ROWID;
    `,
  },
  {
    version: 7,
    name: 'fungi features',
    sql: `
      CREATE TABLE fungi_runs (
        id INTEGER PRIMARY KEY,
        model_id INTEGER NOT NULL REFERENCES models (id) ON DELETE CASCADE,
        model_sha256 TEXT NOT NULL,
        settings TEXT NOT NULL,
        dim INTEGER NOT NULL,
        code_version TEXT NOT NULL,
        negatives BLOB,
        negative_frames TEXT,
        pca BLOB,
        pca_dim INTEGER,
        pca_items INTEGER,
        created_at TEXT NOT NULL,
        UNIQUE (model_sha256, settings, code_version)
      );
      CREATE TABLE fungi_features (
        run_id INTEGER NOT NULL REFERENCES fungi_runs (id) ON DELETE CASCADE,
        media_id INTEGER NOT NULL REFERENCES media (id) ON DELETE CASCADE,
        frame_idx INTEGER NOT NULL,
        vec BLOB NOT NULL,
        PRIMARY KEY (run_id, media_id, frame_idx)
      ) WITHOUT ROWID;
      CREATE TABLE maps (
        id INTEGER PRIMARY KEY,
        run_id INTEGER NOT NULL REFERENCES feature_runs (id) ON DELETE CASCADE,
        features TEXT NOT NULL,
        source_run INTEGER NOT NULL,
        method TEXT NOT NULL,
        params TEXT NOT NULL,
        points INTEGER NOT NULL,
        keys BLOB NOT NULL,
        coords BLOB NOT NULL,
        clusters BLOB NOT NULL,
        created_at TEXT NOT NULL
      );
    `,
  },
  {
    version: 8,
    name: 'CLS vectors in their own table',
    // A features row holds ~150 KB of patch tokens in overflow pages, so reading the CLS vectors or the keys of a
    // run through it touches the whole file (measured at 5·10^4 frames, cold cache: 11.9 s). In a narrow rowid
    // table beside it the same read takes 2.7 s (0.2 s warm), and its unique index answers key-only questions.
    sql: `
      CREATE TABLE feature_cls (
        run_id INTEGER NOT NULL REFERENCES feature_runs (id) ON DELETE CASCADE,
        media_id INTEGER NOT NULL REFERENCES media (id) ON DELETE CASCADE,
        frame_idx INTEGER NOT NULL,
        cls BLOB NOT NULL,
        UNIQUE (run_id, media_id, frame_idx)
      );
      INSERT INTO feature_cls (run_id, media_id, frame_idx, cls) SELECT run_id, media_id, frame_idx, cls FROM features;
      ALTER TABLE features DROP COLUMN cls;
    `,
  },
  {
    version: 9,
    name: 'track grids with their own width',
    // Tracking keeps the frame's aspect ratio: a 16:9 frame's grid is e.g. 14 rows by 25 columns. `grid` stays the
    // rows; `grid_w` the columns (NULL for runs made before, whose grid was square).
    sql: `ALTER TABLE track_runs ADD COLUMN grid_w INTEGER;`,
  },
  {
    version: 10,
    name: 'text features per language model and text',
    // ShareLock's text features (a decoder LLM's last-token hidden state), computed once per (model, text): an 8B
    // model takes ~0.1 s a caption even on a GPU. `model` is the language model's identity (file hash and feature
    // definition, native/text/feature-cache.ts); the vector is float32 (dim values).
    sql: `
      CREATE TABLE text_features (
        model TEXT NOT NULL,
        text TEXT NOT NULL,
        dim INTEGER NOT NULL,
        vector BLOB NOT NULL,
        created_at TEXT NOT NULL,
        PRIMARY KEY (model, text)
      ) WITHOUT ROWID;
    `,
  },
  {
    version: 11,
    name: 'text models: language models and ShareLock heads',
    // The language side of a project (issue 29): decoder LLMs stay where the user keeps them (gigabytes; `file` is
    // their absolute path, `key` the feature-cache identity of native/text/feature-cache.ts) and ShareLock heads are
    // copied into the project's models/text/ (`file` relative to the project, `key` their SHA-256). `manifest`:
    // what the model is (LLM: architecture and memory; head: config, the LLM and vision encoder it pairs with,
    // origin).
    sql: `
      CREATE TABLE text_models (
        id INTEGER PRIMARY KEY,
        kind TEXT NOT NULL CHECK (kind IN ('llm','sharelock-head')),
        name TEXT NOT NULL,
        key TEXT NOT NULL,
        file TEXT NOT NULL,
        bytes INTEGER NOT NULL,
        manifest TEXT NOT NULL,
        created_at TEXT NOT NULL,
        UNIQUE (kind, key)
      );
    `,
  },
  {
    version: 12,
    name: 'validation loss in the training log',
    // ShareLock's held-out loss (issue 29), at the steps that validated; NULL at the others and for other objectives.
    sql: `ALTER TABLE train_log ADD COLUMN val_loss REAL;`,
  },
];

export const SCHEMA_VERSION = MIGRATIONS.length;
