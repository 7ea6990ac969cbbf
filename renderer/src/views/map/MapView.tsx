import { useCallback, useEffect, useMemo, useRef, useState } from 'react';
import type { CommandResult } from '../../../../native/api/contract';
import { frameLabel, plural } from '../../shell/format';
import { JobStatus, waitReason } from '../../shell/jobs';
import { frameSrc } from '../../shell/media';
import { PathField } from '../../shell/PathField';
import { Stale } from '../../shell/Stale';
import { ActionButton } from '../../shell/Why';
import { useApp } from '../../state/app-state';
import { FeatureSourcePicker, FeaturesPage, useFeatureSource } from '../fungi/FeatureSource';
import { TextQueryForm, textWhy, useTextReady } from '../retrieve/TextSearch';
import { useCatalog } from '../segment/useCatalog';
import { colourOf, MapCanvas, type MapPointView, SCALE, scaleColour } from './MapCanvas';

type MapList = CommandResult<'map.list'>;
type MapData = CommandResult<'map.get'>;
type ColourBy = 'cluster' | 'video' | 'class' | 'text';
type TextSims = CommandResult<'map.textSimilarity'> & { mapId: number; text: string; edges: number[] };

/** Edges of the colour steps: each holds a tenth of the points (similarities often crowd near the top). */
function decileEdges(sims: readonly number[]): number[] {
  const sorted = [...sims].sort((a, b) => a - b);
  const last = sorted.length - 1;
  return Array.from(
    { length: SCALE.length + 1 },
    (_, i) => sorted[Math.max(0, Math.round((i * last) / SCALE.length))] as number,
  );
}

/** A similarity's colour step. */
function step(s: number, t: TextSims): number {
  let k = 0;
  while (k < SCALE.length - 1 && s >= (t.edges[k + 1] as number)) k++;
  return k;
}

/** The embedding map: build a 2-D layout (PCA or UMAP) of embeddings or FUNGI vectors, explore and lasso it. */
export function MapView() {
  const { client, run, jobs, setSelection } = useApp();
  const { runs, media } = useCatalog();
  const { runId, kind, picker } = useFeatureSource(runs);
  const [method, setMethod] = useState<'umap' | 'pca'>('umap');
  const [maps, setMaps] = useState<MapList>([]);
  const [mapId, setMapId] = useState<number | null>(null);
  const [data, setData] = useState<MapData | null>(null);
  const [colourBy, setColourBy] = useState<ColourBy>('cluster');
  const [classRoot, setClassRoot] = useState('');
  const [textQuery, setTextQuery] = useState('');
  const [textSims, setTextSims] = useState<TextSims | null>(null);
  const [colouring, setColouring] = useState(false);
  const textReady = useTextReady();
  const [lasso, setLasso] = useState(false);
  const [selected, setSelected] = useState<Set<number>>(new Set());
  const [hover, setHover] = useState<{ i: number; x: number; y: number } | null>(null);
  /** The newest map id seen, to tell a map just built from the ones the user chose among. */
  const newest = useRef<number | null>(null);

  // Any finished job: a map job adds a map, a features or import job can make one out of date.
  const finished = jobs.filter((j) => j.state === 'done').length;
  // biome-ignore lint/correctness/useExhaustiveDependencies: reload when a job finishes
  useEffect(() => {
    void run('Could not list maps', async () => {
      const list = await client.call('map.list', {});
      setMaps(list);
      const last = list.at(-1);
      // A new map (built or rebuilt here) is shown at once; otherwise the one the user chose stays.
      const grew = newest.current !== null && last !== undefined && last.id > newest.current;
      newest.current = last?.id ?? 0;
      if (last) setMapId((id) => (!grew && id !== null && list.some((m) => m.id === id) ? id : last.id));
    });
  }, [client, run, finished]);
  const load = useCallback(
    async (id: number, root: string) => {
      const d = await client.call('map.get', { id, ...(root ? { root } : {}) });
      setData(d);
      setSelected(new Set());
    },
    [client],
  );
  useEffect(() => {
    if (mapId !== null) void run('Could not load the map', () => load(mapId, colourBy === 'class' ? classRoot : ''));
  }, [mapId, load, run, colourBy, classRoot]);

  const currentMap = maps.find((m) => m.id === mapId) ?? null;
  const building = jobs.find((j) => j.kind === 'map.build' && (j.state === 'running' || j.state === 'queued'));
  const build = () => {
    if (!runId) return;
    void run('Could not build the map', () => client.call('map.build', { runId, features: kind, method }));
  };

  const mediaIds = useMemo(() => [...new Set(data?.points.map((p) => p.mediaId) ?? [])].sort((a, b) => a - b), [data]);
  const points: MapPointView[] = useMemo(() => {
    if (!data) return [];
    const videoIndex = new Map(mediaIds.map((id, i) => [id, i]));
    const sims = colourBy === 'text' && textSims?.mapId === data.id ? textSims : null;
    return data.points.map((p, i) => ({
      x: p.x,
      y: p.y,
      colour:
        colourBy === 'text'
          ? sims
            ? step(sims.sims[i] as number, sims)
            : -1
          : colourBy === 'cluster'
            ? p.cluster
            : colourBy === 'video'
              ? (videoIndex.get(p.mediaId) ?? 0)
              : (data.labels[i] ?? -1),
    }));
  }, [data, colourBy, mediaIds, textSims]);
  const legend: { label: string; colour: number; n: number }[] = useMemo(() => {
    if (!data) return [];
    const counts = new Map<number, number>();
    for (const p of points) counts.set(p.colour, (counts.get(p.colour) ?? 0) + 1);
    const t = textSims;
    if (colourBy === 'text' && t?.mapId === data.id) {
      const name = (c: number) => `cos ${(t.edges[c] as number).toFixed(3)} – ${(t.edges[c + 1] as number).toFixed(3)}`;
      return [...counts].sort((a, b) => b[0] - a[0]).map(([c, n]) => ({ label: name(c), colour: c, n }));
    }
    const name = (c: number) =>
      colourBy === 'text'
        ? 'not compared with a text yet'
        : colourBy === 'cluster'
          ? `cluster ${c + 1}`
          : colourBy === 'video'
            ? (media.find((m) => m.id === mediaIds[c])?.name ?? `#${mediaIds[c]}`)
            : c < 0
              ? 'unlabelled'
              : (data.classes[c] ?? `class ${c}`);
    return [...counts]
      .sort((a, b) => a[0] - b[0])
      .slice(0, 40)
      .map(([c, n]) => ({ label: name(c), colour: c, n }));
  }, [data, points, colourBy, media, mediaIds, textSims]);

  /** Whether the points show similarities to a text (of this map). */
  const textShown = colourBy === 'text' && data !== null && textSims?.mapId === data.id;
  const colourByText = () => {
    const text = textQuery.trim();
    if (mapId === null || !text) return;
    setColouring(true);
    void run('Could not colour the map by a text', async () => {
      const r = await client.call('map.textSimilarity', { mapId, text });
      setTextSims({ ...r, mapId, text, edges: decileEdges(r.sims) });
    }).finally(() => setColouring(false));
  };

  const selectedMedia = useMemo(
    () => [...new Set([...selected].map((i) => data?.points[i]?.mediaId ?? 0))].filter(Boolean),
    [selected, data],
  );
  const openInLibrary = () => {
    setSelection({ label: `Selected on map #${data?.id}`, mediaIds: selectedMedia });
    window.location.hash = '#/library';
  };
  const hovered = hover && data ? data.points[hover.i] : null;

  return (
    <FeaturesPage title="Map" hasRuns={runs.length > 0}>
      <section className="card">
        <FeatureSourcePicker idPrefix="map" {...picker} />
        <div className="field-row">
          <div className="field">
            <label htmlFor="map-method">Layout</label>
            <select id="map-method" value={method} onChange={(e) => setMethod(e.target.value as 'umap' | 'pca')}>
              <option value="umap">UMAP (umap-js; neighbours from exact kNN)</option>
              <option value="pca">PCA (fast)</option>
            </select>
          </div>
          <ActionButton
            className="primary"
            onClick={build}
            why={!runId && 'Choose a feature run above.'}
            busy={building && 'A map is being built (progress beside).'}
          >
            Build map
          </ActionButton>
          {building && (
            <span className="muted" data-testid="map-progress">
              {building.state === 'queued'
                ? waitReason(building, jobs)
                : `${building.progress.phase} ${building.progress.done}/${building.progress.total ?? '?'}`}
            </span>
          )}
          {!building && <JobStatus kinds={['map.build']} jobs={jobs} />}
        </div>
      </section>
      {maps.length > 0 && (
        <section className="card">
          <div className="field-row">
            <div className="field">
              <label htmlFor="map-pick">Map</label>
              <select id="map-pick" value={mapId ?? ''} onChange={(e) => setMapId(Number(e.target.value))}>
                {maps.map((m) => (
                  <option key={m.id} value={m.id}>
                    #{m.id} {m.method.toUpperCase()} of {m.features === 'fungi' ? 'FUNGI' : 'embeddings'} (run #
                    {m.runId}, {plural(m.points, 'point')})
                  </option>
                ))}
              </select>
            </div>
            {currentMap && currentMap.points !== currentMap.sourceFrames && (
              <Stale
                testId="stale-map"
                action="Rebuild the map"
                busy={Boolean(building)}
                onUpdate={() =>
                  void run('Could not build the map', () =>
                    client.call('map.build', {
                      runId: currentMap.runId,
                      features: currentMap.features,
                      method: currentMap.method === 'pca' ? 'pca' : 'umap',
                    }),
                  )
                }
              >
                Map #{currentMap.id} shows {plural(currentMap.points, 'frame')}; its{' '}
                {currentMap.features === 'fungi' ? 'FUNGI vectors' : 'features'} now cover{' '}
                {plural(currentMap.sourceFrames, 'frame')} (
                {currentMap.sourceFrames > currentMap.points
                  ? `${plural(currentMap.sourceFrames - currentMap.points, 'frame')} added`
                  : `${plural(currentMap.points - currentMap.sourceFrames, 'frame')} removed`}{' '}
                since).
              </Stale>
            )}
            <div className="field">
              <label htmlFor="map-colour">Colour by</label>
              <select id="map-colour" value={colourBy} onChange={(e) => setColourBy(e.target.value as ColourBy)}>
                <option value="cluster">Cluster (k-means)</option>
                <option value="video">Video / image</option>
                <option value="class">Class (labelled folder)</option>
                <option value="text">Similarity to a text</option>
              </select>
            </div>
            {colourBy === 'text' && (
              <TextQueryForm
                id="map-text"
                label="Text"
                value={textQuery}
                onChange={setTextQuery}
                onSubmit={colourByText}
                whyTestId="map-text-why"
                why={
                  textWhy(textReady) ||
                  (currentMap?.features === 'fungi' &&
                    'This map is of FUNGI vectors; a text is compared with CLS embeddings: build a map of embeddings.') ||
                  (!textQuery.trim() && 'Type a text to colour the points by their similarity to it.')
                }
                busy={colouring && 'Comparing every point with the text…'}
              >
                Colour
              </TextQueryForm>
            )}
            {colourBy === 'class' && (
              <PathField
                label="Labelled folder"
                value={classRoot}
                onChange={setClassRoot}
                placeholder="/data/set (sub-folder = class)"
              />
            )}
          </div>
          <div className="field-row">
            <button type="button" aria-pressed={lasso} onClick={() => setLasso((l) => !l)}>
              {lasso ? 'Lasso: on' : 'Lasso'}
            </button>
            <span className="muted" data-testid="map-selection">
              {selected.size > 0
                ? `${plural(selected.size, 'point')} selected in ${plural(selectedMedia.length, 'item')}`
                : 'Drag to pan, wheel to zoom, lasso (or Shift+drag) to select.'}
            </span>
            <ActionButton
              className="primary"
              why={selected.size === 0 && 'Select points first (lasso or Shift+drag).'}
              onClick={openInLibrary}
            >
              Open selection in Library
            </ActionButton>
            {selected.size > 0 && (
              <button type="button" onClick={() => setSelected(new Set())}>
                Clear
              </button>
            )}
          </div>
          {textShown && (
            <p className="muted" data-testid="map-text-note">
              Colour: cosine similarity to “{textSims?.text}” (ShareLock head “{textSims?.headName}”), lowest tenth
              (dark) to highest tenth (yellow).
            </p>
          )}
          {data && (
            <div className="map-stage">
              <div className="map-canvas-wrap">
                <MapCanvas
                  points={points}
                  {...(textShown ? { paint: scaleColour } : {})}
                  selected={selected}
                  lasso={lasso}
                  onSelect={setSelected}
                  onHover={(i, at) => setHover(i !== null && at ? { i, ...at } : null)}
                />
                {hovered && hover && (
                  <div
                    className="map-tip"
                    style={{ left: `${(hover.x / 900) * 100}%`, top: `${(hover.y / 600) * 100}%` }}
                  >
                    <img src={frameSrc(hovered.mediaId, hovered.frameIdx)} alt="" />
                    <div className="mono">
                      {media.find((m) => m.id === hovered.mediaId)?.name ?? `#${hovered.mediaId}`} ·{' '}
                      {frameLabel(hovered.frameIdx)}
                    </div>
                  </div>
                )}
              </div>
              <ul className="map-legend" aria-label="Legend">
                {legend.map((l) => (
                  <li key={l.colour}>
                    <span
                      className="swatch"
                      style={{ background: textShown ? scaleColour(l.colour) : colourOf(l.colour) }}
                    />{' '}
                    {l.label} <span className="muted">({l.n})</span>
                  </li>
                ))}
              </ul>
            </div>
          )}
        </section>
      )}
    </FeaturesPage>
  );
}
