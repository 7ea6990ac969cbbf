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
