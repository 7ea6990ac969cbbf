import { type ReactNode, useState } from 'react';
import type { CommandResult } from '../../../../native/api/contract';
import { plural } from '../../shell/format';
import { Icon } from '../../shell/Icon';
import { frameSrc } from '../../shell/media';
import { PathField } from '../../shell/PathField';
import { ActionButton } from '../../shell/Why';
import { useApp } from '../../state/app-state';
import { FeatureSourcePicker, FeaturesPage, useFeatureSource } from '../fungi/FeatureSource';
import { useCatalog } from '../segment/useCatalog';
import { ZeroShotCard, type ZeroShotResult } from './ZeroShot';

type Result = CommandResult<'classify.knn'> | ZeroShotResult;

/** How the shown result was made, in words. */
function method(r: Result, queryRoot: string): string {
  if ('method' in r) return `zero-shot from class names, ${plural(r.templates.length, 'prompt template')}`;
  return `${r.features === 'fungi' ? 'FUNGI gradients' : 'CLS embeddings'}, ${queryRoot ? 'test folder' : 'leave-one-out'}`;
}

/** Up to 60 frames as thumbnails with a caption each (nothing when empty). */
function FrameGrid<T extends { mediaId: number; frameIdx: number }>(props: {
  title: string;
  testId: string;
  items: T[];
  name(mediaId: number): string;
  caption(item: T): ReactNode;
}) {
  if (props.items.length === 0) return null;
  return (
    <>
      <h3>{props.title}</h3>
      <ul className="media-grid small" data-testid={props.testId}>
        {props.items.slice(0, 60).map((m) => (
          <li key={`${m.mediaId}-${m.frameIdx}`} className="media-card">
            <div className="thumb">
              <img src={frameSrc(m.mediaId, m.frameIdx)} alt={props.name(m.mediaId)} />
            </div>
            <div className="card-caption">{props.caption(m)}</div>
          </li>
        ))}
      </ul>
    </>
  );
}

/** kNN classification of a labelled folder (sub-folder = class) with embeddings or FUNGI features. */
export function ClassifyView() {
  const { client, run, jobs } = useApp();
  const { runs, media } = useCatalog();
  const { runId, kind, picker } = useFeatureSource(runs);
  const [root, setRoot] = useState('');
  const [queryRoot, setQueryRoot] = useState('');
  const [k, setK] = useState(20);
  const [result, setResult] = useState<Result | null>(null);
  const [busy, setBusy] = useState(false);
  const classify = () => {
    if (!runId || !root) return;
    setBusy(true);
    void run('Could not classify', async () =>
      setResult(
        await client.call('classify.knn', {
          runId,
          features: kind,
          root,
          k,
          ...(queryRoot ? { queryRoot } : {}),
        }),
      ),
    ).finally(() => setBusy(false));
  };
  const name = (id: number) => media.find((m) => m.id === id)?.name ?? `#${id}`;
  // Classifying while the run is still growing would leave the new frames out (issue 26).
  const extracting = jobs.find((j) => j.kind === 'features.extract' && (j.state === 'running' || j.state === 'queued'));
  const maxCell = result ? Math.max(1, ...result.confusion.flat()) : 1;

  return (
    <FeaturesPage title="Classify" hasRuns={runs.length > 0}>
      <section className="card">
        <FeatureSourcePicker idPrefix="classify" {...picker} />
        <div className="field-row">
          <PathField
            label="Labelled folder (sub-folder = class)"
            value={root}
            onChange={setRoot}
            placeholder="/data/set/train"
          />
          <PathField
            label="Test folder (optional; else leave-one-out)"
            value={queryRoot}
            onChange={setQueryRoot}
            placeholder="/data/set/test"
          />
          <div className="field">
            <label htmlFor="classify-k">Neighbours k</label>
            <input
              id="classify-k"
              type="number"
              min={1}
              max={200}
              value={k}
              onChange={(e) => setK(Number(e.target.value))}
            />
          </div>
        </div>
        <ActionButton
          className="primary"
          onClick={classify}
          why={
            !runId
              ? 'Choose a feature run above.'
              : extracting
                ? `Features are being extracted (job #${extracting.id}): the run is complete when it ends.`
                : !root && 'Type the labelled folder (one sub-folder per class).'
          }
          busy={busy && 'Classifying: reading the folder and voting…'}
        >
          Classify
        </ActionButton>
        <p className="muted">
          Weighted kNN (weights exp(cos / 0.07)) over the labelled frames; the media must be in the library with
          features in the chosen run.
        </p>
      </section>
      <ZeroShotCard onResult={setResult} />
      {result && (
        <section className="card" aria-labelledby="classify-result">
          <h2 id="classify-result">
            {result.evaluated > 0 ? (
              <>
                Accuracy <span data-testid="classify-accuracy">{(100 * result.accuracy).toFixed(1)} %</span>{' '}
                <span className="muted">
                  ({plural(result.evaluated, 'frame')}, {plural(result.classes.length, 'class', 'classes')},{' '}
                  {method(result, queryRoot)})
                </span>
              </>
            ) : (
              <>
                Classes <span className="muted">({method(result, queryRoot)}; no labelled folder to score)</span>
              </>
            )}
          </h2>
          {'method' in result && result.unmatched > 0 && (
            <p className="muted" data-testid="zero-shot-unmatched">
              {plural(result.unmatched, 'labelled frame')} not scored: no class is named{' '}
              {result.unmatchedFolders.join(', ')}.
            </p>
          )}
          {'attachedByContent' in result && (result.attachedByContent ?? 0) > 0 && (
            <p className="muted" data-testid="classify-by-content">
              {plural(result.attachedByContent ?? 0, 'library item')} labelled by content: the labelled folder holds
              copies of files that were added to the library from elsewhere.
            </p>
          )}
          {'unlabelled' in result && result.unlabelled && result.unlabelled.total > 0 && (
            <details className="muted" data-testid="classify-unlabelled">
              <summary>
                {plural(result.unlabelled.total, 'file')} under the class folders label nothing in the library
              </summary>
              <ul>
                {result.unlabelled.files.map((f) => (
                  <li key={f.path}>
                    <code>{f.path}</code>: {f.reason}
                  </li>
                ))}
              </ul>
            </details>
          )}
          {result.evaluated > 0 && (
            <table className="confusion" aria-label="Confusion matrix (rows: truth, columns: predicted)">
              <thead>
                <tr>
                  <th>truth \ predicted</th>
                  {result.classes.map((c) => (
                    <th key={c} title={c}>
                      {c.slice(0, 8)}
                    </th>
                  ))}
                </tr>
              </thead>
              <tbody>
                {result.confusion.map((row, i) => (
                  <tr key={result.classes[i]}>
                    <th>{result.classes[i]}</th>
                    {row.map((v, j) => (
                      <td
                        // biome-ignore lint/suspicious/noArrayIndexKey: fixed columns
                        key={j}
                        style={{
                          background: `rgba(${i === j ? '80, 200, 120' : '230, 90, 90'}, ${(0.8 * v) / maxCell})`,
                        }}
                      >
                        {v || ''}
                      </td>
                    ))}
                  </tr>
                ))}
              </tbody>
            </table>
          )}
          <FrameGrid
            title={`Misclassified (${result.misclassified.length})`}
            testId="misclassified"
            items={result.misclassified}
            name={name}
            caption={(m) => (
              <>
                {result.classes[m.truth]} <Icon name="forward" label="predicted as" />{' '}
                <strong>{result.classes[m.predicted]}</strong> ({(100 * m.confidence).toFixed(0)} %)
              </>
            )}
          />
          <FrameGrid
            title={`Predictions for unlabelled frames (${result.predictions.length})`}
            testId="predictions"
            items={result.predictions}
            name={name}
            caption={(m) => `${result.classes[m.predicted]} (${(100 * m.confidence).toFixed(0)} %)`}
          />
        </section>
      )}
    </FeaturesPage>
  );
}
