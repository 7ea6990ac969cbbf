/**
 * Labels of a labelled folder (sub-folder = class) for library items that hold the same content at another path:
 * a folder whose images were added before (from elsewhere, or as copies) still labels them, matched by content hash
 * (issue 26), instead of counting "0 found".
 */
import path from 'node:path';
import { classOfPath } from '../classify/knn-classify.js';
import { contentHash } from '../ingest/content-hash.js';
import { walkFiles } from '../ingest/walk.js';
import type { Project } from '../store/project.js';

/**
 * mediaId → class for files under `root` that are not themselves library items but whose content is; an item whose
 * content lies under two classes is left out (its label would be a guess).
 */
export async function labelsByContent(project: Project, root: string): Promise<Map<number, string>> {
  const labels = new Map<number, string>();
  const ambiguous = new Set<number>();
  const abs = path.resolve(root);
  try {
    for await (const e of walkFiles(abs)) {
      if (e.kind !== 'file') continue;
      const cls = classOfPath(abs, e.abs);
      // Files already in the library by path are labelled by their path.
      if (!cls || project.media.byPath(e.abs)) continue;
      const same = project.media.duplicateOf(await contentHash(e.abs, e.size), e.abs);
      if (!same) continue;
      const before = labels.get(same.id);
      if (before !== undefined && before !== cls) ambiguous.add(same.id);
      labels.set(same.id, cls);
    }
  } catch {
    // A folder that cannot be read labels nothing by content; the classify error says what was found.
  }
  for (const id of ambiguous) labels.delete(id);
  return labels;
}
