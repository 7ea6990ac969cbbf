/**
 * The patch tokens of every frame of a feature run as one search bank (f16, normalised), kept for the project's
 * most recent run while its frames are unchanged (`features.keysVersion`): a patch query then costs the search,
 * not reading and converting every frame's tokens again (seconds at 2000 frames).
 */
import { BankBuilder, f16RowsToF32, type KnnBank, l2normalizeRows } from '../features/knn.js';
import type { FeatureRunRow } from '../store/features-repo.js';
import type { Project } from '../store/project.js';

export interface PatchBank {
  bank: KnnBank;
  /** The frame of each block of `perFrame` rows. */
  frames: { mediaId: number; frameIdx: number }[];
  perFrame: number;
}

const cache = new WeakMap<Project, { runId: number; version: string; value: PatchBank }>();

export function patchBank(project: Project, run: Pick<FeatureRunRow, 'id' | 'grid' | 'dim'>): PatchBank {
  const version = project.features.keysVersion(run.id);
  const hit = cache.get(project);
  if (hit && hit.runId === run.id && hit.version === version) return hit.value;
  // One bank at a time: the previous one is dropped before the next is read.
  cache.delete(project);
  const perFrame = run.grid * run.grid;
  const frames: PatchBank['frames'] = [];
  const read: { builder?: BankBuilder; version?: string } = {};
  project.features.visitPatches(
    run.id,
    (count) => {
      read.builder = new BankBuilder(run.dim, count * perFrame, 'float16');
      // The version of the snapshot being read (writes after it change the version, so the bank is read again).
      read.version = project.features.keysVersion(run.id);
    },
    (f) => {
      frames.push({ mediaId: f.mediaId, frameIdx: f.frameIdx });
      read.builder?.add(l2normalizeRows(f16RowsToF32(f.patches), run.dim));
    },
  );
  if (!read.builder || read.version === undefined) throw new Error('the patch snapshot was not read');
  const value = { bank: read.builder.finish(), frames, perFrame };
  cache.set(project, { runId: run.id, version: read.version, value });
  return value;
}
