import { useApp } from '../state/app-state';
import { Icon } from './Icon';

/** Errors and messages as readable notices; details (codes, stack) stay one click away. */
export function Notices() {
  const { notices, dismiss } = useApp();
  if (notices.length === 0) return null;
  return (
    <section className="notices" aria-live="polite" aria-label="Notices">
      {notices.map((n) => (
        <div key={n.id} className={`notice notice-${n.kind}`} role={n.kind === 'error' ? 'alert' : 'status'}>
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
      ))}
    </section>
  );
}
