import { type FormEvent, type ReactNode, useEffect, useMemo, useRef, useState } from 'react';
import type { CommandArgs, CommandResult, MediaInfo, ModelInfo } from '../../../../native/api/contract';
import { ChartSvg } from '../../shell/chart';
import { formatDuration, PROVIDER_LABELS, plural } from '../../shell/format';
import { jobOutcome } from '../../shell/jobs';
import { ModelAboutNote } from '../../shell/ModelAbout';
import { ActionButton } from '../../shell/Why';
import { useApp } from '../../state/app-state';
import { ShareLockCard } from './ShareLockCard';
import { UncoPreviewCard } from './UncoPreviewCard';

type Log = CommandResult<'train.log'>;
type Preset = 'tiny' | 'vit_ti16' | 'vit_s16';

/**
 * One metric of a training log against the step, as an SVG line (log-free, min..max scaled); with `other`, a second
 * run's (dashed) on the same axes, e.g. a run trained elsewhere beside a local one.
 */
function SeriesPlot({
  log,
  other,
  metric,
  label,
  reference,
  children,
}: {
  log: Log;
  other?: Log | undefined;
  metric: 'loss' | 'lr' | 'teacherEntropy';
  label: string;
  /** A value to draw as a dashed line (and keep in range), e.g. the collapse level log K. */
  reference?: { value: number; label: string } | undefined;
  children?: ReactNode;
}) {
  const W = 640;
  const H = 160;
  const pad = 30;
  const both = other ? [...log, ...other] : log;
  const values = both.map((r) => r[metric]);
  const lo = Math.min(...values, ...(reference ? [reference.value] : []));
  const hi = Math.max(...values, ...(reference ? [reference.value] : []));
  const span = hi - lo || Math.abs(hi) || 1;
  const s1 = Math.max(1, ...both.map((r) => r.step));
  const x = (s: number) => pad + ((W - 2 * pad) * s) / s1;
  const y = (v: number) => H - pad - ((H - 2 * pad) * (v - lo)) / span;
  const line = (l: Log) =>
    l.map((r, i) => `${i ? 'L' : 'M'}${x(r.step).toFixed(1)},${y(r[metric]).toFixed(1)}`).join(' ');
  const d = line(log);
  return (
    <figure className="plot">
      <figcaption>{label}</figcaption>
      <ChartSvg width={W} height={H} label={label} testId={`train-${metric}`}>
        {reference && (
          <>
            <line x1={pad} x2={W - pad} y1={y(reference.value)} y2={y(reference.value)} className="reference" />
            <text x={W - pad} y={y(reference.value) - 4} className="tick" textAnchor="end">
              {reference.label}
            </text>
          </>
        )}
        <line x1={pad} y1={H - pad} x2={W - pad} y2={H - pad} className="axis" />
        <line x1={pad} y1={pad} x2={pad} y2={H - pad} className="axis" />
        <text x={4} y={pad} className="tick">
          {hi.toPrecision(3)}
        </text>
        <text x={4} y={H - pad} className="tick">
          {lo.toPrecision(3)}
        </text>
        <text x={W - pad} y={H - 8} className="tick" textAnchor="end">
          step {s1}
        </text>
        <path d={d} className="series" />
        {other && other.length > 0 && <path d={line(other)} className="series other" data-testid="compared" />}
      </ChartSvg>
      {children}
    </figure>
  );
}

/** A labelled number field of the form; `aria` names the input where the visible label says more. */
function NumberField({
  label,
  aria = label,
  value,
  set,
  min,
  max,
  step,
  children,
}: {
  label: string;
  aria?: string;
  value: number;
  set: (n: number) => void;
  min?: number;
  max?: number;
  step?: number;
  children?: ReactNode;
}) {
  return (
    <label className="field">
      {label}{' '}
      <input
        type="number"
        min={min}
        max={max}
        step={step}
        value={value}
        onChange={(e) => set(Number(e.target.value))}
        aria-label={aria}
      />
      {children}
    </label>
  );
}

/**
 * A path typed into a text field; Enter runs `onEnter` once something is typed, and never submits the form the field
 * is in (Enter in the export folder would otherwise start a local run).
 */
function PathInput({
  label,
  aria = label,
  value,
  set,
  onEnter,
  placeholder,
}: {
  label: string;
  aria?: string;
  value: string;
  set: (value: string) => void;
  onEnter: () => void;
  placeholder: string;
}) {
  return (
    <label className="field">
      {label}{' '}
      <input
        type="text"
        className="path"
        spellCheck={false}
        value={value}
        onChange={(e) => set(e.target.value)}
        onKeyDown={(e) => {
          if (e.key !== 'Enter') return;
          e.preventDefault();
          if (value.trim()) onEnter();
        }}
        placeholder={placeholder}
        aria-label={aria}
      />
    </label>
  );
}

/** Says why a rising loss is not by itself a problem (in DINO or in NeCo), with the figures of this run. */
function LossNote({ log, neco }: { log: Log; neco: boolean }) {
  const first = log[0];
  const last = log[log.length - 1];
  if (!first || !last || log.length < 2 || last.loss <= first.loss) return null;
  if (neco)
    return (
      <p className="muted plot-note" data-testid="loss-note">
        The loss rose from {first.loss.toFixed(2)} to {last.loss.toFixed(2)}. That alone is not a problem in NeCo: the
        loss compares how the student and a slowly following teacher order each patch's nearest neighbours among a queue
        of reference patches; while the queue fills and the teacher moves, the task changes, so the loss need not fall
        steadily. Judge the adapted model by Compare base and adapted once the run is done.
      </p>
    );
  return (
    <p className="muted plot-note" data-testid="loss-note">
      The loss rose from {first.loss.toFixed(2)} to {last.loss.toFixed(2)}. That alone is not a problem in DINO: the
      loss is the cross-entropy between the student and a teacher that keeps changing (its weights follow the student;
      its outputs are centred and sharpened), so it does not fall steadily as a supervised loss does, and a rise while
      the teacher leaves its random start is common. Watch the teacher entropy for collapse, and the attention previews
      for structure.
    </p>
  );
}

const NO_LOG: Log = [];
const NO_PREVIEWS: CommandResult<'train.previews'> = [];

export function TrainView() {
  const { client, run, jobs, runtime } = useApp();
  const [media, setMedia] = useState<MediaInfo[]>([]);
  const [models, setModels] = useState<ModelInfo[]>([]);
  const [chosen, setChosen] = useState<Set<number>>(new Set());
  const [init, setInit] = useState<string>('scratch:vit_ti16');
  const [method, setMethod] = useState<'dora' | 'dino' | 'neco' | 'unco'>('dora');
  const [steps, setSteps] = useState(300);
  const [length, setLength] = useState<'steps' | 'epochs'>('steps');
  const [epochs, setEpochs] = useState(10);
  /** '' = the Device view's setting. */
  const [device, setDevice] = useState<string>('');
  const [batch, setBatch] = useState(8);
  const [globalSize, setGlobalSize] = useState(96);
  const [framesPerClip, setFramesPerClip] = useState(4);
  const [stride, setStride] = useState(5);
  const [objects, setObjects] = useState(3);
  const [lr, setLr] = useState(5e-4);
  const [freeze, setFreeze] = useState(0);
  const [koleo, setKoleo] = useState(0);
  const [lrBackbone, setLrBackbone] = useState(1e-5);
  const [lrHead, setLrHead] = useState(1e-4);
  const [necoLocals, setNecoLocals] = useState(4);
  /** UnCo: exemplars per count (0: an automatic counter), its learning rate and collages per step. */
  const [uncoShots, setUncoShots] = useState(1);
  const [uncoLr, setUncoLr] = useState(1e-3);
  /** UnCo collages: the most target objects in one (N ∈ [1, max]) and the objects pasted in all (with distractors). */
  const [uncoMaxCount, setUncoMaxCount] = useState(60);
  const [uncoTotal, setUncoTotal] = useState(70);
  /** UnCo exported for torchrun: the training collages built into the folder. */
  const [uncoPool, setUncoPool] = useState(512);
  const [comparison, setComparison] = useState<{
    jobId: number;
    result: CommandResult<'segment.compareModels'>;
  } | null>(null);
  const [selected, setSelected] = useState<number | null>(null);
  /** The log and previews read last, with the run they belong to (shown only while that run is the one selected). */
  const [runData, setRunData] = useState<{
    jobId: number | null;
    log: Log;
    previews: CommandResult<'train.previews'>;
  }>({ jobId: null, log: [], previews: [] });
  /** "Run elsewhere…": the folder to export to and the export job; "Bring back": the path and the import job. */
  const [elsewhere, setElsewhere] = useState(false);
  const [exportDir, setExportDir] = useState('');
  const [exportFrames, setExportFrames] = useState<'auto' | 'copy' | 'decode'>('auto');
  const [exportJob, setExportJob] = useState<number | null>(null);
  const [importPath, setImportPath] = useState('');
  const [importJob, setImportJob] = useState<number | null>(null);
  const [imported, setImported] = useState<{ jobId: number; model: ModelInfo | null } | null>(null);
  /** Another run's log drawn beside the selected one's (dashed). */
  const [compareId, setCompareId] = useState<number | null>(null);
  const [compareLog, setCompareLog] = useState<Log>([]);
  /** The objective of runs brought back (their job arguments hold only the path): from their `export` item. */
  const [importedObjective, setImportedObjective] = useState<Map<number, string>>(new Map());

  useEffect(() => {
    void run('Could not list the library', async () => {
      const [m, ms] = await Promise.all([
        client.call('library.list', { status: 'done', limit: 1000 }),
        client.call('models.list', {}),
      ]);
      setMedia(m.items);
      setModels(ms);
      setChosen((c) => (c.size ? c : new Set(m.items.filter((x) => x.kind === 'video').map((x) => x.id))));
    });
  }, [client, run]);

  // Local runs and runs brought back from elsewhere (their curves come from the run's metrics log).
  const trainJobs = useMemo(
    () => jobs.filter((j) => j.kind === 'train.dino' || j.kind === 'train.import' || j.kind === 'train.unco'),
    [jobs],
  );
  const exportInfo = jobs.find((j) => j.id === exportJob) ?? null;
  const importInfo = jobs.find((j) => j.id === importJob) ?? null;
  const current = trainJobs.find((j) => j.id === selected) ?? trainJobs[0] ?? null;
  const currentId = current?.id ?? null;
  const tick = current?.progress.done ?? 0;
  /** The run's state: the last step's log and previews are written as it ends, so they are read again then. */
  const phase = current?.state ?? null;
  // Another run selected (a new run at step 0 included): nothing of the previous run is shown, not even for the
  // moment its own log is read; an answer for a run no longer selected is dropped.
  const log = runData.jobId === currentId ? runData.log : NO_LOG;
  const previews = runData.jobId === currentId ? runData.previews : NO_PREVIEWS;
  const shownRun = useRef<number | null>(null);
  shownRun.current = currentId;
  const reads = useRef(0);
  useEffect(() => {
    if (currentId === null) return;
    // `tick` is the step count: the log is re-read as training goes.
    void run('Could not read the training log', async () => {
      if (tick < 0 || phase === null) return;
      const mine = ++reads.current;
      const [l, p] = await Promise.all([
        client.call('train.log', { jobId: currentId }),
        client.call('train.previews', { jobId: currentId, lastSteps: 6 }),
      ]);
      // Only the newest read is shown: an older one answering late would put earlier steps back.
      if (shownRun.current !== currentId || mine !== reads.current) return;
      setRunData({ jobId: currentId, log: l, previews: p });
    });
  }, [client, run, currentId, tick, phase]);

  // An epoch: every chosen frame once, `batch` frames a step.
  const chosenFrames = media.filter((m) => chosen.has(m.id)).reduce((a, m) => a + m.frameCount, 0);
  const totalSteps = length === 'steps' ? steps : Math.max(1, Math.ceil((epochs * chosenFrames) / batch));
  /** The run the form describes (what "Start training" starts and "Run elsewhere…" exports). */
  const runArgs = (): CommandArgs<'train.start'> => {
    const [kind, value] = init.split(':');
    const start = {
      media: [...chosen],
      init:
        kind === 'model'
          ? ({ kind: 'model', id: Number(value) } as const)
          : ({ kind: 'scratch', preset: (value ?? 'vit_ti16') as Preset } as const),
      steps: totalSteps,
      batch,
      globalSize,
      ...(device ? { device: device as NonNullable<CommandArgs<'train.start'>['device']> } : {}),
    };
    return method === 'neco'
      ? { ...start, neco: { lrBackbone, lrHead, localCrops: necoLocals } }
      : {
          ...start,
          localSize: Math.max(16, Math.round(globalSize / 2 / 16) * 16),
          localCrops: 2,
          lr,
          freezeLastLayerSteps: freeze,
          koleo,
          ...(method === 'dora' ? { dora: { framesPerClip, stride, objects } } : {}),
        };
  };
  /** An UnCo counter on the chosen model's frozen features, trained on Self-Collages of the chosen frames. */
  const uncoCollages = {
    media: [...chosen],
    ...(init.startsWith('model:') ? { model: Number(init.split(':')[1]) } : {}),
    maxCount: uncoMaxCount,
    total: Math.max(uncoTotal, uncoMaxCount),
  };
  const uncoArgs = (): CommandArgs<'train.unco'> => ({
    ...uncoCollages,
    steps: totalSteps,
    batch,
    shots: uncoShots,
    lr: uncoLr,
    ...(device ? { device: device as NonNullable<CommandArgs<'train.unco'>['device']> } : {}),
  });
  /** Why a run cannot start with the form as it is, or null. */
  const cannotTrain =
    chosen.size === 0
      ? media.length === 0
        ? 'Nothing to train on: add videos or images in the Library first.'
        : 'Choose at least one video or image above.'
      : null;
  const submit = (e: FormEvent) => {
    e.preventDefault();
    const args = runArgs();
    void run('Could not start training', async () => {
      const job =
        method === 'unco' ? await client.call('train.unco', uncoArgs()) : await client.call('train.start', args);
      setSelected(job.id);
    });
  };
  const exportRun = () => {
    const { device: _device, ...args } = runArgs();
    const { device: _uncoDevice, ...unco } = uncoArgs();
    void run('Could not export the run', async () => {
      const job =
        method === 'unco'
          ? await client.call('train.uncoExport', { ...unco, dir: exportDir.trim(), pool: uncoPool })
          : await client.call('train.export', { ...args, dir: exportDir.trim(), frames: exportFrames });
      setExportJob(job.id);
    });
  };
  const uncoExported = exportInfo?.kind === 'train.uncoExport';
  const bringBack = () =>
    void run('Could not bring the run back', async () => {
      const job = await client.call('train.import', { path: importPath.trim() });
      setImportJob(job.id);
      setImported(null);
    });
  // When the import is done: the registered model (the engine registers it as the job ends) and its curves.
  const importDone = importInfo?.state === 'done' ? importInfo.id : null;
  useEffect(() => {
    if (importDone === null) return;
    let cancelled = false;
    void run('Could not read the brought-back model', async () => {
      const items = await client.call('jobs.items', { id: importDone });
      const name = (items.items.find((i) => i.key === 'export')?.result as { name?: string } | null)?.name;
      for (let i = 0; i < 50 && !cancelled; i++) {
        const model = (await client.call('models.list', {})).find((m) => m.name === name) ?? null;
        if (model || i === 49) {
          if (!cancelled) {
            setImported({ jobId: importDone, model });
            setSelected(importDone);
          }
          return;
        }
        await new Promise((r) => setTimeout(r, 200));
      }
    });
    return () => {
      cancelled = true;
    };
  }, [client, run, importDone]);
  useEffect(() => {
    if (compareId === null) {
      setCompareLog([]);
      return;
    }
    void run('Could not read the training log', async () => {
      setCompareLog(await client.call('train.log', { jobId: compareId }));
    });
  }, [client, run, compareId]);
  const currentImport = current?.kind === 'train.import' && current.state === 'done' ? current.id : null;
  useEffect(() => {
    if (currentImport === null || importedObjective.has(currentImport)) return;
    void run('Could not read the brought-back run', async () => {
      const items = await client.call('jobs.items', { id: currentImport });
      const result = items.items.find((i) => i.key === 'export')?.result as {
        provenance?: { objective?: string };
      } | null;
      const objective = result?.provenance?.objective ?? 'dino';
      setImportedObjective((m) => new Map(m).set(currentImport, objective));
    });
  }, [client, run, currentImport, importedObjective]);
  const last = log[log.length - 1];
  const shownCompare =
    compareId !== null && compareId !== current?.id && compareLog.length > 0 ? compareLog : undefined;
  const isUnco = current?.kind === 'train.unco';
  const isNeco = (j: { id: number; kind: string; args: Record<string, unknown> } | null) =>
    Boolean(j?.args.neco) || (j?.kind === 'train.import' && importedObjective.get(j.id) === 'neco');
  /** A finished NeCo run's base model (its args) and adapted model (registered with the job in its origin). */
  const [comparing, setComparing] = useState<number | null>(null);
  const compare = (job: NonNullable<typeof current>) => {
    setComparing(job.id);
    void run('Could not compare the models', async () => {
      const baseId = (job.args.init as { kind: string; id?: number } | undefined)?.id;
      const adapted = (await client.call('models.list', {})).find(
        (m) => m.origin?.includes(`(job ${job.id})`) || m.name.includes(`(job ${job.id})`),
      );
      if (!baseId || !adapted) throw new Error('The base or the adapted model of this run is not registered.');
      setComparison({
        jobId: job.id,
        result: await client.call('segment.compareModels', { modelIds: [baseId, adapted.id] }),
      });
    }).finally(() => setComparing(null));
  };
  const headK = current && typeof current.args.outDim === 'number' ? current.args.outDim : null;

  return (
    <div className="view view-wide train">
      <header className="view-header">
        <h1>Train</h1>
        <span className="muted">
          Self-supervised training on the project's frames: Dora (objects discovered in the teacher's attention and
          tracked through clips) or plain DINO, the teacher exported to Models; or adapt a registered model's patch
          features to these frames with NeCo (patch neighbour consistency), the adapted model exported to Models.
        </span>
      </header>
      <form className="card" onSubmit={submit} aria-label="New training run">
        <fieldset>
          <legend>Videos and images</legend>
          {media.length === 0 && <p className="muted">Nothing ingested yet: add videos in the Library.</p>}
          {media.map((m) => (
            <label key={m.id} className="check">
              <input
                type="checkbox"
                checked={chosen.has(m.id)}
                onChange={(e) => {
                  const next = new Set(chosen);
                  if (e.target.checked) next.add(m.id);
                  else next.delete(m.id);
                  setChosen(next);
                }}
              />
              {m.path.split(/[\\/]/).pop()} <span className="muted">({plural(m.frameCount, 'frame')})</span>
            </label>
          ))}
        </fieldset>
        <div className="field-row">
          <label className="field">
            Start from
            <select value={init} onChange={(e) => setInit(e.target.value)} aria-label="Start from">
              <option value="scratch:tiny">Tiny ViT (2 blocks, for trying things)</option>
              <option value="scratch:vit_ti16">ViT-Ti/16 from scratch</option>
              <option value="scratch:vit_s16">ViT-S/16 from scratch</option>
              {models.map((m) => (
                <option key={m.id} value={`model:${m.id}`}>
                  {m.name} (#{m.id})
                </option>
              ))}
            </select>
          </label>
          {init.startsWith('model:') && <ModelAboutNote model={models.find((m) => `model:${m.id}` === init)} />}
          <label className="field">
            Method
            <select
              value={method}
              onChange={(e) => setMethod(e.target.value as 'dora' | 'dino' | 'neco' | 'unco')}
              aria-label="Method"
            >
              <option value="dora">Dora (discover and track objects)</option>
              <option value="dino">Plain DINO</option>
              <option value="neco">Adapt (NeCo)</option>
              <option value="unco">Counter (UnCo, from Self-Collages)</option>
            </select>
          </label>
          <label className="field">
            Length
            <select
              value={length}
              onChange={(e) => setLength(e.target.value as 'steps' | 'epochs')}
              aria-label="Length in"
            >
              <option value="steps">steps</option>
              <option value="epochs">epochs</option>
            </select>
          </label>
          {length === 'steps' ? (
            <NumberField label="Steps" value={steps} set={setSteps} min={1} />
          ) : (
            <NumberField label="Epochs" value={epochs} set={setEpochs} min={1}>
              <span className="muted" data-testid="epoch-steps">
                = {plural(totalSteps, 'step')} ({plural(chosenFrames, 'frame')})
              </span>
            </NumberField>
          )}
          <NumberField label="Frames per step" aria="Batch" value={batch} set={setBatch} min={1} />
          <NumberField label="Crop size" value={globalSize} set={setGlobalSize} min={16} step={16} />
          <label className="field">
            Device
            <select value={device} onChange={(e) => setDevice(e.target.value)} aria-label="Device">
              <option value="">
                Device view setting ({runtime ? (PROVIDER_LABELS[runtime.settings.provider] ?? 'automatic') : '…'})
              </option>
              {(runtime?.providers ?? []).map((p) => (
                <option key={p.name} value={p.name} disabled={!p.available}>
                  {PROVIDER_LABELS[p.name]}
                  {p.available ? '' : ' (not available here)'}
                </option>
              ))}
            </select>
          </label>
        </div>
        {method === 'dora' && (
          <div className="field-row">
            <NumberField label="Frames per clip" value={framesPerClip} set={setFramesPerClip} min={1} />
            <NumberField label="Stride (frames)" aria="Stride" value={stride} set={setStride} min={1} />
            <NumberField label="Objects" value={objects} set={setObjects} min={1} max={16} />
          </div>
        )}
        {method === 'neco' && (
          <div className="field-row" data-testid="neco-settings">
            {!init.startsWith('model:') && (
              <p className="muted">NeCo adapts a pretrained encoder: choose a registered model in “Start from”.</p>
            )}
            <NumberField
              label="Backbone learning rate"
              value={lrBackbone}
              set={setLrBackbone}
              min={0}
              step={0.000001}
            />
            <NumberField label="Head learning rate" value={lrHead} set={setLrHead} min={0} step={0.00001} />
            <NumberField label="Local crops" value={necoLocals} set={setNecoLocals} min={0} max={16} />
          </div>
        )}
        {method === 'unco' && (
          <div className="field-row" data-testid="unco-settings">
            <p className="muted">
              Trains a counter on the frozen features of the model in “Start from” (a registered model; else the
              project's default): collages of objects found in the chosen frames, pasted in known numbers, are all it
              learns from. It counts in the Count view.
            </p>
            <label className="field">
              Counts
              <select value={uncoShots} onChange={(e) => setUncoShots(Number(e.target.value))} aria-label="Counts">
                <option value={1}>what an exemplar box shows</option>
                <option value={0}>automatically (no exemplar)</option>
              </select>
            </label>
            <NumberField
              label="Learning rate"
              aria="Counter learning rate"
              value={uncoLr}
              set={setUncoLr}
              min={0}
              step={0.0001}
            />
            <NumberField
              label="Most objects counted (N max)"
              aria="Most objects per collage"
              value={uncoMaxCount}
              set={setUncoMaxCount}
              min={1}
              max={500}
            />
            <NumberField
              label="Objects per collage, with distractors"
              aria="Objects per collage"
              value={uncoTotal}
              set={setUncoTotal}
              min={1}
              max={600}
            />
            <UncoPreviewCard args={uncoCollages} why={cannotTrain} />
          </div>
        )}
        <details hidden={method === 'neco' || method === 'unco'}>
          <summary>Optimisation and collapse guards</summary>
          <div className="field-row">
            <NumberField
              label="Base learning rate (× views / 256)"
              aria="Learning rate"
              value={lr}
              set={setLr}
              min={0}
              step={0.0001}
            />
            <NumberField
              label="Freeze last layer (steps)"
              aria="Freeze last layer"
              value={freeze}
              set={setFreeze}
              min={0}
            />
            <NumberField
              label="KoLeo weight (DINOv2: 0.1)"
              aria="KoLeo"
              value={koleo}
              set={setKoleo}
              min={0}
              step={0.05}
            />
          </div>
        </details>
        <div className="field-row">
          <ActionButton type="submit" why={cannotTrain}>
            Start training
          </ActionButton>
          <ActionButton why={cannotTrain} onClick={() => setElsewhere(!elsewhere)}>
            Run elsewhere…
          </ActionButton>
        </div>
        <p className="muted">
          Progress, cancel and resume also in Jobs; a cancelled or crashed run resumes from its last checkpoint.
        </p>
        {elsewhere && (
          <div className="elsewhere" data-testid="run-elsewhere">
            <h3>Run elsewhere (PyTorch, torchrun)</h3>
            {method === 'unco' ? (
              <p className="muted">
                Writes this counter's training as a folder to copy to a machine with GPUs: Self-Collages built here from
                the chosen frames (images, density targets, exemplar boxes), the frozen backbone, the decoder's start
                and a PyTorch program that trains the decoder, with a README.
              </p>
            ) : (
              <p className="muted">
                Writes this run as a folder to copy to a machine with GPUs or a cluster: the frames, the configuration,
                the starting weights and a PyTorch program that trains it as Flaneur would (same losses), with a README.
              </p>
            )}
            <div className="field-row">
              <PathInput
                label="Export folder"
                value={exportDir}
                set={setExportDir}
                onEnter={exportRun}
                placeholder="/path/to/a/new/folder"
              />
              {method === 'unco' && (
                <NumberField
                  label="Collages to build"
                  aria="Collages to export"
                  value={uncoPool}
                  set={setUncoPool}
                  min={1}
                  max={100000}
                />
              )}
              {method !== 'unco' && (
                <label className="field">
                  Video frames
                  <select
                    value={exportFrames}
                    onChange={(e) => setExportFrames(e.target.value as 'auto' | 'copy' | 'decode')}
                    aria-label="Video frames"
                  >
                    <option value="auto">automatic (long videos: the source, decoded there)</option>
                    <option value="copy">copy the sampled frames</option>
                    <option value="decode">the source videos, decoded there with ffmpeg</option>
                  </select>
                </label>
              )}
              <ActionButton
                why={cannotTrain || (!exportDir.trim() && 'Type the export folder first.')}
                onClick={exportRun}
              >
                Export
              </ActionButton>
            </div>
            {exportInfo && exportInfo.state !== 'done' && (
              <p data-testid="export-status">
                {exportInfo.state === 'failed'
                  ? (exportInfo.error?.message ?? 'The export failed.')
                  : `Exporting: ${exportInfo.progress.phase || exportInfo.state}…`}
              </p>
            )}
            {exportInfo?.state === 'done' && (
              <div data-testid="export-command">
                <p>
                  Exported to {String(exportInfo.args.dir)}. Copy the folder where the GPUs are and run there (N
                  processes, one per GPU; the README says how to use several machines and how to resume):
                </p>
                <pre>
                  {uncoExported
                    ? `cd ${String(exportInfo.args.dir)} && torchrun --standalone --nproc_per_node=N train_unco.py --config unco.json`
                    : `cd ${String(exportInfo.args.dir)} && torchrun --standalone --nproc_per_node=N train.py --config run.json`}
                </pre>
                <p className="muted">
                  {uncoExported
                    ? 'Then bring the counter back below with the folder (or its out/decoder.safetensors).'
                    : 'Then bring it back below with the folder (or one of its checkpoints).'}
                </p>
              </div>
            )}
          </div>
        )}
      </form>

      <ShareLockCard />

      <section className="card" aria-label="Bring back a run">
        <div className="field-row">
          <PathInput
            label="Bring back a run trained elsewhere"
            aria="Exported folder or checkpoint"
            value={importPath}
            set={setImportPath}
            onEnter={bringBack}
            placeholder="/path/to/the/exported/folder or run/checkpoints/step-0000100.json"
          />
          <ActionButton
            why={!importPath.trim() && 'Type the exported folder or a checkpoint first.'}
            onClick={bringBack}
          >
            Bring back
          </ActionButton>
        </div>
        {importInfo && importInfo.state !== 'done' && (
          <p data-testid="import-status">
            {importInfo.state === 'failed'
              ? (importInfo.error?.message ?? 'Bringing the run back failed.')
              : `Reading the run: ${importInfo.progress.phase || importInfo.state}…`}
          </p>
        )}
        {importInfo?.kind === 'train.uncoImport' && importInfo.state === 'done' && (
          <p data-testid="import-result">
            Brought back as a trained counter: count with it in the Count view (Trained counter).
          </p>
        )}
        {imported?.jobId === importJob && importInfo?.kind !== 'train.uncoImport' && (
          <p data-testid="import-result">
            {imported.model
              ? `Registered as model #${imported.model.id} “${imported.model.name}”: ${imported.model.origin ?? ''}`
              : 'The run was read, but its model is not registered yet; see Models.'}
          </p>
        )}
      </section>

      {trainJobs.length > 0 && current && (
        <section className="card" aria-label="Training run">
          <div className="field-row">
            <label className="field">
              Run
              <select value={current.id} onChange={(e) => setSelected(Number(e.target.value))} aria-label="Run">
                {trainJobs.map((j) => (
                  <option key={j.id} value={j.id}>
                    #{j.id} {j.title}
                    {j.kind === 'train.import' ? ' (trained elsewhere)' : ''} — {jobOutcome(j).label}
                  </option>
                ))}
              </select>
            </label>
            {trainJobs.length > 1 && (
              <label className="field">
                Compare with
                <select
                  value={compareId ?? ''}
                  onChange={(e) => setCompareId(e.target.value ? Number(e.target.value) : null)}
                  aria-label="Compare with"
                >
                  <option value="">—</option>
                  {trainJobs
                    .filter((j) => j.id !== current.id)
                    .map((j) => (
                      <option key={j.id} value={j.id}>
                        #{j.id} {j.title}
                        {j.kind === 'train.import' ? ' (trained elsewhere)' : ''}
                      </option>
                    ))}
                </select>
              </label>
            )}
            {(current.state === 'running' || current.state === 'queued') && (
              <button
                type="button"
                onClick={() => void run('Could not cancel', () => client.call('jobs.cancel', { id: current.id }))}
              >
                Cancel
              </button>
            )}
            {(current.state === 'cancelled' || current.state === 'interrupted' || current.state === 'failed') && (
              <button
                type="button"
                onClick={() => void run('Could not resume', () => client.call('jobs.resume', { id: current.id }))}
              >
                Resume
              </button>
            )}
          </div>
          <p data-testid="train-status">
            {current.kind === 'train.import'
              ? `Trained elsewhere: ${log.length} steps logged`
              : `Step ${current.progress.done}${current.progress.total !== null ? ` / ${current.progress.total}` : ''}`}
            {current.state === 'running' &&
              ` · ${current.progress.phase} · ETA ${formatDuration(current.progress.etaS)}`}
            {last &&
              ` · loss ${last.loss.toFixed(4)} · ${isUnco ? `held-out collage MAE ${last.teacherEntropy.toFixed(2)}` : isNeco(current) ? `queue ${(100 * last.teacherEntropy).toFixed(0)}% filled` : `teacher entropy ${last.teacherEntropy.toFixed(3)}`} · ${last.imgsPerS.toFixed(1)} ${isUnco ? 'collages' : 'views'}/s`}
          </p>
          {current.error && <p className="error">{current.error.message}</p>}
          {isNeco(current) && current.state === 'done' && (
            <div className="field-row">
              <ActionButton
                onClick={() => compare(current)}
                why={null}
                busy={
                  comparing !== null &&
                  'Comparing: features of both models on the evaluation frames, then segmentation (about half a minute on a CPU)…'
                }
              >
                Compare base and adapted (in-context segmentation)
              </ActionButton>
              {comparing !== null && <progress aria-label="Comparing the models" data-testid="compare-progress" />}
              {comparison?.jobId === current.id && (
                <p data-testid="neco-comparison">
                  {comparison.result.frames}{' '}
                  {comparison.result.source === 'synthetic' ? 'frames of the synthetic tour' : 'labelled frames'},{' '}
                  {comparison.result.classes} classes: mIoU{' '}
                  {comparison.result.models
                    .map((m, i) => `${i === 0 ? 'base' : 'adapted'} ${(100 * m.miou).toFixed(1)}`)
                    .join(' → ')}
                  {comparison.result.note && <span className="muted"> ({comparison.result.note})</span>}
                </p>
              )}
            </div>
          )}
          {shownCompare && (
            <p className="muted" data-testid="compare-legend">
              Solid: #{current.id}; dashed: #{compareId} ({shownCompare.length} steps)
            </p>
          )}
          {log.length > 0 && (
            <div className="plots">
              <SeriesPlot log={log} other={shownCompare} metric="loss" label="Loss">
                {!isUnco && <LossNote log={log} neco={isNeco(current)} />}
              </SeriesPlot>
              <SeriesPlot log={log} other={shownCompare} metric="lr" label="Learning rate" />
              <SeriesPlot
                log={log}
                other={shownCompare}
                metric="teacherEntropy"
                label={
                  isUnco
                    ? 'Held-out collage MAE (objects per collage; collages never trained on)'
                    : isNeco(current)
                      ? 'Queue of teacher patches (share filled)'
                      : headK
                        ? `Teacher entropy (collapse at log K = ${Math.log(headK).toFixed(2)}, K = ${headK} head outputs)`
                        : 'Teacher entropy'
                }
                reference={
                  headK && !isNeco(current) && !isUnco
                    ? { value: Math.log(headK), label: `log K = ${Math.log(headK).toFixed(2)}` }
                    : undefined
                }
              >
                {!isNeco(current) && !isUnco && (
                  <p className="muted plot-note" data-testid="entropy-note">
                    K{headK ? ` = ${headK}` : ''} is the output dimension of the DINO head: the number of prototypes the
                    teacher spreads each image over. Entropy near log K means the teacher says the same uniform thing
                    for every image; near 0 means one prototype wins for every image. Both are collapse; healthy
                    training stays in between.
                  </p>
                )}
              </SeriesPlot>
            </div>
          )}
          {previews.length > 0 && (
            <figure className="previews" data-testid="train-previews">
              <figcaption>
                {isUnco
                  ? "What the counter learns from: a held-out Self-Collage, its target density (the pasted objects of one type) and the counter's prediction"
                  : 'Teacher attention on two fixed frames (last block, from CLS to the patches; heads 1–3 as red, green, blue)'}
              </figcaption>
              <div className="preview-steps">
                {[...new Set(previews.map((p) => p.step))].map((step) => (
                  <div key={step} className="preview-step">
                    {previews
                      .filter((p) => p.step === step)
                      .map((p) => (
                        <img
                          key={p.frame}
                          src={p.png}
                          alt={
                            isUnco
                              ? `Collage, target and prediction at step ${step}`
                              : `Attention at step ${step}, frame ${p.frame + 1}`
                          }
                        />
                      ))}
                    <span className="muted">step {step}</span>
                  </div>
                ))}
              </div>
            </figure>
          )}
        </section>
      )}
    </div>
  );
}
