import { type FormEvent, useEffect, useState } from 'react';
import type { CommandResult, TextModelInfo } from '../../../../native/api/contract';
import { jobOutcome } from '../../shell/jobs';
import { ActionButton } from '../../shell/Why';
import { useApp } from '../../state/app-state';

type Runs = CommandResult<'features.runs'>;

/** A labelled text field (a path when `path`), or a number field when `value` is a number; children: placeholder. */
function Field<T extends string | number>(p: {
  label: string;
  aria?: string;
  value: T;
  set: (v: T) => void;
  path?: boolean;
  min?: number;
  max?: number;
  step?: number;
  children?: string;
}) {
  const numeric = typeof p.value === 'number';
  return (
    <label className="field">
      {p.label}{' '}
      <input
        type={numeric ? 'number' : 'text'}
        className={p.path ? 'path' : undefined}
        min={p.min}
        max={p.max}
        step={p.step}
        value={p.value}
        onChange={(e) => p.set((numeric ? Number(e.target.value) : e.target.value) as T)}
        placeholder={p.children}
        aria-label={p.aria ?? p.label}
      />
    </label>
  );
}

/**
 * Train a ShareLock head (issue 29): a language model's text features tied to a feature run's image features by a
 * small trained projection, from a labelled folder (class prompts; some classes held out for zero-shot) and/or a
 * captions file. The run is a `train.sharelock` job; the head is registered with the project's text models.
 */
export function ShareLockCard() {
  const { client, run, jobs } = useApp();
  const [llms, setLlms] = useState<TextModelInfo[]>([]);
  const [runs, setRuns] = useState<Runs>([]);
  const [llm, setLlm] = useState<number | null>(null);
  const [runId, setRunId] = useState<number | null>(null);
  const [classes, setClasses] = useState('');
  const [unseen, setUnseen] = useState('');
  const [captions, setCaptions] = useState('');
  const [steps, setSteps] = useState(500);
  const [batch, setBatch] = useState(256);
  /** The language projector's hidden width (official 4096; smaller suits a small data set). */
  const [hidden, setHidden] = useState(4096);
  /** Validation (official: always): the share of images held out, and early stopping's patience (0: never). */
  const [valFraction, setValFraction] = useState(0);
  const [patience, setPatience] = useState(0);
  const [stopped, setStopped] = useState<string | null>(null);
  const [jobId, setJobId] = useState<number | null>(null);
  const [summary, setSummary] = useState<{
    seen: string[];
    unseen: string[];
    pairs: number;
    validation?: number;
  } | null>(null);

  useEffect(() => {
    void run('Could not list the language models', async () => {
      const [t, r] = await Promise.all([client.call('text.models.list', {}), client.call('features.runs', {})]);
      const l = t.filter((m) => m.kind === 'llm');
      setLlms(l);
      setRuns(r);
      setLlm((v) => v ?? l.at(-1)?.id ?? null);
      setRunId((v) => v ?? r.at(-1)?.id ?? null);
    });
  }, [client, run]);

  const job = jobs.find((j) => j.id === jobId) ?? null;
  const finished = job?.state === 'done' || job?.state === 'failed' ? job.id : null;
  useEffect(() => {
    if (finished === null) return;
    void run('Could not read the ShareLock run', async () => {
      const items = await client.call('jobs.items', { id: finished });
      setSummary((items.items.find((i) => i.key === 'data')?.result as typeof summary) ?? null);
      const exported = items.items.find((i) => i.key === 'export')?.result as { stopped?: { reason: string } } | null;
      setStopped(exported?.stopped?.reason ?? null);
    });
  }, [client, run, finished]);

  const why =
    llms.length === 0
      ? 'Import a language model first (Models → "Language models and text heads", or `flaneur text import FILE.gguf`).'
      : runs.length === 0
        ? 'Extract image features first: the head is trained on a feature run.'
        : !classes.trim() && !captions.trim()
          ? 'Type a labelled folder, a captions file, or both.'
          : null;
  const submit = (e: FormEvent) => {
    e.preventDefault();
    if (llm === null || runId === null) return;
    const held = unseen
      .split(',')
      .map((c) => c.trim())
      .filter(Boolean);
    void run('Could not start the ShareLock run', async () => {
      const j = await client.call('train.sharelock', {
        textModel: llm,
        runId,
        ...(classes.trim() ? { classes: { root: classes.trim(), ...(held.length ? { unseen: held } : {}) } } : {}),
        ...(captions.trim() ? { captions: { file: captions.trim() } } : {}),
        steps,
        batch,
        hidden,
        valFraction,
        patience,
      });
      setJobId(j.id);
      setSummary(null);
      setStopped(null);
    });
  };

  return (
    <form className="card" onSubmit={submit} aria-label="Train a ShareLock head">
      <h2>Words for images: a ShareLock head</h2>
      <p className="muted">
        Ties a language model to a vision model with a small trained projection, so that typed text finds images and
        classes can be named instead of labelled. Trained on precomputed features: the feature run's image vectors and
        the language model's features of each prompt or caption (computed once, kept in the project).
      </p>
      <div className="field-row">
        <label className="field">
          Language model{' '}
          <select value={llm ?? ''} onChange={(e) => setLlm(Number(e.target.value))} aria-label="Language model">
            {llms.map((m) => (
              <option key={m.id} value={m.id}>
                #{m.id} {m.name}
              </option>
            ))}
          </select>
        </label>
        <label className="field">
          Image features{' '}
          <select value={runId ?? ''} onChange={(e) => setRunId(Number(e.target.value))} aria-label="Feature run">
            {runs.map((r) => (
              <option key={r.id} value={r.id}>
                run #{r.id} {r.modelName} ({r.frames} frames)
              </option>
            ))}
          </select>
        </label>
      </div>
      <div className="field-row">
        <Field label="Labelled folder" path value={classes} set={setClasses}>
          /path/to/folder with one sub-folder per class
        </Field>
        <Field label="Held-out classes" value={unseen} set={setUnseen}>
          bag, coat (default: half, drawn at random)
        </Field>
      </div>
      <div className="field-row">
        <Field label="Captions file" path value={captions} set={setCaptions}>
          captions.csv (path,caption), .jsonl or COCO captions .json
        </Field>
        {/* Labels that do not contain the training form's "Steps" or "Batch" (the page's fields are found by label). */}
        <Field label="Training length (updates)" value={steps} set={setSteps} min={1} />
        <Field label="Pairs per update" value={batch} set={setBatch} min={2} />
        <Field label="Projector width" value={hidden} set={setHidden} min={1} />
      </div>
      <div className="field-row">
        <Field
          label="Validation share of images"
          value={valFraction}
          set={setValFraction}
          min={0}
          max={0.5}
          step={0.05}
        />
        <Field label="Early stopping patience (validations; 0: never)" value={patience} set={setPatience} min={0} />
      </div>
      <ActionButton type="submit" why={why}>
        Train the head
      </ActionButton>
      {job && (
        <p data-testid="sharelock-status">
          {job.state === 'failed'
            ? (job.error?.message ?? 'The run failed.')
            : job.state === 'done'
              ? `Done: ${job.progress.done} steps. The head is in the project's text models (Retrieve, Classify).`
              : `${jobOutcome(job).label}: ${job.progress.phase} ${job.progress.done}/${job.progress.total ?? '?'}`}
        </p>
      )}
      {stopped && <p data-testid="sharelock-stopped">{`${stopped[0]?.toUpperCase()}${stopped.slice(1)}.`}</p>}
      {summary && (
        <p data-testid="sharelock-data">
          {summary.pairs} image–text pairs
          {summary.validation ? ` (${summary.validation} more held out for validation)` : ''}.{' '}
          {summary.seen.length > 0 &&
            `Trained on ${summary.seen.join(', ')}; held out for zero-shot: ${summary.unseen.join(', ') || 'none'}.`}
        </p>
      )}
    </form>
  );
}
