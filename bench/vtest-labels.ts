/**
 * Hand labels of three frames of the bundled real clip (tests/fixtures/vtest-labels/labels.json): class masks
 * (grass, paved, building, person; 255 = unlabelled, ignored) at the clip's 480x360, for the real-clip evaluation.
 */
import fs from 'node:fs';
import path from 'node:path';
import { IGNORE } from '../native/segment/labels.js';
import { boxPolygon, fillPolygon, type Polygon } from '../native/segment/polygons.js';

const FILE = path.resolve(import.meta.dirname, '..', 'tests', 'fixtures', 'vtest-labels', 'labels.json');

interface Labels {
  classes: string[];
  scene: Record<string, Polygon[]>;
  frames: Record<string, [number, number, number, number][]>;
}

export const VTEST = { width: 480, height: 360 } as const;

export function vtestLabels(): { classes: string[]; seconds: number[]; mask(seconds: number): Uint8Array } {
  const l = JSON.parse(fs.readFileSync(FILE, 'utf8')) as Labels;
  return {
    classes: l.classes,
    seconds: Object.keys(l.frames).map(Number),
    mask(seconds) {
      const m = new Uint8Array(VTEST.width * VTEST.height).fill(IGNORE);
      for (const name of ['grass', 'paved', 'building'])
        for (const p of l.scene[name] ?? []) fillPolygon(m, VTEST.width, VTEST.height, p, l.classes.indexOf(name));
      for (const box of l.frames[String(seconds)] ?? [])
        fillPolygon(m, VTEST.width, VTEST.height, boxPolygon(box), l.classes.indexOf('person'));
      return m;
    },
  };
}
