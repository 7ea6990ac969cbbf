/**
 * Export of segmentations: class-id PNG masks and COCO JSON with one run-length-encoded mask per (image, class)
 * (uncompressed RLE, column-major as pycocotools), area and bounding box.
 */
export interface CocoImage {
  id: number;
  file_name: string;
  width: number;
  height: number;
  /** Flaneur's ids of the frame. */
  media_id: number;
  frame_index: number;
}

export interface CocoAnnotation {
  id: number;
  image_id: number;
  category_id: number;
  segmentation: { counts: number[]; size: [number, number] };
  area: number;
  bbox: [number, number, number, number];
  iscrowd: 1;
}

/** Uncompressed COCO RLE of (mask == value): run lengths in column-major order, starting with a 0-run. */
export function rleEncode(
  mask: Uint8Array,
  width: number,
  height: number,
  value: number,
): { counts: number[]; area: number; bbox: [number, number, number, number] } {
  const counts: number[] = [];
  let run = 0;
  let current = 0;
  let area = 0;
  let x0 = width;
  let y0 = height;
  let x1 = -1;
  let y1 = -1;
  for (let x = 0; x < width; x++) {
    for (let y = 0; y < height; y++) {
      const on = mask[y * width + x] === value ? 1 : 0;
      if (on !== current) {
        counts.push(run);
        run = 0;
        current = on;
      }
      run++;
      if (on) {
        area++;
        if (x < x0) x0 = x;
        if (y < y0) y0 = y;
        if (x > x1) x1 = x;
        if (y > y1) y1 = y;
      }
    }
  }
  counts.push(run);
  return { counts, area, bbox: area ? [x0, y0, x1 - x0 + 1, y1 - y0 + 1] : [0, 0, 0, 0] };
}

export function rleDecode(counts: readonly number[], width: number, height: number): Uint8Array {
  const out = new Uint8Array(width * height);
  let i = 0;
  let on = 0;
  for (const c of counts) {
    for (let k = 0; k < c; k++, i++) {
      if (on) out[(i % height) * width + Math.floor(i / height)] = 1;
    }
    on ^= 1;
  }
  return out;
}

export class CocoWriter {
  readonly images: CocoImage[] = [];
  readonly annotations: CocoAnnotation[] = [];

  constructor(
    readonly classes: readonly string[],
    readonly skipClass0 = true,
  ) {}

  add(image: Omit<CocoImage, 'id'>, mask: Uint8Array): void {
    const id = this.images.length + 1;
    this.images.push({ id, ...image });
    for (let c = this.skipClass0 ? 1 : 0; c < this.classes.length; c++) {
      const { counts, area, bbox } = rleEncode(mask, image.width, image.height, c);
      if (area === 0) continue;
      this.annotations.push({
        id: this.annotations.length + 1,
        image_id: id,
        category_id: c,
        segmentation: { counts, size: [image.height, image.width] },
        area,
        bbox,
        iscrowd: 1,
      });
    }
  }

  toJSON() {
    return {
      info: { description: 'Flaneur in-context segmentation', date_created: new Date().toISOString() },
      images: this.images,
      annotations: this.annotations,
      categories: this.classes.map((name, id) => ({ id, name })).filter((c) => !this.skipClass0 || c.id > 0),
    };
  }
}
