/**
 * The app and projects: open, create, recent, integrity check, backup and rebuild.
 * Part of the engine's contract (contract.ts is the index that exports every name).
 */
import { z } from 'zod';
import { Empty, UserPath } from './common.js';

export const ProjectInfo = z.object({
  id: z.string(),
  name: z.string(),
  path: z.string(),
  isDemo: z.boolean(),
  schemaVersion: z.int(),
  createdAt: z.string(),
  summary: z.object({
    jobs: z.int(),
    runningJobs: z.int(),
  }),
});

export type ProjectInfo = z.infer<typeof ProjectInfo>;

export const RecentProject = z.object({
  path: z.string(),
  name: z.string(),
  openedAt: z.string(),
  exists: z.boolean(),
});

export type RecentProject = z.infer<typeof RecentProject>;

export const AppInfo = z.object({
  name: z.literal('flaneur'),
  version: z.string(),
  schemaVersion: z.int(),
  node: z.string(),
  platform: z.string(),
  arch: z.string(),
  home: z.string(),
});

export type AppInfo = z.infer<typeof AppInfo>;

export const IntegrityReport = z.object({
  ok: z.boolean(),
  /** Damaged tables; every one of them is derived (recomputable) when `derivedOnly`. */
  tables: z.array(z.string()),
  derivedOnly: z.boolean(),
  /** What is damaged and what to do, as a sentence; empty when ok. */
  message: z.string(),
  /** SQLite's first lines. */
  details: z.array(z.string()),
  ms: z.number(),
  backup: z.object({ path: z.string(), at: z.string(), bytes: z.int() }).nullable(),
});

export type IntegrityReport = z.infer<typeof IntegrityReport>;

/** The commands of this capability (merged into `commands` by contract.ts). */
export const projectCommands = {
  'app.info': { args: Empty, result: AppInfo },
  'project.create': {
    args: z.object({ path: UserPath, name: z.string().min(1).max(200).optional() }).strict(),
    result: ProjectInfo,
  },
  'project.open': { args: z.object({ path: UserPath }).strict(), result: ProjectInfo },
  'project.openDemo': { args: Empty, result: ProjectInfo },
  'project.close': { args: Empty, result: z.null() },
  'project.current': { args: Empty, result: ProjectInfo.nullable() },
  'project.recent': { args: Empty, result: z.array(RecentProject) },
  'project.forgetRecent': { args: z.object({ path: UserPath }).strict(), result: z.array(RecentProject) },
  /** The full integrity check of the open project's database (every page), with the automatic backup's state. */
  'project.check': { args: Empty, result: IntegrityReport },
  /** A damaged project: the automatic backup put in place (the damaged file kept beside it), then opened. */
  'project.restoreBackup': { args: z.object({ path: UserPath }).strict(), result: ProjectInfo },
  /** A project whose damage is only in derived tables: rebuilt without them (recomputed by their jobs), opened. */
  'project.rebuild': { args: z.object({ path: UserPath }).strict(), result: ProjectInfo },
} as const;
