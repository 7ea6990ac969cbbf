/**
 * The catalog of published checkpoints (models/catalog.json, data shipped with the app): loading and validation,
 * the size an entry's architecture implies, and recognising an imported file as an entry (its SHA-256, a published
 * SHA-256 prefix, or its published file name).
 */
import fs from 'node:fs';
import path from 'node:path';
import { z } from 'zod';
import { CatalogEntry } from '../api/contract.js';
import { FlaneurError } from '../api/errors.js';
import { IMAGENET_MEAN, IMAGENET_STD } from './preprocess.js';
import { type ViTConfig, vitParamCount } from './vit.js';

const CatalogFile = z.object({ about: z.string(), entries: z.array(CatalogEntry) }).strict();

export function loadCatalog(file: string): CatalogEntry[] {
  let raw: unknown;
  try {
    raw = JSON.parse(fs.readFileSync(file, 'utf8'));
  } catch (err) {
    throw new FlaneurError('INTERNAL', `The model catalog ${file} cannot be read: ${(err as Error).message}`);
  }
  const parsed = CatalogFile.safeParse(raw);
  if (!parsed.success) {
    throw new FlaneurError('INTERNAL', `The model catalog ${file} is malformed: ${parsed.error.message}`);
  }
  return parsed.data.entries;
}

/** The architecture an entry describes, as a ViTConfig (RoPE periods of the right count for DINOv3). */
export function entryConfig(e: CatalogEntry): ViTConfig {
  const hd = e.dim / e.heads;
  return {
    family: e.family,
    patchSize: e.patch,
    dim: e.dim,
    depth: e.depth,
    heads: e.heads,
    mlpHidden: 4 * e.dim,
    registers: e.registers,
    layerScale: e.family !== 'dino',
    lnEps: e.family === 'dinov3' ? 1e-5 : 1e-6,
    posGrid: e.family === 'dinov2' ? 37 : 224 / e.patch,
    posInterpolation: 'offset',
    ...(e.family === 'dinov3' ? { ropePeriods: Array.from({ length: hd / 4 }, (_, i) => 100 ** ((4 * i) / hd)) } : {}),
    mlp: e.mlp,
    mean: IMAGENET_MEAN,
    std: IMAGENET_STD,
  };
}

export function entryParams(e: CatalogEntry): number {
  return vitParamCount(entryConfig(e));
}

export interface CatalogMatch {
  entry: CatalogEntry;
  by: 'sha256' | 'sha256 prefix' | 'file name';
}

/**
 * The entry a file is, by content first (full SHA-256, then a published prefix), then by its published name. A file
 * carrying an entry's name whose SHA-256 contradicts the published prefix is refused: damaged or not that file.
 */
export function matchCatalog(entries: readonly CatalogEntry[], file: string, sha256: string): CatalogMatch | null {
  const bySha = entries.find((e) => e.sha256 === sha256);
  if (bySha) return { entry: bySha, by: 'sha256' };
  const byPrefix = entries.find((e) => e.sha256Prefix && sha256.startsWith(e.sha256Prefix));
  if (byPrefix) return { entry: byPrefix, by: 'sha256 prefix' };
  const name = path.basename(file);
  const byName = entries.find((e) => e.fileName === name);
  if (!byName) return null;
  if (byName.sha256 || byName.sha256Prefix) {
    throw new FlaneurError(
      'INVALID_MODEL',
      `${name} has the name of ${byName.title}, but its SHA-256 (${sha256.slice(0, 12)}…) is not the published one (${(byName.sha256 ?? byName.sha256Prefix) as string}…): the file is damaged or a different file. Download it again.`,
    );
  }
  return { entry: byName, by: 'file name' };
}

/** Whether an imported architecture is the one the entry describes (a recognised name must also fit). */
export function fitsEntry(e: CatalogEntry, c: ViTConfig): boolean {
  return (
    e.family === c.family &&
    e.patch === c.patchSize &&
    e.dim === c.dim &&
    e.depth === c.depth &&
    e.registers === c.registers &&
    e.mlp === (c.mlp ?? 'gelu')
  );
}
