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
import { useCatalog } from '../segment/useCatalog';
import { colourOf, MapCanvas, type MapPointView } from './MapCanvas';

type MapList = CommandResult<'map.list'>;
type MapData = CommandResult<'map.get'>;
type ColourBy = 'cluster' | 'video' | 'class';

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
    return data.points.map((p, i) => ({
      x: p.x,
      y: p.y,
      colour:
        colourBy === 'cluster'
          ? p.cluster
          : colourBy === 'video'
            ? (videoIndex.get(p.mediaId) ?? 0)
            : (data.labels[i] ?? -1),
    }));
  }, [data, colourBy, mediaIds]);
  const legend: { label: string; colour: number; n: number }[] = useMemo(() => {
    if (!data) return [];
    const counts = new Map<number, number>();
    for (const p of points) counts.set(p.colour, (counts.get(p.colour) ?? 0) + 1);
    const name = (c: number) =>
      colourBy === 'cluster'
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
  }, [data, points, colourBy, media, mediaIds]);

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
              </select>
            </div>
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
          {data && (
            <div className="map-stage">
              <div className="map-canvas-wrap">
                <MapCanvas
                  points={points}
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
                    <span className="swatch" style={{ background: colourOf(l.colour) }} /> {l.label}{' '}
                    <span className="muted">({l.n})</span>
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
