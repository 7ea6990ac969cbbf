import { type FormEvent, useEffect, useState } from 'react';
import type { CommandResult } from '../../../../native/api/contract';
import { plural } from '../../shell/format';
import { Icon } from '../../shell/Icon';
import { JobStatus } from '../../shell/jobs';
import { frameSrc } from '../../shell/media';
import { Stale } from '../../shell/Stale';
import { ActionButton } from '../../shell/Why';
import { useApp } from '../../state/app-state';
import { FeatureRunStale } from '../fungi/FeatureSource';
import { BankCounts, PatchThumb, useBankClasses } from './BankClasses';
import { classColour, MaskPainter } from './MaskPainter';
import {
  type Catalog,
  FramePicker,
  InputSizePicker,
  ModelPicker,
  SquareRunNotice,
  useCatalog,
  useFirstChoice,
} from './useCatalog';

function toBase64(bytes: Uint8Array): string {
  let s = '';
  for (let i = 0; i < bytes.length; i += 0x8000) s += String.fromCharCode(...bytes.subarray(i, i + 0x8000));
  return btoa(s);
}

type SegmentResult = CommandResult<'segment.apply'>;

type MaskValues = 'auto' | 'ids' | 'binary';

interface ExampleRow {
  mediaId: number | null;
  frameIdx: number;
  mask: string;
  encoding: MaskValues;
}

/** How a mask's values are read (the engine recognises the usual encodings and warns when they do not fit). */
function MaskValuesPicker(props: { id: string; value: MaskValues; onChange(v: MaskValues): void }) {
  return (
    <div className="field">
      <label htmlFor={props.id}>Mask values</label>
      <select id={props.id} value={props.value} onChange={(e) => props.onChange(e.target.value as MaskValues)}>
        <option value="auto">Recognise (ids, 0/255, palette, colours)</option>
        <option value="ids">Class ids (255 = ignore)</option>
        <option value="binary">Binary (dark = first class, bright = second)</option>
      </select>
    </div>
  );
}

/** Warnings about how masks were read, e.g. "this mask has only values 0 and 255 …". */
function MaskWarnings({ warnings, id }: { warnings: string[]; id: string }) {
  if (warnings.length === 0) return null;
  return (
    <ul className="warnings" data-testid={id} role="status">
      {warnings.map((w) => (
        <li key={w}>{w}</li>
      ))}
    </ul>
  );
}

function ExtractFeatures({ catalog }: { catalog: Catalog }) {
  const { client, run, jobs } = useApp();
  const { models, runs } = catalog;
  const { media } = catalog;
  const [modelId, setModelId] = useFirstChoice(models);
  const [size, setSize] = useState(224);
  const frameShort = Math.min(...media.map((m) => Math.min(m.frameWidth ?? 1e9, m.frameHeight ?? 1e9)));
  const submit = (e: FormEvent) => {
    e.preventDefault();
    if (modelId)
      void run('Could not start feature extraction', () => client.call('features.extract', { modelId, size }));
  };
  return (
    <form className="card" onSubmit={submit} aria-labelledby="features-title">
      <h2 id="features-title">1. Patch features</h2>
      <div className="field-row">
        <ModelPicker id="features-model" models={models} value={modelId} onChange={setModelId} />
        {models.length > 0 && (
          <InputSizePicker
            id="features-size"
            value={size}
            onChange={setSize}
            frameShort={Number.isFinite(frameShort) ? frameShort : null}
          />
        )}
      </div>
      <ActionButton
        type="submit"
        why={
          !modelId
            ? 'Needs a model: add the starter model above, or import one in Models.'
            : media.length === 0
              ? 'The library is empty: add images or videos in Library first.'
              : null
        }
      >
        Extract features for the library
      </ActionButton>
      <JobStatus kinds={['features.extract']} jobs={jobs} />
      {runs.length > 0 && (
        <ul className="plain">
          {runs.map((r) => (
            <li key={r.id} data-testid={`run-${r.id}`}>
              Run #{r.id}: {r.modelName}, {r.inputSize} px{' '}
              {r.resize === 'square'
                ? `(squashed to ${r.grid}×${r.grid} patches, dim ${r.dim})`
                : `(aspect ratio kept, ${r.grid} patches on the shorter side, dim ${r.dim})`}{' '}
              — {plural(r.frames, 'frame')}
              <SquareRunNotice run={r} />
              <FeatureRunStale run={r} />
            </li>
          ))}
        </ul>
      )}
    </form>
  );
}

function BuildBank({ catalog }: { catalog: Catalog }) {
  const { client, run } = useApp();
  const { runs, media, banks } = catalog;
  const [runId, setRunId] = useState<number | null>(null);
  const [name, setName] = useState('examples');
  const [classes, setClasses] = useState('background, object');
  const [rows, setRows] = useState<ExampleRow[]>([{ mediaId: null, frameIdx: 0, mask: '', encoding: 'auto' }]);
  const [warnings, setWarnings] = useState<string[]>([]);
  const [painting, setPainting] = useState<number | null>(null);
  /** The bank built here last: its patches per class are shown under the button. */
  const [built, setBuilt] = useState<{ id: number; name: string } | null>(null);
  const builtClasses = useBankClasses(built?.id ?? null, built);
  const ready = rows.filter((r) => r.mediaId && r.mask);
  const [epochs, setEpochs] = useState(1);
  const [memory, setMemory] = useState('');
  const classList = classes
    .split(',')
    .map((c) => c.trim())
    .filter(Boolean);
  useEffect(() => {
    if (runId === null && runs[0]) setRunId(runs[0].id);
  }, [runs, runId]);
  const update = (i: number, patch: Partial<ExampleRow>) =>
    setRows((r) => r.map((x, j) => (j === i ? { ...x, ...patch } : x)));
  const submit = (e: FormEvent) => {
    e.preventDefault();
    if (!runId) return;
    void run('Could not build the memory bank', async () => {
      setWarnings([]);
      const bank = await client.call('segment.createBank', {
        runId,
        name,
        classes: classList,
        epochs,
        ...(memory ? { memorySize: Number(memory) } : {}),
        examples: ready.map((r) => ({
          mediaId: r.mediaId as number,
          frameIdx: r.frameIdx,
          mask: r.mask,
          encoding: r.encoding,
        })),
      });
      setWarnings(bank.warnings);
      setBuilt({ id: bank.id, name: bank.name });
      await catalog.reload();
    });
  };
  return (
    <form className="card" onSubmit={submit} aria-labelledby="bank-title">
      <h2 id="bank-title">2. Memory bank from examples</h2>
      <p className="muted">
        Frames with their masks: class ids (gray value = class number, 0 = the first class), binary masks (0/255 or
        0/1), palette PNGs (index = class) or colour masks; JPEG noise is tolerated.
      </p>
      <div className="field-row">
        <div className="field">
          <label htmlFor="bank-run">Features</label>
          <select id="bank-run" value={runId ?? ''} onChange={(e) => setRunId(Number(e.target.value))}>
            {runs.map((r) => (
              <option key={r.id} value={r.id}>
                Run #{r.id} ({r.modelName}, {r.inputSize} px)
              </option>
            ))}
          </select>
        </div>
        <div className="field">
          <label htmlFor="bank-name">Bank name</label>
          <input id="bank-name" value={name} onChange={(e) => setName(e.target.value)} />
        </div>
        <div className="field grow">
          <label htmlFor="bank-classes">Classes, in mask order</label>
          <input id="bank-classes" value={classes} onChange={(e) => setClasses(e.target.value)} />
        </div>
      </div>
      <div className="field-row">
        <div className="field">
          <label htmlFor="bank-epochs">Views per example</label>
          <input
            id="bank-epochs"
            type="number"
            min={1}
            max={20}
            value={epochs}
            onChange={(e) => setEpochs(Number(e.target.value))}
          />
        </div>
        <div className="field">
          <label htmlFor="bank-memory">Memory size (patches, optional)</label>
          <input
            id="bank-memory"
            type="number"
            min={1}
            value={memory}
            onChange={(e) => setMemory(e.target.value)}
            placeholder="all"
          />
        </div>
      </div>
      {rows.map((r, i) => (
        // biome-ignore lint/suspicious/noArrayIndexKey: rows have no identity beyond their position
        <fieldset key={i} className="example-row">
          <legend>Example {i + 1}</legend>
          <FramePicker
            idPrefix={`ex${i}`}
            media={media}
            mediaId={r.mediaId}
            frameIdx={r.frameIdx}
            onChange={(mediaId, frameIdx) => update(i, { mediaId, frameIdx })}
          />
          <div className="field">
            <label htmlFor={`ex${i}-mask`}>Mask file</label>
            <div className="field-row">
              <input
                id={`ex${i}-mask`}
                value={r.mask}
                onChange={(e) => update(i, { mask: e.target.value })}
                placeholder="/path/to/mask.png"
              />
              <ActionButton
                why={
                  !r.mediaId
                    ? 'Choose an image or video first.'
                    : classList.length < 2
                      ? 'Name at least two classes above.'
                      : null
                }
                onClick={() => setPainting(i)}
              >
                Draw…
              </ActionButton>
            </div>
          </div>
          <MaskValuesPicker id={`ex${i}-values`} value={r.encoding} onChange={(encoding) => update(i, { encoding })} />
          {painting === i &&
            (() => {
              const m = media.find((x) => x.id === r.mediaId);
              if (!m?.frameWidth || !m.frameHeight) return null;
              return (
                <MaskPainter
                  src={frameSrc(m.id, r.frameIdx)}
                  width={m.frameWidth}
                  height={m.frameHeight}
                  classes={classList}
                  onCancel={() => setPainting(null)}
                  onSave={(labels) =>
                    void run('Could not save the mask', async () => {
                      const saved = await client.call('segment.saveMask', {
                        mediaId: m.id,
                        frameIdx: r.frameIdx,
                        data: toBase64(labels),
                      });
                      update(i, { mask: saved.path });
                      setPainting(null);
                    })
                  }
                />
              );
            })()}
        </fieldset>
      ))}
      <div className="row-actions">
        <button
          type="button"
          onClick={() =>
            setRows((r) => [
              ...r,
              { mediaId: r[r.length - 1]?.mediaId ?? null, frameIdx: 0, mask: '', encoding: 'auto' },
            ])
          }
        >
          Add an example
        </button>
        <ActionButton
          type="submit"
          className="primary"
          why={
            !runId
              ? 'Extract features first (step 1).'
              : ready.length === 0 && 'Give at least one example: choose a frame, then a mask file or draw one.'
          }
          whyTestId={runId ? 'bank-needs-example' : 'why'}
        >
          Build bank
        </ActionButton>
      </div>
      <MaskWarnings warnings={warnings} id="bank-warnings" />
      {built && builtClasses && <BankCounts bank={built} classes={builtClasses} />}
      <ClusterBank catalog={catalog} />
      {banks.length > 0 && (
        <ul className="plain">
          {banks.map((b) => (
            <li key={b.id} data-testid={`bank-${b.id}`}>
              Bank #{b.id} “{b.name}”: {plural(b.patches, 'patch', 'patches')}, classes {b.classes.join(', ')}
              {b.missingMedia > 0 && (
                <Stale testId={`stale-bank-${b.id}`}>
                  Built from {plural(b.missingMedia, 'item')} no longer in the library. It still segments with what it
                  learned, but to match the library now, build it again from frames that are there (above).
                </Stale>
              )}
            </li>
          ))}
        </ul>
      )}
    </form>
  );
}

function SegmentFrame({ catalog }: { catalog: Catalog }) {
  const { client, run, jobs } = useApp();
  const { banks, media } = catalog;
  const [bankId, setBankId] = useState<number | null>(null);
  const [mediaId, setMediaId] = useState<number | null>(null);
  const [frameIdx, setFrameIdx] = useState(0);
  const [truth, setTruth] = useState('');
  const [truthValues, setTruthValues] = useState<MaskValues>('auto');
  const [opacity, setOpacity] = useState(0.6);
  const [result, setResult] = useState<SegmentResult | null>(null);
  const [stamp, setStamp] = useState(0);
  useEffect(() => {
    if (bankId === null && banks[0]) setBankId(banks[0].id);
  }, [banks, bankId]);
  const submit = async (e: FormEvent) => {
    e.preventDefault();
    if (!bankId || !mediaId) return;
    const r = await run('Could not segment the frame', () =>
      client.call('segment.apply', {
        bankId,
        mediaId,
        frameIdx,
        ...(truth ? { truthMask: truth, truthEncoding: truthValues } : {}),
      }),
    );
    if (r) {
      setResult(r);
      setStamp(Date.now());
    }
  };
  const total = result ? result.pixels.reduce((a, b) => a + b, 0) : 1;
  return (
    <form className="card" onSubmit={submit} aria-labelledby="apply-title">
      <h2 id="apply-title">3. Segment a frame</h2>
      <div className="field">
        <label htmlFor="apply-bank">Memory bank</label>
        <select id="apply-bank" value={bankId ?? ''} onChange={(e) => setBankId(Number(e.target.value))}>
          {banks.map((b) => (
            <option key={b.id} value={b.id}>
              #{b.id} {b.name} ({plural(b.patches, 'patch', 'patches')})
            </option>
          ))}
        </select>
      </div>
      <FramePicker
        idPrefix="apply"
        media={media}
        mediaId={mediaId}
        frameIdx={frameIdx}
        onChange={(m, f) => {
          setMediaId(m);
          setFrameIdx(f);
        }}
      />
      <div className="field">
        <label htmlFor="apply-truth">Ground-truth mask (optional, for IoU)</label>
        <input
          id="apply-truth"
          value={truth}
          onChange={(e) => setTruth(e.target.value)}
          placeholder="/path/to/mask.png"
        />
      </div>
      {truth && <MaskValuesPicker id="apply-truth-values" value={truthValues} onChange={setTruthValues} />}
      <ActionButton
        type="submit"
        className="primary"
        why={!bankId ? 'Build a memory bank first (step 2).' : !mediaId ? 'Choose an image or video above.' : null}
      >
        Segment
      </ActionButton>
      {result && <MaskWarnings warnings={result.warnings} id="segment-warnings" />}
      {result && (
        <div className="segment-result" data-testid="segment-result">
          <div className="stage small" style={{ aspectRatio: `${result.width} / ${result.height}` }}>
            <img className="frame" src={frameSrc(result.mediaId, result.frameIdx)} alt="Segmented frame" />
            <img
              className="frame overlay-img"
              src={`${result.overlay.slice(1)}?v=${stamp}`}
              alt="Predicted classes"
              style={{ opacity }}
              data-testid="segment-overlay"
            />
          </div>
          <div>
            <div className="field">
              <label htmlFor="overlay-opacity">Overlay opacity</label>
              <input
                id="overlay-opacity"
                type="range"
                min={0}
                max={1}
                step={0.05}
                value={opacity}
                onChange={(e) => setOpacity(Number(e.target.value))}
              />
            </div>
            <table className="items">
              <thead>
                <tr>
                  <th>Class</th>
                  <th>Pixels</th>
                  {result.iou && <th>IoU</th>}
                </tr>
              </thead>
              <tbody>
                {result.classes.map((c, i) => (
                  <tr key={c}>
                    <td>
                      <span className="swatch" style={{ background: `rgb(${result.colours[i]?.join(',')})` }} /> {c}
                    </td>
                    <td>{((100 * (result.pixels[i] ?? 0)) / total).toFixed(1)}%</td>
                    {result.iou && (
                      <td>
                        {result.iou.perClass[i] === null
                          ? '—'
                          : `${(100 * (result.iou.perClass[i] as number)).toFixed(1)}`}
                      </td>
                    )}
                  </tr>
                ))}
              </tbody>
            </table>
            {result.iou && (
              <p data-testid="segment-miou">
                mIoU <strong>{(100 * result.iou.mean).toFixed(1)}</strong>
              </p>
            )}
            <p className="muted mono">Class-id PNG: {result.labelFile}</p>
            <button
              type="button"
              onClick={() =>
                void run('Could not start the batch', () =>
                  client.call('segment.batch', { bankId: result.bankId, media: [result.mediaId] }),
                )
              }
            >
              Segment every frame of this item (PNG masks and COCO JSON)
            </button>
            <p className="muted">Written to the project's exports/ folder; progress in Jobs.</p>
            <JobStatus kinds={['segment.batch']} jobs={jobs} />
          </div>
        </div>
      )}
    </form>
  );
}

/** Annotation-free: cluster patch features into pseudo-classes, then name and merge them. */
function ClusterBank({ catalog }: { catalog: Catalog }) {
  const { client, run } = useApp();
  const { runs, media, banks } = catalog;
  const [mediaId, setMediaId] = useState<number | null>(null);
  const [every, setEvery] = useState(4);
  const [k, setK] = useState(6);
  const [names, setNames] = useState<Record<number, string>>({});
  const runId = runs[0]?.id ?? null;
  const clusterBanks = banks.filter((b) => b.classes[0] === 'cluster 1' || b.name.startsWith('clusters'));
  const bank = clusterBanks[clusterBanks.length - 1] ?? null;
  const summary = useBankClasses(bank?.id ?? null, bank?.classes.join('|'));
  const create = () => {
    const m = media.find((x) => x.id === mediaId);
    if (!runId || !m) return;
    const frames = [...Array(m.frameCount).keys()]
      .filter((i) => i % every === 0)
      .map((frameIdx) => ({ mediaId: m.id, frameIdx }));
    void run('Could not cluster the patches', async () => {
      await client.call('segment.clusterBank', { runId, name: `clusters of ${m.name}`, clusters: k, frames });
      await catalog.reload();
    });
  };
  const relabel = () => {
    if (!bank) return;
    const target = bank.classes.map((c, i) => (names[i] ?? c).trim() || c);
    // Classes given the same name are merged.
    const unique = [...new Set(target)];
    void run('Could not rename the classes', async () => {
      await client.call('segment.relabelBank', {
        bankId: bank.id,
        names: unique,
        into: target.map((n) => unique.indexOf(n)),
      });
      setNames({});
      await catalog.reload();
    });
  };
  return (
    <section className="subcard" aria-labelledby="cluster-title">
      <h3 id="cluster-title">Or without annotations: pseudo-classes by clustering</h3>
      <div className="field-row">
        <div className="field">
          <label htmlFor="cluster-media">From</label>
          <select id="cluster-media" value={mediaId ?? ''} onChange={(e) => setMediaId(Number(e.target.value))}>
            <option value="">Choose…</option>
            {media.map((m) => (
              <option key={m.id} value={m.id}>
                {m.name}
              </option>
            ))}
          </select>
        </div>
        <div className="field">
          <label htmlFor="cluster-every">Every Nth frame</label>
          <input
            id="cluster-every"
            type="number"
            min={1}
            value={every}
            onChange={(e) => setEvery(Number(e.target.value))}
          />
        </div>
        <div className="field">
          <label htmlFor="cluster-k">Clusters</label>
          <input
            id="cluster-k"
            type="number"
            min={2}
            max={64}
            value={k}
            onChange={(e) => setK(Number(e.target.value))}
          />
        </div>
      </div>
      <ActionButton
        onClick={create}
        why={!runId ? 'Extract features first (step 1).' : !mediaId ? 'Choose what to cluster (From).' : null}
      >
        Cluster into pseudo-classes
      </ActionButton>
      {bank && (
        <div className="relabel" data-testid="relabel">
          <p className="muted">
            Bank #{bank.id}: each cluster with some of its patches (outlined, with their surroundings). Name the
            clusters; clusters given the same name are merged.
          </p>
          {bank.classes.map((c, i) => {
            const cls = summary?.[i];
            return (
              <div key={c} className="relabel-row" data-testid={`cluster-${i + 1}`}>
                <label className="relabel-name">
                  <span className="swatch" style={{ background: `rgb(${classColour(i).join(',')})` }} /> {c}{' '}
                  <Icon name="forward" />{' '}
                  <input
                    value={names[i] ?? c}
                    onChange={(e) => setNames((n) => ({ ...n, [i]: e.target.value }))}
                    aria-label={`New name of ${c}`}
                  />
                </label>
                {cls && (
                  <span className="cluster-examples" data-testid="cluster-examples">
                    {cls.examples.map((ex) => (
                      <PatchThumb
                        key={`${ex.mediaId}-${ex.frameIdx}-${ex.box.join(',')}`}
                        example={ex}
                        media={media.find((m) => m.id === ex.mediaId)}
                        name={c}
                      />
                    ))}
                    <span className="muted">{plural(cls.patches, 'patch', 'patches')}</span>
                  </span>
                )}
              </div>
            );
          })}
          <button type="button" onClick={relabel}>
            Rename and merge
          </button>
        </div>
      )}
    </section>
  );
}

/** In-context segmentation: features, a memory bank from a few labelled frames, and any frame segmented with it. */
export function SegmentView() {
  const catalog = useCatalog();
  return (
    <div className="view view-wide">
      <header className="view-header">
        <h1>Segment</h1>
        <span className="muted">
          Dense nearest neighbours over a memory bank (Hummingbird): k = 30, softmax(cos / 0.02).
        </span>
      </header>
      <ExtractFeatures catalog={catalog} />
      <BuildBank catalog={catalog} />
      <SegmentFrame catalog={catalog} />
    </div>
  );
}
