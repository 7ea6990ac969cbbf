import { type DragEvent, useState } from 'react';

/** Absolute paths of files dropped from a file manager (text/uri-list of file:// URLs, or plain paths). */
export function pathsFromDrop(uriList: string, text: string): string[] {
  const source = uriList || text;
  return source
    .split(/\r?\n/)
    .map((l) => l.trim())
    .filter((l) => l && !l.startsWith('#'))
    .map((l) => (l.startsWith('file://') ? decodeURIComponent(new URL(l).pathname) : l))
    .filter((p) => p.startsWith('/') || /^[A-Za-z]:[\\/]/.test(p));
}

/**
 * A drop target for files from a file manager: `dragging` while something is held over it, and `onPaths` with the
 * absolute paths dropped. Spread `handlers` on the element.
 */
export function useFileDrop(onPaths: (paths: string[]) => void) {
  const [dragging, setDragging] = useState(false);
  return {
    dragging,
    handlers: {
      onDragOver: (e: DragEvent) => {
        e.preventDefault();
        setDragging(true);
      },
      onDragLeave: () => setDragging(false),
      onDrop: (e: DragEvent) => {
        e.preventDefault();
        setDragging(false);
        onPaths(pathsFromDrop(e.dataTransfer.getData('text/uri-list'), e.dataTransfer.getData('text/plain')));
      },
    },
  };
}
