import { type FormEvent, useCallback, useEffect, useState } from 'react';
import type { TextModelInfo } from '../../../../native/api/contract';
import type { Explained } from '../../shell/errors';
import { FieldError } from '../../shell/FieldError';
import { formatBytes, formatTime } from '../../shell/format';
import { PathField } from '../../shell/PathField';
import { ActionButton } from '../../shell/Why';
import { useApp } from '../../state/app-state';

/** What a text model is, in a few words (the summary sentence says the rest). */
function kindOf(m: TextModelInfo): string {
  return m.llm ? `Language model (${m.llm.format.toUpperCase()}, ${m.llm.arch}, width ${m.llm.dim})` : 'ShareLock head';
}

/** A head's pairing: the language model and the vision encoder whose features it was trained on. */
function PairsWith({ m }: { m: TextModelInfo }) {
  const h = m.head;
  if (!h) return null;
  const v = h.vision;
  return (
    <div className="muted">
      pairs with the language model {h.textModel.name ?? `of ${h.textModel.dim}-d features`} and the vision encoder{' '}
      {v.name ?? `${v.architecture.family ?? 'a ViT'} of width ${v.architecture.dim}`}
    </div>
  );
}

/**
 * The project's language models and ShareLock heads (issue 29): listed with their size and memory, imported from
 * a path (a language model stays where it is; a head is copied in), removed. What Retrieve's "Search by text",
 * Classify's zero-shot card and Map's "Similarity to a text" need.
 */
export function TextModelsSection() {
  const { client, run, attempt, project } = useApp();
  const [models, setModels] = useState<TextModelInfo[]>([]);
  const [file, setFile] = useState('');
  const [name, setName] = useState('');
  const [busy, setBusy] = useState(false);
  const [fileError, setFileError] = useState<Explained | null>(null);
  const [added, setAdded] = useState<(TextModelInfo & { existed: boolean }) | null>(null);
  /** A refused removal, shown in the row whose Remove button was pressed. */
  const [removeError, setRemoveError] = useState<{ id: number; error: Explained } | null>(null);

  const load = useCallback(async () => setModels(await client.call('text.models.list', {})), [client]);
  // biome-ignore lint/correctness/useExhaustiveDependencies: reload when another project opens
  useEffect(() => {
    void run('Could not list the language models', load);
  }, [run, load, project?.id]);

  const submit = async (e: FormEvent) => {
    e.preventDefault();
    setBusy(true);
    setAdded(null);
    const r = await attempt(() =>
      client.call('text.models.import', { path: file.trim(), ...(name.trim() ? { name: name.trim() } : {}) }),
    );
    setBusy(false);
    // A refused file is explained under the path field, and the path stays there to correct.
    setFileError(r.ok ? null : r.error);
    if (r.ok) {
      setFile('');
      setName('');
      setAdded(r.value);
      await run('Could not list the language models', load);
    }
  };

  const remove = async (m: TextModelInfo) => {
    setRemoveError(null);
    const r = await attempt(() => client.call('text.models.remove', { id: m.id }));
    if (r.ok) {
      setModels(r.value);
      if (added?.id === m.id) setAdded(null);
    } else setRemoveError({ id: m.id, error: r.error });
  };

  return (
    <section aria-labelledby="text-models-title" data-testid="text-models">
      <h2 id="text-models-title">Language models and text heads</h2>
      <form className="card" onSubmit={submit} aria-label="Import a language model or text head">
        <p className="muted">
          What <em>Search by text</em> (Retrieve), zero-shot classes (Classify) and <em>Similarity to a text</em> (Map)
          need: a ShareLock head and the language model it was trained on. A language model is a{' '}
          <span className="mono">.gguf</span> file, or a <span className="mono">.safetensors</span> one with its{' '}
          <span className="mono">config.json</span> and <span className="mono">tokenizer.json</span> beside it; it stays
          where it is (it is large) and is only described here. A head is a <span className="mono">.safetensors</span>{' '}
          file saved by Flaneur or an official ShareLock <span className="mono">.ckpt</span> (read without running
          anything in it); it is copied into the project. From the command line:{' '}
          <span className="mono">flaneur text import FILE</span>.
        </p>
        <PathField
          label="Language model or head file"
          name="text-model-path"
          value={file}
          onChange={(v) => {
            setFile(v);
            setFileError(null);
          }}
          error={fileError}
          placeholder="/path/to/model.gguf, head.safetensors or sharelock.ckpt"
        />
        <div className="field">
          <label htmlFor="text-model-name">Shown as (optional)</label>
          <input id="text-model-name" value={name} onChange={(e) => setName(e.target.value)} />
        </div>
        <div className="row-actions">
          <ActionButton
            type="submit"
            className="primary"
            why={!file.trim() && 'Type the path of a language model or a ShareLock head.'}
            busy={busy && 'Reading the file: checking it, and hashing and copying a head…'}
          >
            Add to the project
          </ActionButton>
          {added && (
            <span className="import-done" role="status" data-testid="text-model-imported">
              {added.existed ? 'Already in the project' : 'Imported'}: “{added.name}” as text model #{added.id}.
            </span>
          )}
        </div>
      </form>
      {models.length === 0 ? (
        <div className="card empty muted">
          No language model or text head in this project yet: import one above, or train a head (Train → ShareLock) once
          a language model is here.
        </div>
      ) : (
        <table className="items card" aria-label="Language models and text heads">
          <thead>
            <tr>
              <th>Name</th>
              <th>Kind</th>
              <th>Size</th>
              <th>About</th>
              <th />
            </tr>
          </thead>
          <tbody>
            {models.map((m) => (
              <tr key={m.id} id={`text-model-${m.id}`} data-testid={`text-model-${m.id}`}>
                <td>
                  <strong>{m.name}</strong>
                  <div className="muted">
                    #{m.id}, added {formatTime(m.createdAt)}
                  </div>
                </td>
                <td>{kindOf(m)}</td>
                <td>
                  {formatBytes(m.bytes)}
                  {m.llm &&
                    (m.llm.fits ? (
                      <div className="muted">fits this machine's memory</div>
                    ) : (
                      <div className="badge">too large for this machine</div>
                    ))}
                </td>
                <td>
                  {m.summary}
                  <PairsWith m={m} />
                  {m.origin && <div className="muted">{m.origin}</div>}
                  <div className="muted mono">{m.file}</div>
                </td>
                <td>
                  <button type="button" onClick={() => void remove(m)} aria-label={`Remove ${m.name}`}>
                    Remove
                  </button>
                  {removeError?.id === m.id && <FieldError id={`text-model-${m.id}-error`} error={removeError.error} />}
                </td>
              </tr>
            ))}
          </tbody>
        </table>
      )}
    </section>
  );
}
