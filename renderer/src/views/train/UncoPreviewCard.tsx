import { useState } from 'react';
import type { CommandArgs, CommandResult } from '../../../../native/api/contract';
import { plural } from '../../shell/format';
import { ActionButton } from '../../shell/Why';
import { useApp } from '../../state/app-state';

type Preview = CommandResult<'train.uncoPreview'>;

/**
 * "What the counter learns from", before any training: a few Self-Collages of the UnCo settings above (the objects
 * found in the chosen frames, pasted in known numbers beside distractors), each with its N, its density target and
 * the exemplar boxes; the same seed gives the same collages. No job: the engine builds them off its event loop.
 */
export function UncoPreviewCard({ args, why }: { args: CommandArgs<'train.uncoPreview'>; why: string | null }) {
  const { client, run } = useApp();
  const [preview, setPreview] = useState<{ seed: number; result: Preview } | null>(null);
  const [busy, setBusy] = useState<string | null>(null);
  const build = (seed: number) => {
    setBusy('Finding objects in the chosen frames and building collages…');
    void run('Could not build the collage preview', async () => {
      setPreview({ seed, result: await client.call('train.uncoPreview', { ...args, seed }) });
    }).finally(() => setBusy(null));
  };
  const r = preview?.result;
  return (
    <div className="unco-preview" data-testid="unco-preview">
      <div className="field-row">
        <ActionButton why={why} busy={busy} onClick={() => build(args.seed ?? 0)}>
          Preview collages
        </ActionButton>
        {preview && (
          <ActionButton why={why} busy={busy} onClick={() => build(preview.seed + 1)}>
            Other collages
          </ActionButton>
        )}
      </div>
      {r && (
        <figure className="previews">
          <figcaption data-testid="unco-preview-summary">
            What the counter learns from (seed {preview.seed}): {plural(r.objects, 'object')} of{' '}
            {plural(r.types, 'type')} found without labels in {plural(r.frames, 'frame')}, pasted in known numbers. Each
            collage's target density sums to its N; the boxes are the exemplars it is shown.
          </figcaption>
          <div className="preview-steps">
            {r.collages.map((k, i) => (
              <div key={k.png} className="preview-step" data-testid="unco-preview-collage">
                <div className="unco-preview-pair">
                  <div className="unco-preview-stage">
                    <img src={k.png} alt={`Self-Collage ${i + 1}: ${k.count} target objects`} />
                    <svg viewBox={`0 0 ${r.size} ${r.size}`} aria-hidden="true">
                      {k.exemplars.map(([x, y, w, h]) => (
                        <rect key={`${x},${y}`} x={x} y={y} width={w} height={h} />
                      ))}
                    </svg>
                  </div>
                  <img
                    src={k.densityPng}
                    alt={`Density target of collage ${i + 1}, summing to ${k.targetSum.toFixed(1)}`}
                  />
                </div>
                <span data-testid="unco-preview-count">
                  N = {k.count} · target sums to {k.targetSum.toFixed(1)} · {plural(k.distractors, 'distractor')}
                  {k.overlapping ? ' · overlapping' : ''}
                </span>
              </div>
            ))}
          </div>
        </figure>
      )}
    </div>
  );
}
