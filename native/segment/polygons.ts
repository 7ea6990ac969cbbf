/** Class masks from polygons (hand labels): even-odd scanline fill at pixel centres, later polygons on top. */
export type Polygon = readonly (readonly [number, number])[];

export function fillPolygon(mask: Uint8Array, width: number, height: number, poly: Polygon, value: number): void {
  for (let y = 0; y < height; y++) {
    const cy = y + 0.5;
    const xs: number[] = [];
    for (let i = 0, j = poly.length - 1; i < poly.length; j = i++) {
      const [xi, yi] = poly[i] as readonly [number, number];
      const [xj, yj] = poly[j] as readonly [number, number];
      if (yi > cy !== yj > cy) xs.push(xi + ((cy - yi) * (xj - xi)) / (yj - yi));
    }
    xs.sort((a, b) => a - b);
    for (let k = 0; k + 1 < xs.length; k += 2) {
      const x0 = Math.max(0, Math.ceil((xs[k] as number) - 0.5));
      const x1 = Math.min(width - 1, Math.ceil((xs[k + 1] as number) - 0.5) - 1);
      for (let x = x0; x <= x1; x++) mask[y * width + x] = value;
    }
  }
}

/** A box [x0, y0, x1, y1] (inclusive pixel bounds) as a polygon. */
export function boxPolygon([x0, y0, x1, y1]: readonly [number, number, number, number]): Polygon {
  return [
    [x0, y0],
    [x1 + 1, y0],
    [x1 + 1, y1 + 1],
    [x0, y1 + 1],
  ];
}
