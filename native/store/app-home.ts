/**
 * Per-user application state outside any project: the recent-projects list and the demo project's folder.
 * FLANEUR_HOME overrides the location (tests, portable installs).
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import type { RecentProject } from '../api/contract.js';

const MAX_RECENT = 12;

export function defaultHome(env: NodeJS.ProcessEnv = process.env, platform = process.platform): string {
  if (env.FLANEUR_HOME) return path.resolve(env.FLANEUR_HOME);
  const home = os.homedir();
  if (platform === 'win32') return path.join(env.APPDATA ?? path.join(home, 'AppData', 'Roaming'), 'Flaneur');
  if (platform === 'darwin') return path.join(home, 'Library', 'Application Support', 'Flaneur');
  return path.join(env.XDG_CONFIG_HOME ?? path.join(home, '.config'), 'flaneur');
}

interface StoredRecent {
  path: string;
  name: string;
  openedAt: string;
}

export class AppHome {
  constructor(readonly dir: string) {
    fs.mkdirSync(dir, { recursive: true });
  }

  private get settingsFile(): string {
    return path.join(this.dir, 'settings.json');
  }

  /** App-wide settings (a JSON object); unreadable files count as empty. */
  settings(): Record<string, unknown> {
    try {
      const v: unknown = JSON.parse(fs.readFileSync(this.settingsFile, 'utf8'));
      return typeof v === 'object' && v !== null && !Array.isArray(v) ? (v as Record<string, unknown>) : {};
    } catch {
      return {};
    }
  }

  updateSettings(patch: Record<string, unknown>): Record<string, unknown> {
    const next = { ...this.settings(), ...patch };
    const tmp = `${this.settingsFile}.${process.pid}.tmp`;
    fs.writeFileSync(tmp, JSON.stringify(next, null, 2));
    fs.renameSync(tmp, this.settingsFile);
    return next;
  }

  get demoProjectDir(): string {
    return path.join(this.dir, 'demo-project');
  }

  private get recentFile(): string {
    return path.join(this.dir, 'recent-projects.json');
  }

  private readStored(): StoredRecent[] {
    try {
      const data: unknown = JSON.parse(fs.readFileSync(this.recentFile, 'utf8'));
      if (!Array.isArray(data)) return [];
      return data.filter(
        (r): r is StoredRecent =>
          typeof r === 'object' &&
          r !== null &&
          typeof r.path === 'string' &&
          typeof r.name === 'string' &&
          typeof r.openedAt === 'string',
      );
    } catch {
      // A missing or damaged list is not worth failing over; it is rebuilt as projects are opened.
      return [];
    }
  }

  private writeStored(list: StoredRecent[]): void {
    const tmp = `${this.recentFile}.${process.pid}.tmp`;
    fs.writeFileSync(tmp, JSON.stringify(list, null, 2));
    fs.renameSync(tmp, this.recentFile);
  }

  recent(): RecentProject[] {
    return this.readStored().map((r) => ({ ...r, exists: fs.existsSync(path.join(r.path, 'project.sqlite')) }));
  }

  touchRecent(projectPath: string, name: string): void {
    const list = this.readStored().filter((r) => r.path !== projectPath);
    list.unshift({ path: projectPath, name, openedAt: new Date().toISOString() });
    this.writeStored(list.slice(0, MAX_RECENT));
  }

  forgetRecent(projectPath: string): RecentProject[] {
    this.writeStored(this.readStored().filter((r) => r.path !== path.resolve(projectPath)));
    return this.recent();
  }
}
