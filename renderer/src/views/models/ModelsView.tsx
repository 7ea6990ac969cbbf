import { type FormEvent, useCallback, useEffect, useState } from 'react';
import type { ModelInfo } from '../../../../native/api/contract';
import { formatTime } from '../../shell/format';
import { PathField } from '../../shell/PathField';
import { useApp } from '../../state/app-state';

function describe(m: ModelInfo): string {
  const a = m.architecture;
  const kind = a.family === 'dinov3' ? 'DINOv3' : a.family === 'dinov2' ? 'DINOv2' : 'DINO';
  const size =
    a.dim >= 1024
      ? 'L'
      : a.dim >= 768
        ? 'B'
        : a.dim >= 384
          ? a.mlp === 'swiglu'
            ? 'S+'
            : 'S'
          : a.dim >= 192
            ? 'Ti'
            : `d${a.dim}`;
  return `${kind} ViT-${size}/${a.patchSize}${a.registers ? ` + ${a.registers} registers` : ''}`;
}

/** The project's models: import DINO / DINOv2 .safetensors files, see what they are. */
export function ModelsView() {
  const { client, run, project } = useApp();
  const [models, setModels] = useState<ModelInfo[]>([]);
  const [file, setFile] = useState('');
  const [name, setName] = useState('');
  const [licence, setLicence] = useState('');
  const [busy, setBusy] = useState(false);

  const load = useCallback(async () => setModels(await client.call('models.list', {})), [client]);
  // biome-ignore lint/correctness/useExhaustiveDependencies: reload when another project opens
  useEffect(() => {
    void run('Could not list models', load);
    return client.subscribe((e) => {
      if (e.type === 'models.changed') setModels(e.models);
    });
  }, [client, run, load, project?.id]);

  const submit = async (e: FormEvent) => {
    e.preventDefault();
    setBusy(true);
    const m = await run('Could not import the model', () =>
      client.call('models.import', { path: file, ...(name ? { name } : {}), ...(licence ? { licence } : {}) }),
    );
    setBusy(false);
    if (m) {
      setFile('');
      setName('');
      setLicence('');
    }
  };

  return (
    <div className="view">
      <header className="view-header">
        <h1>Models</h1>
      </header>
      <form className="card" onSubmit={submit} aria-labelledby="import-title">
        <h2 id="import-title">Import weights</h2>
        <p className="muted">
          A DINO or DINOv2 checkpoint as <span className="mono">.safetensors</span>, a Hugging Face snapshot folder
          (with its <span className="mono">config.json</span>), or a PyTorch <span className="mono">.pth</span> /{' '}
          <span className="mono">.pt</span> / <span className="mono">.bin</span> file (read without Python; only tensors
          and plain data are accepted). Download it on any machine; the file is checked, hashed and stored in the
          project.
        </p>
        <PathField
          label="Weights file"
          name="model-path"
          value={file}
          onChange={setFile}
          placeholder="/path/to/model.safetensors, checkpoint.pth or a snapshot folder"
        />
        <div className="grid-2">
          <div className="field">
            <label htmlFor="model-name">Name (optional)</label>
            <input id="model-name" value={name} onChange={(e) => setName(e.target.value)} />
          </div>
          <div className="field">
            <label htmlFor="model-licence">Licence (optional)</label>
            <input
              id="model-licence"
              value={licence}
              onChange={(e) => setLicence(e.target.value)}
              placeholder="e.g. Apache-2.0"
            />
          </div>
        </div>
        <button type="submit" className="primary" disabled={!file.trim() || busy}>
          {busy ? 'Importing…' : 'Import'}
        </button>
      </form>

      <section aria-labelledby="models-title">
        <h2 id="models-title">In this project</h2>
        {models.length === 0 ? (
          <p className="muted card empty">
            No models yet. Import a checkpoint above; the embedded default model arrives with the Dora training feature.
          </p>
        ) : (
          <table className="items card">
            <thead>
              <tr>
                <th>Name</th>
                <th>Architecture</th>
                <th>Parameters</th>
                <th>Weights</th>
                <th>SHA-256</th>
                <th />
              </tr>
            </thead>
            <tbody>
              {models.map((m) => (
                <tr key={m.id} data-testid={`model-${m.id}`}>
                  <td>
                    <strong>{m.name}</strong>
                    <div className="muted">added {formatTime(m.createdAt)}</div>
                    {m.licence && <div className="muted">licence: {m.licence}</div>}
                  </td>
                  <td>
                    {describe(m)}
                    <div className="muted">
                      dim {m.architecture.dim}, depth {m.architecture.depth}, {m.architecture.heads} heads,{' '}
                      {m.architecture.family === 'dinov3'
                        ? 'RoPE (any input size)'
                        : `trained at ${m.architecture.posGrid * m.architecture.patchSize} px`}
                    </div>
                  </td>
                  <td>{(m.params / 1e6).toFixed(m.params < 1e6 ? 2 : 1)}M</td>
                  <td>
                    {m.sourceDtype}, {m.scheme} names
                    <div className="muted mono">{m.source}</div>
                    {m.origin && <div className="muted">{m.origin}</div>}
                  </td>
                  <td className="mono">{m.sha256.slice(0, 12)}…</td>
                  <td>
                    <button
                      type="button"
                      onClick={() =>
                        void run('Could not remove the model', () => client.call('models.remove', { id: m.id }))
                      }
                    >
                      Remove
                    </button>
                  </td>
                </tr>
              ))}
            </tbody>
          </table>
        )}
      </section>
    </div>
  );
}
