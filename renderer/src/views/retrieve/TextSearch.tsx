import { type ReactNode, useEffect, useState } from 'react';
import type { CommandResult } from '../../../../native/api/contract';
import { frameLabel, plural } from '../../shell/format';
import { frameSrc } from '../../shell/media';
import { ActionButton } from '../../shell/Why';
import { useApp } from '../../state/app-state';

type Ready = CommandResult<'text.search.ready'>;
type Found = CommandResult<'retrieve.text'>;

/**
 * Whether the project can answer a text (a ShareLock head, its language model, features of its vision encoder),
 * asked again whenever a job finishes (an import, a training, an extraction can change it).
 */
export function useTextReady(): Ready | null {
  const { client, run, jobs } = useApp();
  const [ready, setReady] = useState<Ready | null>(null);
  const finished = jobs.filter((j) => j.state === 'done').length;
  // biome-ignore lint/correctness/useExhaustiveDependencies: asked again when a job finishes
  useEffect(() => {
    void run('Could not check text search', async () => setReady(await client.call('text.search.ready', {})));
  }, [client, run, finished]);
  return ready;
}

/** What a disabled text control says: still asking, or the missing piece. */
export function textWhy(ready: Ready | null): string | null {
  if (!ready) return 'Checking for a ShareLock head and its language model…';
  return ready.ready ? null : ready.why;
}

/** The head, language model and run that answer texts, in a line. */
export function TextPairLine({ ready }: { ready: Ready | null }) {
  if (!ready?.ready) return null;
  return (
    <p className="muted" data-testid="text-pair">
      ShareLock head “{ready.headName}” with the language model “{ready.textModelName}”, on the features of run #
      {ready.runId}.
    </p>
  );
}

/** A text field with its button (Enter submits), the button saying why it cannot act. */
export function TextQueryForm(props: {
  id: string;
  label: string;
  value: string;
  onChange(v: string): void;
  onSubmit(): void;
  why: string | null | false | undefined;
  busy: string | false;
  whyTestId: string;
  primary?: boolean;
  children: ReactNode;
}) {
  return (
    <form
      className="field-row"
      onSubmit={(e) => {
        e.preventDefault();
        props.onSubmit();
      }}
    >
      <div className={props.primary ? 'field grow' : 'field'}>
        <label htmlFor={props.id}>{props.label}</label>
        <input
          id={props.id}
          type="search"
          value={props.value}
          placeholder="a dog on a boat"
          onChange={(e) => props.onChange(e.target.value)}
        />
      </div>
      <ActionButton
        type="submit"
        {...(props.primary ? { className: 'primary' } : {})}
        whyTestId={props.whyTestId}
        why={props.why}
        busy={props.busy}
      >
        {props.children}
      </ActionButton>
    </form>
  );
}

/** A frame as a thumbnail with its caption (a result of a search). */
export function FrameCard(props: { mediaId: number; frameIdx: number; name: string; children: ReactNode }) {
  return (
    <li className="media-card">
      <div className="thumb">
        <img src={frameSrc(props.mediaId, props.frameIdx)} alt={`${props.name} ${frameLabel(props.frameIdx)}`} />
      </div>
      <div className="card-caption">{props.children}</div>
    </li>
  );
}

/** Retrieve by text: a typed query ranks the library's frames by cosine in the head's embedding space. */
export function TextSearch({ name }: { name(mediaId: number): string }) {
  const { client, run } = useApp();
  const ready = useTextReady();
  const [query, setQuery] = useState('');
  const [found, setFound] = useState<Found | null>(null);
  const [busy, setBusy] = useState(false);
  const search = () => {
    const text = query.trim();
    if (!text || !ready?.ready) return;
    setBusy(true);
    void run('Could not search by text', async () =>
      setFound(await client.call('retrieve.text', { text, k: 24 })),
    ).finally(() => setBusy(false));
  };
  return (
    <section className="card" aria-labelledby="text-search-title">
      <h2 id="text-search-title">Search by text</h2>
      <TextQueryForm
        id="text-query"
        label="Describe what to find"
        value={query}
        onChange={setQuery}
        onSubmit={search}
        primary
        whyTestId="text-search-why"
        why={textWhy(ready) || (!query.trim() && 'Type a few words describing the images to find.')}
        busy={busy && 'Searching: the language model reads the text (once per text), then every frame is ranked…'}
      >
        Search
      </TextQueryForm>
      <TextPairLine ready={ready} />
      {found && (
        <>
          <h3 id="text-results-title">
            “{found.text}”{' '}
            <span className="muted">
              (best {plural(found.results.length, 'frame')} of {found.searched})
            </span>
          </h3>
          <ol className="media-grid" data-testid="text-results" aria-labelledby="text-results-title">
            {found.results.map((r, i) => (
              <FrameCard
                key={`${r.mediaId}-${r.frameIdx}`}
                mediaId={r.mediaId}
                frameIdx={r.frameIdx}
                name={name(r.mediaId)}
              >
                {i + 1}. {name(r.mediaId)} · {frameLabel(r.frameIdx)} ·{' '}
                <span data-testid="text-score">cos {r.sim.toFixed(3)}</span>
              </FrameCard>
            ))}
          </ol>
        </>
      )}
    </section>
  );
}
