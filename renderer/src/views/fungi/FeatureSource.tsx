import { type ReactNode, useCallback, useEffect, useState } from 'react';
import type { CommandResult } from '../../../../native/api/contract';
import { plural } from '../../shell/format';
import { JobStatus, waitReason } from '../../shell/jobs';
import { Stale } from '../../shell/Stale';
import { ActionButton } from '../../shell/Why';
import { useApp } from '../../state/app-state';
import { InputSizePicker, SquareRunNotice, useFirstChoice } from '../segment/useCatalog';

type FeatureRun = CommandResult<'features.runs'>[number];
type FungiRun = CommandResult<'fungi.runs'>[number];
export type FeatureKind = 'embedding' | 'fungi';

/** FUNGI runs of the project, reloaded when a job finishes. */
export function useFungiRuns(): FungiRun[] {
  const { client, run, jobs, project } = useApp();
  const [runs, setRuns] = useState<FungiRun[]>([]);
  const reload = useCallback(async () => setRuns(await client.call('fungi.runs', {})), [client]);
  const finished = jobs.filter((j) => j.state === 'done').length;
  // biome-ignore lint/correctness/useExhaustiveDependencies: reload when a job finishes or the project changes
  useEffect(() => {
    void run('Could not list FUNGI runs', reload);
  }, [run, reload, finished, project?.id]);
  return runs;
}

/** A view's choice of feature run (the first by default) and of vectors, with the picker's props. */
export function useFeatureSource(runs: FeatureRun[]) {
  const [runId, setRunId] = useFirstChoice(runs);
  const [kind, setKind] = useState<FeatureKind>('embedding');
  return { runId, kind, picker: { runs, runId, onRun: setRunId, kind, onKind: setKind } };
}

/**
 * Picks the vectors a view works on: a feature run, and its CLS embeddings or the FUNGI gradient features of the
 * same model (with a button that starts the FUNGI job when there are none yet, and its progress).
 */
export function FeatureSourcePicker(props: {
  idPrefix: string;
  runs: FeatureRun[];
  runId: number | null;
  onRun(id: number): void;
  kind: FeatureKind;
  onKind(kind: FeatureKind): void;
}) {
  const { client, run, jobs } = useApp();
  const fungiRuns = useFungiRuns();
  const current = props.runs.find((r) => r.id === props.runId) ?? null;
  // The engine uses the model's most complete FUNGI run (the latest among equals).
  const fungi = current
    ? fungiRuns
        .filter((f) => f.modelId === current.modelId && f.frames > 0)
        .sort((a, b) => b.frames - a.frames || b.id - a.id)[0]
    : undefined;
  const fungiJob = jobs.find((j) => j.kind === 'features.fungi' && (j.state === 'running' || j.state === 'queued'));
  const compute = () => {
    if (!current) return;
    void run('Could not start FUNGI features', () =>
      client.call('features.fungi', { modelId: current.modelId, size: current.inputSize }),
    );
  };
  return (
    <>
      <div className="field-row">
        <div className="field">
          <label htmlFor={`${props.idPrefix}-run`}>Features</label>
          <select
            id={`${props.idPrefix}-run`}
            value={props.runId ?? ''}
            onChange={(e) => props.onRun(Number(e.target.value))}
          >
            {props.runs.map((r) => (
              <option key={r.id} value={r.id}>
                Run #{r.id} ({r.modelName}, {r.inputSize} px{r.resize === 'square' ? ', square' : ''},{' '}
                {plural(r.frames, 'frame')})
              </option>
            ))}
          </select>
          {current && <SquareRunNotice run={current} />}
        </div>
        {current && <ExtractAtSize idPrefix={props.idPrefix} run={current} />}
        <fieldset className="field radio-row" aria-label="Vectors">
          <legend>Vectors</legend>
          {(['embedding', 'fungi'] as const).map((k) => (
            <label key={k}>
              <input
                type="radio"
                name={`${props.idPrefix}-kind`}
                value={k}
                checked={props.kind === k}
                disabled={k === 'fungi' && !fungi}
                onChange={() => props.onKind(k)}
              />{' '}
              {k === 'embedding' ? 'Embeddings (CLS)' : 'FUNGI gradients'}
            </label>
          ))}
        </fieldset>
        <div className="field">
          {fungi ? (
            <span className="muted" data-testid={`${props.idPrefix}-fungi-status`}>
              FUNGI run #{fungi.id}: {plural(fungi.frames, 'frame')}, {fungi.dim} dimensions reduced by PCA to{' '}
              {fungi.pcaDim ?? '—'}
            </span>
          ) : fungiJob ? (
            <span className="muted">
              FUNGI:{' '}
              {fungiJob.state === 'queued'
                ? waitReason(fungiJob, jobs)
                : `${fungiJob.progress.phase} ${fungiJob.progress.done}/${fungiJob.progress.total ?? '?'}`}
            </span>
          ) : (
            <>
              <ActionButton onClick={compute} why={!current && 'Choose a feature run above.'}>
                Compute FUNGI features
              </ActionButton>
              <JobStatus kinds={['features.fungi']} jobs={jobs} />
            </>
          )}
        </div>
      </div>
      {current && <FeatureRunStale run={current} />}
      {fungi && fungi.frames < fungi.libraryFrames && (
        <Stale
          testId="stale-fungi"
          action={`Compute FUNGI for the ${plural(fungi.libraryFrames - fungi.frames, 'missing frame')}`}
          busy={Boolean(fungiJob)}
          onUpdate={compute}
        >
          FUNGI run #{fungi.id} covers {fungi.frames} of the library's {plural(fungi.libraryFrames, 'frame')}: media
          were added since.
        </Stale>
      )}
    </>
  );
}

/** A feature run that misses frames of the library (media added since), with the click that extracts them. */
export function FeatureRunStale({ run: r }: { run: FeatureRun }) {
  const { client, run, jobs } = useApp();
  const missing = r.libraryFrames - r.frames;
  if (missing <= 0) return null;
  const busy = jobs.some((j) => j.kind === 'features.extract' && (j.state === 'running' || j.state === 'queued'));
  return (
    <Stale
      testId={`stale-run-${r.id}`}
      action={`Extract the ${plural(missing, 'missing frame')}`}
      busy={busy}
      onUpdate={() =>
        void run('Could not start feature extraction', () =>
          client.call('features.extract', { modelId: r.modelId, size: r.inputSize, resize: r.resize }),
        )
      }
    >
      Features run #{r.id} covers {r.frames} of the library's {plural(r.libraryFrames, 'frame')}: media were added
      since, and results from this run leave them out.
    </Stale>
  );
}

/** Features of the same model at another input size (shorter side): a new run, chosen once it exists. */
function ExtractAtSize({ idPrefix, run: current }: { idPrefix: string; run: FeatureRun }) {
  const { client, run } = useApp();
  const [size, setSize] = useState(current.inputSize);
  return (
    <div className="field-row">
      <InputSizePicker id={`${idPrefix}-size`} value={size} onChange={setSize} />
      <ActionButton
        why={
          size === current.inputSize &&
          current.resize === 'aspect' &&
          `This run is already at ${size} px: choose another size to extract.`
        }
        onClick={() =>
          void run('Could not start feature extraction', () =>
            client.call('features.extract', { modelId: current.modelId, size }),
          )
        }
      >
        Extract at {size} px
      </ActionButton>
    </div>
  );
}

/** A view's page: its header, then its content once a feature run exists (a pointer to extracting one before). */
export function FeaturesPage(props: { title: string; hasRuns: boolean; children: ReactNode; after?: ReactNode }) {
  return (
    <div className="view view-wide">
      <header className="view-header">
        <h1>{props.title}</h1>
      </header>
      {props.hasRuns ? (
        props.children
      ) : (
        <p className="card empty muted" data-testid="needs-features">
          Extract features first: <a href="#/segment">Segment view</a>, step 1 (it offers the starter model when the
          project has none).
        </p>
      )}
      {props.after}
    </div>
  );
}
