/**
 * Addresses of stored frames. The same path names another picture in another project (`media/frame/1/0.png` is the
 * first item's first frame in each), and a page reuses a picture it has shown at an address for the rest of its life,
 * whatever the cache headers say (the HTML "list of available images"): after switching projects, views showed the
 * previous project's pictures. The open project's id is part of the address; the engine reads only the path.
 */
let projectKey = '';

/** Set by the app state whenever another project opens (or none). */
export function setFramesProject(id: string | null): void {
  projectKey = id ?? '';
}

/** The address of frame `frameIdx` (from 0) of item `mediaId` of the open project, as a PNG. */
export function frameSrc(mediaId: number, frameIdx: number): string {
  return `media/frame/${mediaId}/${frameIdx}.png${projectKey ? `?project=${encodeURIComponent(projectKey)}` : ''}`;
}
