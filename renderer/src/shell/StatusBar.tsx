import { useApp } from '../state/app-state';
import { formatDuration } from './format';
import { jobOutcome } from './jobs';

/** Transport, connection and the job in progress, always visible at the bottom. */
export function StatusBar() {
  const { client, connection, jobs, appInfo, runtime } = useApp();
  const running = jobs.filter((j) => j.state === 'running');
  const queued = jobs.filter((j) => j.state === 'queued').length;
  const first = running[0];
  // The newest finished job, when it did not fully succeed: it stays visible until a later job finishes.
  const last = jobs.find((j) => j.state !== 'running' && j.state !== 'queued');
  const lastOutcome = last ? jobOutcome(last) : null;
  return (
    <footer className="statusbar">
      <span>{client.transport === 'electron' ? 'Desktop' : 'Browser mode (127.0.0.1)'}</span>
      <span className={connection === 'connected' ? 'ok' : 'warn'}>
        {connection === 'connected' ? 'Engine connected' : 'Reconnecting to the engine…'}
      </span>
      {first ? (
        <span className="status-job" data-testid="status-job">
          {first.title}: {first.progress.phase}
          {first.progress.total !== null && (
            <progress max={first.progress.total} value={first.progress.done} aria-label="Running job progress" />
          )}
          {first.progress.etaS !== null && <span> ETA {formatDuration(first.progress.etaS)}</span>}
          {running.length > 1 && <span> (+{running.length - 1} running)</span>}
        </span>
      ) : (
        <span>No job running</span>
      )}
      {queued > 0 && <span>{queued} queued</span>}
      {last && lastOutcome && (lastOutcome.tone === 'failed' || lastOutcome.tone === 'partial') && (
        <a href="#/jobs" className="err" data-testid="status-last-failure">
          Job #{last.id} {lastOutcome.label}
        </a>
      )}
      <span className="spacer" />
      {runtime && (
        <span data-testid="status-provider" title="Execution provider of the most recent model session (Device view)">
          {runtime.active
            ? `Running on ${runtime.active.provider.toUpperCase()}`
            : `Providers: ${runtime.providers
                .filter((p) => p.available)
                .map((p) => p.name)
                .join(', ')}`}
        </span>
      )}
      {appInfo && <span className="muted">Flaneur {appInfo.version}</span>}
    </footer>
  );
}
