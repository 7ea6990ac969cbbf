import { type FormEvent, useCallback, useEffect, useRef, useState } from 'react';
import type { CatalogEntryInfo, JobInfo, ModelInfo } from '../../../../native/api/contract';
import { useFileDrop } from '../../shell/drop';
import type { Explained } from '../../shell/errors';
import { formatBytes, formatDuration, formatTime } from '../../shell/format';
import { ModelAboutNote, NoModel } from '../../shell/ModelAbout';
import { PathField } from '../../shell/PathField';
import { ActionButton } from '../../shell/Why';
import { useApp } from '../../state/app-state';
import { TextModelsSection } from './TextModelsSection';

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

/** One catalog entry: what it is, what it is for, and how to get it (download when the publisher allows). */
function CatalogRow({
  e,
  job,
  onDownload,
  onResume,
}: {
  e: CatalogEntryInfo;
  job: JobInfo | undefined;
  onDownload(): void;
  onResume(id: number): void;
}) {
  const active = job && (job.state === 'running' || job.state === 'queued');
  const failed = job && (job.state === 'failed' || job.state === 'interrupted' || job.state === 'cancelled');
  const p = job?.progress;
  return (
    <tr data-testid={`catalog-${e.id}`}>
      <td>
        <strong>{e.title}</strong>
        <div className="muted">{e.goodFor}</div>
      </td>
      <td>
        ViT dim {e.dim}, {e.depth} blocks, {e.heads} heads, patch {e.patch}
        {e.registers > 0 && `, ${e.registers} registers`}
        {e.mlp === 'swiglu' && ', SwiGLU'}
        <div className="muted">{(e.params / 1e6).toFixed(1)}M parameters</div>
      </td>
      <td>
        {e.licence ?? 'not stated'}
        {e.licenceNote && <div className="muted">{e.licenceNote}</div>}
      </td>
      <td>
        {e.bytes ? formatBytes(e.bytes) : `≈ ${formatBytes(e.estimatedBytes)}`}
        <div className="muted">
          {e.sha256
            ? 'SHA-256 published'
            : e.sha256Prefix
              ? `SHA-256 prefix ${e.sha256Prefix}`
              : 'unverified (no published checksum)'}
        </div>
      </td>
      <td>
        {e.modelId !== null ? (
          <span className="badge">In this project (#{e.modelId})</span>
        ) : active && p ? (
          <div>
            <progress max={p.total ?? 1} value={p.total ? p.done : undefined} aria-label={`Download of ${e.title}`} />
            <div className="muted">
              {p.phase}: {formatBytes(p.done)}
              {p.total ? ` of ${formatBytes(p.total)}` : ''}
              {p.rate !== null && ` · ${formatBytes(p.rate)}/s`}
              {p.etaS !== null && ` · ETA ${formatDuration(p.etaS)}`}
            </div>
          </div>
        ) : e.url ? (
          <div>
            <button type="button" onClick={onDownload}>
              Download
            </button>
            {failed && job && (
              <div role="status" className="muted">
                {job.error?.message ?? `The download ${job.state}.`}{' '}
                {job.error?.code === 'NETWORK_UNAVAILABLE' ? (
                  <a href="#import-title">Import a file instead</a>
                ) : (
                  <button type="button" onClick={() => onResume(job.id)}>
                    Resume
                  </button>
                )}
              </div>
            )}
          </div>
        ) : (
          <div className="muted">{e.access}</div>
        )}
        <div className="muted">
          <a href={e.page} target="_blank" rel="noreferrer">
            Official page
          </a>
          {e.fileName && (
            <>
              {' '}
              · <span className="mono">{e.fileName}</span>
            </>
          )}
          {e.huggingFace && (
            <>
              {' '}
              · HF <span className="mono">{e.huggingFace}</span>
            </>
          )}
        </div>
      </td>
    </tr>
  );
}

/** The project's models: get published encoders (catalog, download, import a file or folder), see what they are. */
export function ModelsView() {
  const { client, run, attempt, project, jobs } = useApp();
  const [models, setModels] = useState<ModelInfo[]>([]);
  const [catalog, setCatalog] = useState<CatalogEntryInfo[]>([]);
  const [file, setFile] = useState('');
  const [name, setName] = useState('');
  const [licence, setLicence] = useState('');
  const [busy, setBusy] = useState(false);
  /** Attention heads, for a PyTorch checkpoint whose file does not say (the import asks for it). */
  const [heads, setHeads] = useState('');
  /** The model the last import registered: confirmed beside the button. */
  const [added, setAdded] = useState<ModelInfo | null>(null);

  /** Bumped by every models.changed event: a listing asked for before the last change is older than it. */
  const changes = useRef(0);
  const load = useCallback(async () => {
    const asked = changes.current;
    const [list, known] = await Promise.all([client.call('models.list', {}), client.call('models.catalog', {})]);
    // A model registered while the listing was on its way (the starter model of a new project) is not taken back.
    if (asked === changes.current) setModels(list);
    setCatalog(known);
  }, [client]);
  // biome-ignore lint/correctness/useExhaustiveDependencies: reload when another project opens
  useEffect(() => {
    void run('Could not list models', load);
    return client.subscribe((e) => {
      if (e.type === 'models.changed') {
        changes.current++;
        setModels(e.models);
        void client.call('models.catalog', {}).then(setCatalog, () => {});
      }
    });
  }, [client, run, load, project?.id]);

  const [fileError, setFileError] = useState<Explained | null>(null);
  const importPath = async (p: string) => {
    setBusy(true);
    setAdded(null);
    const h = Number(heads);
    const r = await attempt(() =>
      client.call('models.import', {
        path: p,
        ...(name ? { name } : {}),
        ...(licence ? { licence } : {}),
        ...(heads.trim() && Number.isInteger(h) && h > 0 ? { heads: h } : {}),
      }),
    );
    setBusy(false);
    // A refused file is explained under the path field, and the path stays there to correct.
    setFileError(r.ok ? null : r.error);
    if (r.ok) {
      setFile('');
      setName('');
      setLicence('');
      setHeads('');
      setAdded(r.value);
    }
  };
  const submit = async (e: FormEvent) => {
    e.preventDefault();
    await importPath(file);
  };
  const drop = useFileDrop(([first]) => {
    if (first) void importPath(first);
  });
  const downloads = jobs.filter((j) => j.kind === 'models.download');
  const jobOf = (id: string) => downloads.find((j) => j.args.id === id);

  return (
    <div className="view">
      <header className="view-header">
        <h1>Models</h1>
      </header>
      <form
        className={`card dropzone ${drop.dragging ? 'dragging' : ''}`}
        onSubmit={submit}
        {...drop.handlers}
        aria-labelledby="import-title"
        data-testid="model-dropzone"
      >
        <h2 id="import-title">Import a file</h2>
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
          onChange={(v) => {
            setFile(v);
            setFileError(null);
          }}
          error={fileError}
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
        <div className="field">
          <label htmlFor="model-heads">Attention heads (only if the import asks)</label>
          <input
            id="model-heads"
            type="number"
            min={1}
            max={64}
            value={heads}
            onChange={(e) => setHeads(e.target.value)}
            placeholder="e.g. 6 for ViT-S, 12 for ViT-B"
            aria-describedby="model-heads-help"
          />
          <span id="model-heads-help" className="muted">
            Some PyTorch checkpoints do not record how many attention heads the model has: ViT-Ti 3, ViT-S 6, ViT-B 12,
            ViT-L 16 (the model's page says). Leave empty otherwise.
          </span>
        </div>
        <div className="row-actions">
          <ActionButton
            type="submit"
            className="primary"
            why={!file.trim() && 'Type the path of a weights file or folder, or drop a file here.'}
            busy={busy && 'Checking, hashing and copying the weights…'}
          >
            Import
          </ActionButton>
          {added && (
            <span className="import-done" role="status" data-testid="model-imported">
              Imported “{added.name}” as model #{added.id} ({describe(added)}).{' '}
              {/* Not a #anchor: the address's hash is the view. */}
              <button
                type="button"
                className="link"
                onClick={() => document.getElementById(`model-${added.id}`)?.scrollIntoView({ block: 'center' })}
              >
                See it below
              </button>
            </span>
          )}
        </div>
      </form>
      <section aria-labelledby="models-title">
        <h2 id="models-title">In this project</h2>
        {models.length === 0 ? (
          <div className="card empty">
            <NoModel />
          </div>
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
                <tr key={m.id} id={`model-${m.id}`} data-testid={`model-${m.id}`}>
                  <td>
                    <strong>{m.name}</strong>
                    <div className="muted">added {formatTime(m.createdAt)}</div>
                    {m.licence && <div className="muted">licence: {m.licence}</div>}
                    <ModelAboutNote model={m} />
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
      <TextModelsSection />
      <section className="card" aria-labelledby="get-title">
        <h2 id="get-title">Get models</h2>
        <p className="muted">
          Published self-supervised encoders Flaneur can use. Nothing is downloaded unless you click Download; without a
          network, download the file on any machine and import it above. Sizes marked ≈ are the float32 size of the
          architecture (the publishers state none).
        </p>
        <table className="items">
          <thead>
            <tr>
              <th>Model</th>
              <th>Architecture</th>
              <th>Licence</th>
              <th>Size</th>
              <th>Get it</th>
            </tr>
          </thead>
          <tbody>
            {catalog.map((e) => (
              <CatalogRow
                key={e.id}
                e={e}
                job={jobOf(e.id)}
                onDownload={() =>
                  void run(`Could not download ${e.title}`, () => client.call('models.download', { id: e.id }))
                }
                onResume={(id) => void run('Could not resume the download', () => client.call('jobs.resume', { id }))}
              />
            ))}
          </tbody>
        </table>
      </section>
    </div>
  );
}
