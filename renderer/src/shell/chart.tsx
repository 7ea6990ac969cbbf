import { type CSSProperties, type ReactNode, useCallback, useState } from 'react';

/**
 * SVG charts scale with their container, so text sized in the viewBox's units shrinks with it (a 640-wide plot in
 * a 320 px column drew 11-unit labels at 5.5 px). This gives the chart's labels a size in viewBox units that renders
 * at `px` screen pixels whatever the chart's width: put the ref on the <svg> and the style on it too.
 */
export function useChartText(
  viewBoxWidth: number,
  px = 12,
): { ref: (el: SVGSVGElement | null) => void; style: CSSProperties } {
  const [width, setWidth] = useState(viewBoxWidth);
  const ref = useCallback((el: SVGSVGElement | null) => {
    if (!el) return;
    const measure = () => {
      const w = el.getBoundingClientRect().width;
      if (w > 0) setWidth(w);
    };
    measure();
    new ResizeObserver(measure).observe(el);
  }, []);
  const size = (px * viewBoxWidth) / width;
  return { ref, style: { '--tick-size': `${size.toFixed(2)}px` } as CSSProperties };
}

/** The <svg> of a chart: a `width` x `height` viewBox scaled to its container, its labels sized by useChartText. */
export function ChartSvg({
  width,
  height,
  label,
  testId,
  children,
}: {
  width: number;
  height: number;
  /** What the chart shows, for screen readers. */
  label: string;
  testId: string;
  children: ReactNode;
}) {
  const text = useChartText(width);
  return (
    <svg
      ref={text.ref}
      style={text.style}
      viewBox={`0 0 ${width} ${height}`}
      className="chart"
      role="img"
      aria-label={label}
      data-testid={testId}
    >
      {children}
    </svg>
  );
}
