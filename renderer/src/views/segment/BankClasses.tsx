import { useEffect, useState } from 'react';
import type { CommandResult, MediaInfo } from '../../../../native/api/contract';
import { frameLabel, plural } from '../../shell/format';
import { Icon } from '../../shell/Icon';
import { frameSrc } from '../../shell/media';
import { useApp } from '../../state/app-state';
import { classColour } from './MaskPainter';

export type BankClass = CommandResult<'segment.bankClasses'>[number];
type Example = BankClass['examples'][number];

/** A patch of a frame with one patch of context around it, the patch outlined. */
export function PatchThumb({ example, media, name }: { example: Example; media: MediaInfo | undefined; name: string }) {
  const [x0, y0, x1, y1] = example.box;
  const pw = x1 - x0;
  const ph = y1 - y0;
  const cx0 = Math.max(0, x0 - pw);
  const cy0 = Math.max(0, y0 - ph);
  const cx1 = Math.min(1, x1 + pw);
  const cy1 = Math.min(1, y1 + ph);
  const cw = cx1 - cx0;
  const ch = cy1 - cy0;
  const aspect = media?.frameWidth && media.frameHeight ? (cw * media.frameWidth) / (ch * media.frameHeight) : 1;
  return (
    <span
      className="patch-thumb"
      style={{ aspectRatio: String(aspect) }}
      title={`${name}: ${media?.name ?? 'frame'}, ${frameLabel(example.frameIdx)}`}
    >
      <img
        src={frameSrc(example.mediaId, example.frameIdx)}
        alt={`${name} in ${media?.name ?? 'a frame'}, ${frameLabel(example.frameIdx)}`}
        style={{
          width: `${100 / cw}%`,
          height: `${100 / ch}%`,
          left: `${(-100 * cx0) / cw}%`,
          top: `${(-100 * cy0) / ch}%`,
        }}
      />
      <span
        className="patch-outline"
        style={{
          left: `${(100 * (x0 - cx0)) / cw}%`,
          top: `${(100 * (y0 - cy0)) / ch}%`,
          width: `${(100 * pw) / cw}%`,
          height: `${(100 * ph) / ch}%`,
        }}
      />
    </span>
  );
}

/** A bank's classes, loaded again when the bank changes (built, renamed, merged). */
export function useBankClasses(bankId: number | null, version: unknown): BankClass[] | null {
  const { client } = useApp();
  const [classes, setClasses] = useState<BankClass[] | null>(null);
  // biome-ignore lint/correctness/useExhaustiveDependencies: version marks a change of the bank's contents
  useEffect(() => {
    if (bankId === null) {
      setClasses(null);
      return;
    }
    let live = true;
    void client.call('segment.bankClasses', { bankId, perClass: 6 }).then(
      (c) => live && setClasses(c),
      () => live && setClasses(null),
    );
    return () => {
      live = false;
    };
  }, [client, bankId, version]);
  return classes;
}

/** Patches per class of a bank, with a warning for classes too small to be predicted. */
export function BankCounts({ bank, classes }: { bank: { id: number; name: string }; classes: BankClass[] }) {
  const tiny = classes.filter((c) => c.tiny);
  return (
    <div className="bank-counts" data-testid={`bank-counts-${bank.id}`}>
      <span>
        Bank #{bank.id} “{bank.name}”:{' '}
        {classes.map((c, i) => (
          <span key={c.name} className="bank-class">
            <span className="swatch" style={{ background: `rgb(${classColour(i).join(',')})` }} /> {c.name}{' '}
            {plural(c.patches, 'patch', 'patches')}
            {i < classes.length - 1 ? ', ' : ''}
          </span>
        ))}
      </span>
      {tiny.length > 0 && (
        <p className="warn-text" data-testid="bank-tiny-warning">
          <Icon name="warning" />{' '}
          {tiny.map((c) => `“${c.name}” has only ${plural(c.patches, 'patch', 'patches')}`).join('; ')}: fewer than the
          30 neighbours each patch is compared with, so {tiny.length === 1 ? 'this class' : 'these classes'} will rarely
          be predicted. Mark more of it (a larger area, or another example frame), then build the bank again.
        </p>
      )}
    </div>
  );
}
