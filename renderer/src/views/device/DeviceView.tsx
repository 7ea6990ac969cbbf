import { explainProvider } from '../../shell/errors';
import { formatBytes, PROVIDER_LABELS, plural } from '../../shell/format';
import { useApp } from '../../state/app-state';

/** Which execution providers load on this machine, which one runs, and the user's override. */
export function DeviceView() {
  const { client, runtime, run } = useApp();
  if (!runtime) {
    return (
      <div className="view">
        <header className="view-header">
          <h1>Device</h1>
        </header>
        <p className="muted">Probing execution providers…</p>
      </div>
    );
  }
  const webgpu = runtime.providers.find((p) => p.name === 'webgpu');
  const configure = (patch: { provider?: (typeof runtime.settings)['provider']; threads?: number | null }) =>
    void run('Could not change the device settings', () => client.call('runtime.configure', patch));
  return (
    <div className="view">
      <header className="view-header">
        <h1>Device</h1>
      </header>
      <section className="card" aria-labelledby="active-title">
        <h2 id="active-title">In use</h2>
        {runtime.active ? (
          <p data-testid="active-provider">
            Models run on <strong>{PROVIDER_LABELS[runtime.active.provider]}</strong> with{' '}
            {plural(runtime.active.threads, 'thread')}.
            {runtime.active.fallbacks.length > 0 && (
              <span className="muted">
                {' '}
                Tried first:{' '}
                {runtime.active.fallbacks
                  .map((f) => `${PROVIDER_LABELS[f.provider] ?? f.provider} (${explainProvider(f.provider, f.reason)})`)
                  .join('; ')}
                .
              </span>
            )}
          </p>
        ) : (
          <p className="muted">
            No model has run in this session yet; the first one will use the first available provider below.
          </p>
        )}
        <p className="muted">
          onnxruntime {runtime.ortVersion} · {runtime.cpus} CPU threads
        </p>
      </section>

      <section className="card" aria-labelledby="providers-title">
        <h2 id="providers-title">Execution providers, in order of preference</h2>
        <table className="items">
          <thead>
            <tr>
              <th>Provider</th>
              <th>Available</th>
              <th>Why not</th>
            </tr>
          </thead>
          <tbody>
            {runtime.providers.map((p) => (
              <tr key={p.name} data-testid={`provider-${p.name}`}>
                <td>{PROVIDER_LABELS[p.name]}</td>
                <td>
                  <span className={`badge badge-${p.available ? 'done' : 'cancelled'}`}>
                    {p.available ? 'yes' : 'no'}
                  </span>
                </td>
                <td>
                  {explainProvider(p.name, p.reason) ?? ''}
                  {p.reason && (
                    <details>
                      <summary>What ONNX Runtime said</summary>
                      <pre>{p.reason}</pre>
                    </details>
                  )}
                  {p.autoSkip && <span data-testid={`autoskip-${p.name}`}>{p.autoSkip}</span>}
                </td>
              </tr>
            ))}
          </tbody>
        </table>
        {webgpu?.adapter ? (
          <p data-testid="webgpu-adapter">
            WebGPU adapter:{' '}
            <strong>
              {[webgpu.adapter.vendor, webgpu.adapter.architecture].filter(Boolean).join(' ') || 'unknown vendor'}
            </strong>
            {webgpu.adapter.description && ` — ${webgpu.adapter.description}`} ·{' '}
            {webgpu.adapter.software ? 'software adapter (runs on the CPU)' : 'hardware'} · buffers up to{' '}
            {formatBytes(webgpu.adapter.maxBufferSize)}, storage bindings up to{' '}
            {formatBytes(webgpu.adapter.maxStorageBufferBindingSize)}
          </p>
        ) : (
          <p className="muted" data-testid="webgpu-adapter">
            No WebGPU adapter on this machine (no Vulkan, Direct3D 12 or Metal driver that Dawn can use).
          </p>
        )}
        {webgpu && webgpu.log.length > 0 && (
          <details>
            <summary className="muted">WebGPU start-up messages ({webgpu.log.length})</summary>
            <pre className="mono">{webgpu.log.join('\n')}</pre>
          </details>
        )}
      </section>

      <section className="card" aria-labelledby="settings-title">
        <h2 id="settings-title">Settings</h2>
        <div className="field">
          <label htmlFor="provider-override">Provider</label>
          <select
            id="provider-override"
            value={runtime.settings.provider}
            onChange={(e) => configure({ provider: e.target.value as typeof runtime.settings.provider })}
          >
            <option value="auto">Automatic (first available; never a software GPU)</option>
            {runtime.preference.map((p) => (
              <option key={p} value={p}>
                {PROVIDER_LABELS[p]}
              </option>
            ))}
          </select>
        </div>
        <div className="field">
          <label htmlFor="threads">CPU threads</label>
          <select
            id="threads"
            value={runtime.settings.threads ?? 'all'}
            onChange={(e) => configure({ threads: e.target.value === 'all' ? null : Number(e.target.value) })}
          >
            <option value="all">All ({runtime.cpus})</option>
            {Array.from({ length: runtime.cpus }, (_, i) => i + 1).map((n) => (
              <option key={n} value={n}>
                {n}
              </option>
            ))}
          </select>
        </div>
        <p className="muted">
          A provider that fails to load a model falls back to the next one; the reason shows above.
        </p>
      </section>
    </div>
  );
}
