import { type MouseEvent, useEffect, useRef, useState } from 'react';
import type { CommandResult } from '../../../../native/api/contract';
import { frameLabel, plural } from '../../shell/format';
import { frameSrc } from '../../shell/media';
import { ActionButton } from '../../shell/Why';
import { useApp } from '../../state/app-state';
import { FeatureSourcePicker, FeaturesPage, useFeatureSource } from '../fungi/FeatureSource';
import { FramePicker, useCatalog } from '../segment/useCatalog';
import { FrameCard, TextSearch } from './TextSearch';

type Patches = CommandResult<'retrieve.patches'>;
type Images = CommandResult<'retrieve.images'>;
type Duplicates = CommandResult<'retrieve.duplicates'>;

type Grid = Patches['grid'];

/**
 * A similarity heat map over a frame: one translucent cell per patch of the frame's own grid (rows × columns, the
 * frame's aspect kept), the matched patch outlined. The canvas is stretched over the frame as shown.
 */
function HeatCanvas({ heat, grid, patch }: { heat: number[]; grid: Grid; patch: number }) {
  const ref = useRef<HTMLCanvasElement>(null);
  const { gridH, gridW } = grid;
  useEffect(() => {
    const c = ref.current;
    const ctx = c?.getContext('2d');
    if (!c || !ctx) return;
    const cw = c.width / gridW;
    const ch = c.height / gridH;
    ctx.clearRect(0, 0, c.width, c.height);
    const lo = Math.min(...heat);
    const hi = Math.max(...heat);
    heat.forEach((v, i) => {
      const t = hi > lo ? (v - lo) / (hi - lo) : 0;
      ctx.fillStyle = `rgba(255, ${Math.round(80 + 120 * (1 - t))}, 0, ${0.65 * t * t})`;
      ctx.fillRect((i % gridW) * cw, Math.floor(i / gridW) * ch, cw, ch);
    });
    ctx.strokeStyle = '#00e5ff';
    ctx.lineWidth = 2;
    ctx.strokeRect((patch % gridW) * cw, Math.floor(patch / gridW) * ch, cw, ch);
  }, [heat, gridH, gridW, patch]);
  return <canvas ref={ref} width={gridW * 16} height={gridH * 16} className="heat" />;
}

/** Image retrieval by CLS and patch retrieval by clicking a patch of the query frame. */
export function RetrieveView() {
  const { client, run } = useApp();
  const { runs, media } = useCatalog();
  const { runId, kind, picker } = useFeatureSource(runs);
  const [mediaId, setMediaId] = useState<number | null>(null);
  const [frameIdx, setFrameIdx] = useState(0);
  const [images, setImages] = useState<Images | null>(null);
  const [patches, setPatches] = useState<Patches | null>(null);

  const current = runs.find((r) => r.id === runId) ?? null;
  const [threshold, setThreshold] = useState(0.95);
  const [dups, setDups] = useState<Duplicates | null>(null);
  const findDuplicates = () => {
    if (!runId) return;
    void run('Could not look for duplicates', async () =>
      setDups(await client.call('retrieve.duplicates', { runId, threshold, limit: 60 })),
    );
  };
  useEffect(() => {
    if (mediaId === null && media[0]) setMediaId(media[0].id);
  }, [media, mediaId]);

  const findImages = () => {
    if (!runId || !mediaId) return;
    void run('Could not retrieve images', async () =>
      setImages(await client.call('retrieve.images', { runId, mediaId, frameIdx, k: 12, features: kind })),
    );
  };
  const clickPatch = (e: MouseEvent<HTMLDivElement>) => {
    if (!current || !mediaId || !runId) return;
    const box = e.currentTarget.getBoundingClientRect();
    // The engine finds the patch under the point on the frame's own grid.
    const point: [number, number] = [
      Math.min(1, Math.max(0, (e.clientX - box.left) / box.width)),
      Math.min(1, Math.max(0, (e.clientY - box.top) / box.height)),
    ];
    void run('Could not retrieve patches', async () =>
      setPatches(await client.call('retrieve.patches', { runId, mediaId, frameIdx, point, k: 12 })),
    );
  };
  const queryMedia = media.find((m) => m.id === mediaId) ?? null;
  const name = (id: number) => media.find((m) => m.id === id)?.name ?? `#${id}`;

  return (
    <FeaturesPage title="Retrieve" hasRuns={runs.length > 0}>
      <TextSearch name={name} />
      <section className="card">
        <FeatureSourcePicker idPrefix="retrieve" {...picker} />
        <FramePicker
          idPrefix="retrieve"
          media={media}
          mediaId={mediaId}
          frameIdx={frameIdx}
          onChange={(m, f) => {
            setMediaId(m);
            setFrameIdx(f);
            setPatches(null);
          }}
        />
        <div className="retrieve-query">
          {mediaId && current && (
            // biome-ignore lint/a11y/useKeyWithClickEvents lint/a11y/noStaticElementInteractions: a pointer-only picker; images can also be searched with the button
            <div
              className="patch-picker"
              onClick={clickPatch}
              data-testid="patch-picker"
              title="Click a patch to find similar patches"
            >
              <img
                src={frameSrc(mediaId, frameIdx)}
                alt={`Query: ${frameLabel(frameIdx)}`}
                style={
                  queryMedia?.frameWidth && queryMedia.frameHeight
                    ? { aspectRatio: `${queryMedia.frameWidth} / ${queryMedia.frameHeight}` }
                    : {}
                }
              />
              {patches && (
                <HeatCanvas
                  heat={new Array(patches.grid.gridH * patches.grid.gridW).fill(0)}
                  grid={patches.grid}
                  patch={patches.patch}
                />
              )}
            </div>
          )}
          <div>
            <ActionButton className="primary" onClick={findImages} why={!mediaId && 'Choose an image or video above.'}>
              Find similar images
            </ActionButton>
            <p className="muted">Or click a patch of the frame to find similar patches across the library.</p>
            <p className="muted">
              From run #{current?.id}: {current?.modelName}, {current?.inputSize} px
              {current?.resize === 'square' ? ', frames squashed to a square' : ', aspect ratio kept'}
              {patches ? ` (${patches.grid.gridH}×${patches.grid.gridW} patches on this frame)` : ''}.
            </p>
          </div>
        </div>
      </section>
      {patches && (
        <section aria-labelledby="patch-results">
          <h2 id="patch-results">Similar patches</h2>
          {patches.framesSearched < patches.framesTotal && (
            <p className="muted" data-testid="patch-coverage">
              Searched {patches.framesSearched} of {patches.framesTotal} frames (evenly spaced): all of their patches
              would not fit in memory.
            </p>
          )}
          <ul className="media-grid" data-testid="patch-results">
            {patches.results.map((r) => (
              <li key={`${r.mediaId}-${r.frameIdx}`} className="media-card">
                <div className="heat-stage">
                  <img src={frameSrc(r.mediaId, r.frameIdx)} alt={`${name(r.mediaId)} ${frameLabel(r.frameIdx)}`} />
                  <HeatCanvas heat={r.heat} grid={r.grid} patch={r.patch} />
                </div>
                <div className="card-caption">
                  {name(r.mediaId)} · {frameLabel(r.frameIdx)} · cos {r.sim.toFixed(3)}
                </div>
              </li>
            ))}
          </ul>
        </section>
      )}
      {images && (
        <section aria-labelledby="image-results">
          <h2 id="image-results">
            Similar images{' '}
            <span className="muted">({images.features === 'fungi' ? 'FUNGI gradients' : 'CLS embeddings'})</span>
          </h2>
          <ul className="media-grid" data-testid="image-results">
            {images.results.map((r) => (
              <FrameCard
                key={`${r.mediaId}-${r.frameIdx}`}
                mediaId={r.mediaId}
                frameIdx={r.frameIdx}
                name={name(r.mediaId)}
              >
                {name(r.mediaId)} · {frameLabel(r.frameIdx)} · cos {r.sim.toFixed(3)}
              </FrameCard>
            ))}
          </ul>
        </section>
      )}
      {runs.length > 0 && (
        <section className="card" aria-labelledby="dup-title">
          <h2 id="dup-title">Near-duplicates</h2>
          <div className="field-row">
            <div className="field">
              <label htmlFor="dup-threshold">Cosine similarity at least</label>
              <input
                id="dup-threshold"
                type="number"
                min={0}
                max={1}
                step={0.005}
                value={threshold}
                onChange={(e) => setThreshold(Number(e.target.value))}
              />
            </div>
          </div>
          <button type="button" onClick={findDuplicates}>
            Find near-duplicates
          </button>
          {dups && (
            <div data-testid="duplicates">
              <p className="muted">
                {dups.pairs.length === 0
                  ? 'No pairs above the threshold.'
                  : `${plural(dups.pairs.length, 'pair')}, most similar first.`}
              </p>
              <ul className="dup-list">
                {dups.pairs.map((p) => (
                  <li key={`${p.a.mediaId}-${p.a.frameIdx}-${p.b.mediaId}-${p.b.frameIdx}`}>
                    <img
                      src={frameSrc(p.a.mediaId, p.a.frameIdx)}
                      alt={`${name(p.a.mediaId)} ${frameLabel(p.a.frameIdx)}`}
                    />
                    <img
                      src={frameSrc(p.b.mediaId, p.b.frameIdx)}
                      alt={`${name(p.b.mediaId)} ${frameLabel(p.b.frameIdx)}`}
                    />
                    <span className="mono">
                      {name(p.a.mediaId)} {frameLabel(p.a.frameIdx)} ~ {name(p.b.mediaId)} {frameLabel(p.b.frameIdx)} ·
                      cos {p.sim.toFixed(4)}
                    </span>
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
