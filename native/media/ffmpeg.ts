/**
 * Finding ffmpeg and ffprobe: FFMPEG_PATH / FFPROBE_PATH, then ffmpeg-static when its binary was downloaded, then
 * the binaries shipped inside @ffmpeg-installer / @ffprobe-installer, then PATH.
 */
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import { createRequire } from 'node:module';
import path from 'node:path';
import { FlaneurError } from '../api/errors.js';

const require = createRequire(import.meta.url);

export interface Binary {
  path: string;
  source: 'env' | 'ffmpeg-static' | 'bundled' | 'PATH';
}

function fromPackage(pkg: string, key: 'path' | 'default'): string | null {
  try {
    const mod = require(pkg) as Record<string, unknown> | string;
    const p = typeof mod === 'string' ? mod : (mod[key] as string | undefined);
    return p && fs.existsSync(p) ? p : null;
  } catch {
    return null;
  }
}

function onPath(name: string): string | null {
  for (const dir of (process.env.PATH ?? '').split(path.delimiter)) {
    const p = path.join(dir, process.platform === 'win32' ? `${name}.exe` : name);
    if (dir && fs.existsSync(p)) return p;
  }
  return null;
}

let found: { ffmpeg: Binary; ffprobe: Binary } | null = null;

export function findBinaries(env: NodeJS.ProcessEnv = process.env): { ffmpeg: Binary; ffprobe: Binary } {
  if (found && env === process.env) return found;
  const pick = (name: 'ffmpeg' | 'ffprobe'): Binary => {
    const envPath = name === 'ffmpeg' ? env.FFMPEG_PATH : env.FFPROBE_PATH;
    if (envPath) {
      if (!fs.existsSync(envPath))
        throw new FlaneurError(
          'NOT_FOUND',
          `${name === 'ffmpeg' ? 'FFMPEG_PATH' : 'FFPROBE_PATH'} points to ${envPath}, which does not exist.`,
        );
      return { path: envPath, source: 'env' };
    }
    if (name === 'ffmpeg') {
      const st = fromPackage('ffmpeg-static', 'default');
      if (st) return { path: st, source: 'ffmpeg-static' };
    }
    const bundled = fromPackage(name === 'ffmpeg' ? '@ffmpeg-installer/ffmpeg' : '@ffprobe-installer/ffprobe', 'path');
    if (bundled) return { path: bundled, source: 'bundled' };
    const sys = onPath(name);
    if (sys) return { path: sys, source: 'PATH' };
    throw new FlaneurError(
      'NOT_FOUND',
      `No ${name} found: set ${name === 'ffmpeg' ? 'FFMPEG_PATH' : 'FFPROBE_PATH'} or install ffmpeg.`,
    );
  };
  const result = { ffmpeg: pick('ffmpeg'), ffprobe: pick('ffprobe') };
  if (env === process.env) found = result;
  return result;
}

export function binaryVersion(bin: string): string {
  try {
    const out = execFileSync(bin, ['-version'], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] });
    return out.split('\n')[0]?.trim() ?? 'unknown';
  } catch (err) {
    return `unusable: ${(err as Error).message}`;
  }
}

/** Names of the video decoders an ffmpeg binary has (`ffmpeg -decoders`, lines flagged V). */
export function videoDecoders(bin: string): string[] {
  try {
    const out = execFileSync(bin, ['-hide_banner', '-decoders'], {
      encoding: 'utf8',
      stdio: ['ignore', 'pipe', 'ignore'],
    });
    return out
      .split('\n')
      .map((l) => /^\s*V\S{5}\s+(\S+)/.exec(l)?.[1])
      .filter((n): n is string => Boolean(n) && n !== '=');
  } catch {
    return [];
  }
}
