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
  /** The frames in the bank, in order: frame i's patches are rows start .. start + count of the bank. */
  frames: { mediaId: number; frameIdx: number; start: number; count: number }[];
  /** Frames of the run; `frames.length` of them are in the bank (every `stride`-th). */
  totalFrames: number;
  stride: number;
}

/** A quarter of the machine's memory, at most 4 GiB: 2000 ViT-S/16 frames take 0.3 GB, 27 000 frames 4 GiB. */
export const PATCH_BANK_BUDGET = Math.min(os.totalmem() / 4, 4 * 1024 ** 3);

const cache = new WeakMap<Project, { runId: number; version: string; budget: number; value: PatchBank }>();

/** The frame whose rows hold bank row `row` (frames in row order), or -1. */
export function frameOfRow(frames: PatchBank['frames'], row: number): number {
  let lo = 0;
  let hi = frames.length - 1;
  while (lo <= hi) {
    const mid = (lo + hi) >> 1;
    const f = frames[mid] as PatchBank['frames'][number];
    if (row < f.start) hi = mid - 1;
    else if (row >= f.start + f.count) lo = mid + 1;
    else return mid;
  }
  return -1;
}

export function patchBank(
  project: Project,
  run: Pick<FeatureRunRow, 'id' | 'dim'>,
  budget = PATCH_BANK_BUDGET,
): PatchBank {
  const version = project.features.keysVersion(run.id);
  const hit = cache.get(project);
  if (hit && hit.runId === run.id && hit.version === version && hit.budget === budget) return hit.value;
  // One bank at a time: the previous one is dropped before the next is read.
  cache.delete(project);
  const frames: PatchBank['frames'] = [];
  let rows = 0;
  let snapshot: { builder: BankBuilder; version: string; totalFrames: number; stride: number } | undefined;
  project.features.visitPatches(
    run.id,
    (sizes) => {
      // Frames of an aspect-preserving run have as many patches as their media's grid: the bank is sized from the
      // byte size of every frame that will be visited.
      const total = sizes.reduce((a, b) => a + b, 0);
      const stride = Math.max(1, Math.ceil(total / budget));
      const visited = sizes.filter((_, i) => i % stride === 0).reduce((a, b) => a + b, 0);
      snapshot = {
        builder: new BankBuilder(run.dim, visited / 2 / run.dim, 'float16'),
        // The version of the snapshot being read (writes after it change the version, so the bank is read again).
        version: project.features.keysVersion(run.id),
        totalFrames: sizes.length,
        stride,
      };
      return stride;
    },
    (f) => {
      const count = f.patches.length / run.dim;
      frames.push({ mediaId: f.mediaId, frameIdx: f.frameIdx, start: rows, count });
      rows += count;
      snapshot?.builder.add(l2normalizeRows(f16RowsToF32(f.patches), run.dim));
    },
  );
  if (!snapshot) throw new Error('the patch snapshot was not read');
  const { builder, version: read, totalFrames, stride } = snapshot;
  const value = { bank: builder.finish(), frames, totalFrames, stride };
  cache.set(project, { runId: run.id, version: read, budget, value });
  return value;
}
