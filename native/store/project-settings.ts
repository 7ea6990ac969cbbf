/**
 * A project's own settings that are choices, not data (the default model): `settings.json` in the project folder,
 * beside project.sqlite, written atomically. An unreadable file counts as no settings (every setting has a default).
 */
import fs from 'node:fs';
import path from 'node:path';

export interface ProjectSettings {
  /** The model commands use when none is named; absent: the newest registered model. */
  defaultModelId?: number;
}

const file = (dir: string) => path.join(dir, 'settings.json');

export function readProjectSettings(dir: string): ProjectSettings {
  try {
    const v: unknown = JSON.parse(fs.readFileSync(file(dir), 'utf8'));
    if (typeof v !== 'object' || v === null || Array.isArray(v)) return {};
    const id = (v as Record<string, unknown>).defaultModelId;
    return Number.isInteger(id) && (id as number) > 0 ? { defaultModelId: id as number } : {};
  } catch {
    return {};
  }
}

export function updateProjectSettings(dir: string, patch: Partial<Record<keyof ProjectSettings, unknown>>): void {
  const next: Record<string, unknown> = { ...readProjectSettings(dir), ...patch };
  for (const [k, v] of Object.entries(next)) if (v === undefined || v === null) delete next[k];
  const tmp = `${file(dir)}.${process.pid}.tmp`;
  fs.writeFileSync(tmp, JSON.stringify(next, null, 2));
  fs.renameSync(tmp, file(dir));
}
