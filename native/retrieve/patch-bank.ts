/**
 * The patch tokens of every frame of a feature run as one search bank (f16, normalised), kept for the project's
 * most recent run while its frames are unchanged (`features.keysVersion`): a patch query then costs the search,
 * not reading and converting every frame's tokens again (seconds at 2000 frames). A bank larger than the memory
 * budget holds every s-th frame instead of failing the engine, and says so.
 */
import os from 'node:os';
import { BankBuilder, f16RowsToF32, type KnnBank, l2normalizeRows } from '../features/knn.js';
import type { FeatureRunRow } from '../store/features-repo.js';
import type { Project } from '../store/project.js';

export interface PatchBank {
  bank: KnnBank;
  /** The frame of each block of `perFrame` rows. */
  frames: { mediaId: number; frameIdx: number }[];
  perFrame: number;
  /** Frames of the run; `frames.length` of them are in the bank (every `stride`-th). */
  totalFrames: number;
  stride: number;
}

/** A quarter of the machine's memory, at most 4 GiB: 2000 ViT-S/16 frames take 0.3 GB, 27 000 frames 4 GiB. */
export const PATCH_BANK_BUDGET = Math.min(os.totalmem() / 4, 4 * 1024 ** 3);

const cache = new WeakMap<Project, { runId: number; version: string; budget: number; value: PatchBank }>();

export function patchBank(
  project: Project,
  run: Pick<FeatureRunRow, 'id' | 'grid' | 'dim'>,
  budget = PATCH_BANK_BUDGET,
): PatchBank {
  const version = project.features.keysVersion(run.id);
  const hit = cache.get(project);
  if (hit && hit.runId === run.id && hit.version === version && hit.budget === budget) return hit.value;
  // One bank at a time: the previous one is dropped before the next is read.
  cache.delete(project);
  const perFrame = run.grid * run.grid;
  const frameBytes = perFrame * run.dim * 2;
  const frames: PatchBank['frames'] = [];
  let snapshot: { builder: BankBuilder; version: string; totalFrames: number; stride: number } | undefined;
  project.features.visitPatches(
    run.id,
    (count) => {
      const stride = Math.max(1, Math.ceil((count * frameBytes) / budget));
      snapshot = {
        builder: new BankBuilder(run.dim, Math.ceil(count / stride) * perFrame, 'float16'),
        // The version of the snapshot being read (writes after it change the version, so the bank is read again).
        version: project.features.keysVersion(run.id),
        totalFrames: count,
        stride,
      };
      return stride;
    },
    (f) => {
      frames.push({ mediaId: f.mediaId, frameIdx: f.frameIdx });
      snapshot?.builder.add(l2normalizeRows(f16RowsToF32(f.patches), run.dim));
    },
  );
  if (!snapshot) throw new Error('the patch snapshot was not read');
  const { builder, version: read, totalFrames, stride } = snapshot;
  const value = { bank: builder.finish(), frames, perFrame, totalFrames, stride };
  cache.set(project, { runId: run.id, version: read, budget, value });
  return value;
}
