/**
 * Small inline SVG icons. Symbols such as ▶ ◀ ← ⚠ are not in every font (a machine with only a Latin font draws
 * nothing for them), and Play and Next-frame must look different; SVG draws the same everywhere.
 */
const PATHS = {
  play: 'M5 3.5v13l11-6.5z',
  pause: 'M5 3.5h3.5v13H5zM11.5 3.5H15v13h-3.5z',
  /** Next frame: a bar after a small triangle (⏵|), unlike Play's large triangle. */
  next: 'M4 5v10l7.5-5zM13 4.5h2.5v11H13z',
  previous: 'M16 5v10l-7.5-5zM7 4.5H4.5v11H7z',
  back: 'M9 4.5 3.5 10 9 15.5M4 10h12.5',
  forward: 'M11 4.5l5.5 5.5-5.5 5.5M16 10H3.5',
  warning: 'M10 2.5 18.5 17h-17zM10 8v4.5M10 14.2v.6',
  close: 'M5 5l10 10M15 5 5 15',
} as const;

export type IconName = keyof typeof PATHS;

const STROKED: ReadonlySet<IconName> = new Set(['back', 'forward', 'warning', 'close']);

export function Icon({ name, label }: { name: IconName; label?: string }) {
  const stroked = STROKED.has(name);
  return (
    <svg
      className="icon"
      viewBox="0 0 20 20"
      width="1em"
      height="1em"
      role={label ? 'img' : undefined}
      aria-label={label}
      aria-hidden={label ? undefined : true}
      fill={stroked ? 'none' : 'currentColor'}
      stroke={stroked ? 'currentColor' : 'none'}
      strokeWidth={stroked ? 1.8 : undefined}
      strokeLinecap="round"
      strokeLinejoin="round"
    >
      <path d={PATHS[name]} />
    </svg>
  );
}
