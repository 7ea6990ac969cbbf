import { useEffect, useState } from 'react';
import { type Notice, useApp } from '../state/app-state';
import { Icon } from './Icon';

/**
 * How long a notice stays: long enough to read an error and act on it, short enough not to cover what comes after.
 * The pointer on a notice (or its details open) keeps it.
 */
export const NOTICE_MS = { error: 20_000, info: 6_000 } as const;

function NoticeItem({ n, dismiss }: { n: Notice; dismiss(id: number): void }) {
  const [held, setHeld] = useState(false);
  useEffect(() => {
    if (held) return;
    const t = setTimeout(() => dismiss(n.id), NOTICE_MS[n.kind]);
    return () => clearTimeout(t);
  }, [held, n.id, n.kind, dismiss]);
  return (
    // biome-ignore lint/a11y/noStaticElementInteractions: pointer and focus only pause the notice's expiry
    <div
      className={`notice notice-${n.kind}`}
      role={n.kind === 'error' ? 'alert' : 'status'}
      data-testid="notice"
      onMouseEnter={() => setHeld(true)}
      onMouseLeave={() => setHeld(false)}
      onFocus={() => setHeld(true)}
      onBlur={() => setHeld(false)}
    >
      <div className="notice-head">
        <strong>{n.title}</strong>
        <button type="button" className="icon-button" onClick={() => dismiss(n.id)} aria-label="Dismiss notice">
          <Icon name="close" />
        </button>
      </div>
      <p>{n.message}</p>
      {(n.details || n.code) && (
        <details>
          <summary>Details</summary>
          {n.code && <p className="mono">code: {n.code}</p>}
          {n.details && <pre>{n.details}</pre>}
        </details>
      )}
    </div>
  );
}

/**
 * Errors and messages as readable notices; details (codes, stack) stay one click away. Each closes by itself after a
 * while (errors later than messages), and an action that succeeds removes its own earlier error (app-state's run).
 */
export function Notices() {
  const { notices, dismiss } = useApp();
  if (notices.length === 0) return null;
  return (
    <section className="notices" aria-live="polite" aria-label="Notices">
      {notices.map((n) => (
        <NoticeItem key={n.id} n={n} dismiss={dismiss} />
      ))}
    </section>
  );
}
