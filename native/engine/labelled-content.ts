/**
 * Labels of a labelled folder (sub-folder = class) for library items that hold the same content at another path:
 * a folder whose images were added before (from elsewhere, or as copies) still labels them, matched by content hash
 * (issue 26), instead of counting "0 found". Files that label nothing are reported with why, never dropped silently.
 */
import fs from 'node:fs';
import path from 'node:path';
import { FlaneurError } from '../api/errors.js';
import { classOfPath, type FolderLabels } from '../classify/knn-classify.js';
import { contentHash } from '../ingest/content-hash.js';
import { errnoReason, walkFiles } from '../ingest/walk.js';
import type { Project } from '../store/project.js';

/** Why a file under a class folder labels no library item. */
export type UnlabelledCode = 'UNREADABLE' | 'NOT_IN_LIBRARY' | 'NOT_INGESTED' | 'TWO_CLASSES';

export interface UnlabelledFile {
  path: string;
  code: UnlabelledCode;
  reason: string;
}

export interface ContentLabels {
  /** mediaId → class, for items whose content (not path) lies under a class folder. */
  labels: Map<number, string>;
  /** Library items under a class folder by their path (labelled by it, not here). */
  byPath: number[];
  /** Files under a class folder that label nothing, with why. */
  unlabelled: UnlabelledFile[];
}

/**
 * Content labels of the files under `root`'s class folders that are not themselves library items; an item whose
 * content lies under two classes is left out (its label would be a guess). A folder that cannot be read at all is
 * refused with why (`field` names the argument); a file that cannot be read is reported in `unlabelled`.
 */
export async function labelsByContent(project: Project, root: string, field = 'root'): Promise<ContentLabels> {
  const abs = path.resolve(root);
  try {
    if (!fs.statSync(abs).isDirectory())
      throw new FlaneurError('PATH_REFUSED', `${abs} is a file, not a folder of class sub-folders.`, { field });
  } catch (err) {
    if (err instanceof FlaneurError) throw err;
    const why = (err as NodeJS.ErrnoException).code === 'ENOENT' ? 'it does not exist' : errnoReason(err).reason;
    throw new FlaneurError('NOT_FOUND', `The labelled folder ${abs} cannot be read: ${why}.`, { field });
  }
  const labels = new Map<number, string>();
  const unlabelled: UnlabelledFile[] = [];
  const classesOf = new Map<number, { cls: string; files: string[] }[]>();
  const byPath: number[] = [];
  for await (const e of walkFiles(abs)) {
    const cls = classOfPath(abs, e.abs);
    if (!cls) continue;
    if (e.kind === 'refused') {
      unlabelled.push({ path: e.abs, code: 'UNREADABLE', reason: e.reason });
      continue;
    }
    // Files already in the library by path are labelled by their path.
    const own = project.media.byPath(e.abs);
    if (own) {
      byPath.push(own.id);
      continue;
    }
    let hash: string;
    try {
      hash = await contentHash(e.abs, e.size);
    } catch (err) {
      unlabelled.push({ path: e.abs, code: 'UNREADABLE', reason: readReason(err) });
      continue;
    }
    const same = project.media.duplicateOf(hash, e.abs);
    if (!same) {
      unlabelled.push({
        path: e.abs,
        code: 'NOT_IN_LIBRARY',
        reason: 'not in the library, by its path or as a copy of an item (add it in the Library view)',
      });
      continue;
    }
    if (same.status !== 'done') {
      unlabelled.push({
        path: e.abs,
        code: 'NOT_INGESTED',
        reason: `a copy of library item #${same.id}, which is ${same.status === 'pending' ? 'still being added' : same.status} (no frames yet)`,
      });
      continue;
    }
    const seen = classesOf.get(same.id) ?? [];
    const mine = seen.find((x) => x.cls === cls);
    if (mine) mine.files.push(e.abs);
    else seen.push({ cls, files: [e.abs] });
    classesOf.set(same.id, seen);
  }
  for (const [id, seen] of classesOf) {
    const only = seen.length === 1 ? seen[0] : undefined;
    if (only) {
      labels.set(id, only.cls);
      continue;
    }
    const where = seen.map((x) => x.cls).join(' and ');
    for (const x of seen)
      for (const f of x.files)
        unlabelled.push({
          path: f,
          code: 'TWO_CLASSES',
          reason: `a copy of library item #${id}, whose content lies under ${where}: its class would be a guess`,
        });
  }
  return { labels, byPath, unlabelled };
}

function readReason(err: unknown): string {
  return err instanceof FlaneurError ? err.message : errnoReason(err).reason;
}

/**
 * Why a labelled folder gave fewer labelled frames than expected, in a sentence or two: how many of its files label
 * nothing for each reason, with the first file of each. Empty when every file labels an item.
 */
export function unlabelledSummary(c: Pick<ContentLabels, 'unlabelled'>): string {
  const groups = new Map<UnlabelledCode, UnlabelledFile[]>();
  for (const u of c.unlabelled) groups.set(u.code, [...(groups.get(u.code) ?? []), u]);
  const parts = [...groups.values()].map((g) => {
    const first = g[0] as UnlabelledFile;
    const name = path.basename(first.path);
    return g.length === 1 ? `${name}: ${first.reason}` : `${g.length} files (e.g. ${name}): ${first.reason}`;
  });
  return parts.length ? `Files that label nothing — ${parts.join('; ')}.` : '';
}

/** What `classifyFolder` needs of a folder's content labels: the labels, every item it labels, and why not more. */
export function folderLabels(c: ContentLabels): FolderLabels {
  return { labels: c.labels, items: [...c.byPath, ...c.labels.keys()], why: unlabelledSummary(c) };
}
