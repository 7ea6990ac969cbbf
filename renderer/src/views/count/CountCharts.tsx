import type { CommandResult } from '../../../../native/api/contract';
import { ChartSvg } from '../../shell/chart';
import { formatTimestamp, plural } from '../../shell/format';

type Rows = CommandResult<'count.results'>;

/** Count per frame over time, as an SVG line. */
export function CountPlot({ rows }: { rows: Rows }) {
  const W = 640;
  const H = 180;
  const pad = 28;
  const t1 = Math.max(1e-6, ...rows.map((r) => r.pts));
  const c1 = Math.max(1, ...rows.map((r) => r.count));
  const x = (t: number) => pad + ((W - 2 * pad) * t) / t1;
  const y = (c: number) => H - pad - ((H - 2 * pad) * c) / c1;
  const line = rows.map((r, i) => `${i ? 'L' : 'M'}${x(r.pts).toFixed(1)},${y(r.count).toFixed(1)}`).join(' ');
  return (
    <ChartSvg width={W} height={H} label="Count per frame over time" testId="count-plot">
      <line x1={pad} y1={H - pad} x2={W - pad} y2={H - pad} className="axis" />
      <line x1={pad} y1={pad} x2={pad} y2={H - pad} className="axis" />
      <text x={pad} y={H - 8} className="tick">
        0:00
      </text>
      <text x={W - pad} y={H - 8} className="tick" textAnchor="end">
        {formatTimestamp(t1)}
      </text>
      <text x={4} y={pad} className="tick">
        {Number(c1.toFixed(1))}
      </text>
      <path d={line} className="series" />
    </ChartSvg>
  );
}

/** How often each count occurs across the frames. */
export function CountHistogram({ rows }: { rows: Rows }) {
  const W = 640;
  const H = 160;
  const pad = 24;
  const max = Math.max(0, ...rows.map((r) => r.count));
  const bins = new Array(max + 1).fill(0) as number[];
  for (const r of rows) bins[r.count] = (bins[r.count] as number) + 1;
  const top = Math.max(1, ...bins);
  const bw = (W - 2 * pad) / bins.length;
  const bars = bins.map((n, count) => ({ n, count }));
  return (
    <ChartSvg width={W} height={H} label="Histogram of counts" testId="count-histogram">
      {bars.map(({ n, count: c }) => (
        <rect
          key={`bar-${c}`}
          x={pad + c * bw + 1}
          y={H - pad - ((H - 2 * pad) * n) / top}
          width={Math.max(1, bw - 2)}
          height={((H - 2 * pad) * n) / top}
          className="bar"
        >
          <title>{`${plural(n, 'frame')} with ${c}`}</title>
        </rect>
      ))}
      <line x1={pad} y1={H - pad} x2={W - pad} y2={H - pad} className="axis" />
      <text x={pad} y={H - 6} className="tick">
        0
      </text>
      <text x={W - pad} y={H - 6} className="tick" textAnchor="end">
        {max}
      </text>
    </ChartSvg>
  );
}

export function downloadCsv(name: string, lines: string[]): void {
  const url = URL.createObjectURL(new Blob([lines.join('\n')], { type: 'text/csv' }));
  const a = document.createElement('a');
  a.href = url;
  a.download = name;
  a.click();
  URL.revokeObjectURL(url);
}
