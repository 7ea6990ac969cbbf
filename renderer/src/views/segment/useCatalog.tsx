import { useCallback, useEffect, useRef, useState } from 'react';
import type { CommandResult, MediaInfo, ModelInfo } from '../../../../native/api/contract';
import { frameNumber, plural } from '../../shell/format';
import { ModelAboutNote, NoModel } from '../../shell/ModelAbout';
import { useApp } from '../../state/app-state';

export type FeatureRun = CommandResult<'features.runs'>[number];
export type Bank = CommandResult<'segment.banks'>[number];

/** Models, feature runs, banks and media of the open project, reloaded when jobs finish. */
export function useCatalog() {
  const { client, run, jobs, project } = useApp();
  const [models, setModels] = useState<ModelInfo[]>([]);
  const [runs, setRuns] = useState<FeatureRun[]>([]);
  const [banks, setBanks] = useState<Bank[]>([]);
  const [media, setMedia] = useState<MediaInfo[]>([]);
  /** Bumped by every models.changed event: a listing asked for before it does not take a new model back. */
  const changes = useRef(0);
  const reload = useCallback(async () => {
    const asked = changes.current;
    const [m, r, b, l] = await Promise.all([
      client.call('models.list', {}),
      client.call('features.runs', {}),
      client.call('segment.banks', {}),
      client.call('library.list', { status: 'done', limit: 1000 }),
    ]);
    if (asked === changes.current) setModels(m);
    setRuns(r);
    setBanks(b);
    setMedia(l.items);
  }, [client]);
  const finished = jobs.filter((j) => j.state === 'done').length;
  // biome-ignore lint/correctness/useExhaustiveDependencies: reload when a job finishes or the project changes
  useEffect(() => {
    void run('Could not load the catalog', reload);
  }, [run, reload, finished, project?.id]);
  // A model added elsewhere (the starter model's button, an import) is offered at once.
  useEffect(
    () =>
      client.subscribe((e) => {
        if (e.type !== 'models.changed') return;
        changes.current++;
        setModels(e.models);
      }),
    [client],
  );
  return { models, runs, banks, media, reload };
}

export type Catalog = ReturnType<typeof useCatalog>;

/** A view's choice among items with ids (models, feature runs): the first one until the user picks another. */
export function useFirstChoice(items: readonly { id: number }[]): [number | null, (id: number) => void] {
  const [id, setId] = useState<number | null>(null);
  useEffect(() => {
    if (id === null && items[0]) setId(items[0].id);
  }, [items, id]);
  return [id, setId];
}

/**
 * A labelled select of the project's models with what the chosen one is (provenance, budget, verified or not); where
 * the project has none, the one click that adds the starter model.
 */
export function ModelPicker(props: {
  id: string;
  models: ModelInfo[];
  value: number | null;
  onChange(id: number): void;
}) {
  if (props.models.length === 0) {
    return (
      <div className="field">
        <NoModel onAdded={(m) => props.onChange(m.id)} />
      </div>
    );
  }
  return (
    <div className="field">
      <label htmlFor={props.id}>Model</label>
      <select id={props.id} value={props.value ?? ''} onChange={(e) => props.onChange(Number(e.target.value))}>
        {props.models.map((x) => (
          <option key={x.id} value={x.id}>
            {x.name}
          </option>
        ))}
      </select>
      <ModelAboutNote model={props.models.find((m) => m.id === props.value)} />
    </div>
  );
}

/**
 * Says that a run was made with frames squashed to a square (before aspect-preserving features) and offers to
 * compute it again with the frame's aspect ratio kept (same model and input size).
 */
export function SquareRunNotice({ run: r }: { run: FeatureRun }) {
  const { client, run } = useApp();
  if (r.resize !== 'square') return null;
  return (
    <span className="run-warning" data-testid={`square-run-${r.id}`}>
      {' '}
      Made with frames squashed to a square: objects are distorted and wide frames lose patches.{' '}
      <button
        type="button"
        onClick={() =>
          void run('Could not start feature extraction', () =>
            client.call('features.extract', { modelId: r.modelId, size: r.inputSize, resize: 'aspect' }),
          )
        }
      >
        Recompute at the frames' aspect ratio
      </button>
    </span>
  );
}

/** Input sizes offered in the views: the model input's shorter side (the frame's aspect ratio is kept). */
export const INPUT_SIZES = [224, 336, 448, 672, 896] as const;

/**
 * A labelled select of the input size (shorter side). `frameShort`: the stored frames' shorter side, to say when a
 * larger size only upsamples them.
 */
export function InputSizePicker(props: {
  id: string;
  value: number;
  onChange(size: number): void;
  frameShort?: number | null;
}) {
  return (
    <div className="field">
      <label htmlFor={props.id}>Input size (shorter side)</label>
      <select id={props.id} value={props.value} onChange={(e) => props.onChange(Number(e.target.value))}>
        {INPUT_SIZES.map((s) => (
          <option key={s} value={s}>
            {s} px
          </option>
        ))}
      </select>
      {props.frameShort && props.value > props.frameShort ? (
        <span className="muted" data-testid={`${props.id}-upsampled`}>
          Frames are stored at {props.frameShort} px on their shorter side: {props.value} px upsamples them (re-import
          at a larger frame size for more detail).
        </span>
      ) : null}
    </div>
  );
}

export function FramePicker(props: {
  media: MediaInfo[];
  mediaId: number | null;
  frameIdx: number;
  onChange(mediaId: number, frameIdx: number): void;
  idPrefix: string;
}) {
  const m = props.media.find((x) => x.id === props.mediaId);
  return (
    <div className="field-row">
      <div className="field">
        <label htmlFor={`${props.idPrefix}-media`}>Image or video</label>
        <select
          id={`${props.idPrefix}-media`}
          value={props.mediaId ?? ''}
          onChange={(e) => props.onChange(Number(e.target.value), 0)}
        >
          <option value="">Choose…</option>
          {props.media.map((x) => (
            <option key={x.id} value={x.id}>
              {x.name} ({plural(x.frameCount, 'frame')})
            </option>
          ))}
        </select>
      </div>
      <div className="field">
        {/* Frames are numbered from 1 here as in the player; the engine's index is one less. */}
        <label htmlFor={`${props.idPrefix}-frame`}>Frame{m ? ` (1–${Math.max(1, m.frameCount)})` : ''}</label>
        <input
          id={`${props.idPrefix}-frame`}
          type="number"
          min={1}
          max={Math.max(1, m?.frameCount ?? 1)}
          value={frameNumber(props.frameIdx)}
          onChange={(e) => {
            const n = Math.round(Number(e.target.value));
            const last = Math.max(1, m?.frameCount ?? 1);
            props.onChange(props.mediaId ?? 0, Math.min(last, Math.max(1, Number.isFinite(n) ? n : 1)) - 1);
          }}
        />
      </div>
    </div>
  );
}
