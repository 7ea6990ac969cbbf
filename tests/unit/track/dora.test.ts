import fs from 'node:fs';
import path from 'node:path';
import zlib from 'node:zlib';
import { afterAll, describe, expect, it } from 'vitest';
import { attentionMasks, discover, maskBox, sinkhorn, trackMasks } from '../../../native/models/dora.js';
import { instanceMask } from '../../../native/track/export.js';
import { dispatchEngine, tourProjectWithModel } from '../../helpers/dispatch.js';
import { tmpDir } from '../../helpers/tmp.js';

describe('Dora discovery and tracking', () => {
  it('Sinkhorn-Knopp spreads patches evenly over objects (uniform marginals)', () => {
    const n = 12;
    const k = 3;
    const scores = Float32Array.from({ length: n * k }, (_, i) => Math.sin(i * 1.7));
    const m = sinkhorn(scores, n, k, 0.05, 30);
    for (let i = 0; i < n; i++) {
      let s = 0;
      for (let c = 0; c < k; c++) s += m[i * k + c] as number;
      expect(s).toBeCloseTo(1, 3);
    }
    for (let c = 0; c < k; c++) {
      let s = 0;
      for (let i = 0; i < n; i++) s += m[i * k + c] as number;
      expect(s).toBeCloseTo(n / k, 1);
    }
  });

  it('discovers two objects from attention and follows them where their keys move', () => {
    // 16 patches (4 x 4), d = 4. Frame 1: object A is the left half (key/query direction e0), B the right half (e1).
    // Sinkhorn gives each of the k prototypes an equal share of the patches, as in Dora.
    const n = 16;
    const d = 4;
    const onehot = (j: number) => [0, 1, 2, 3].map((x) => (x === j ? 1 : 0));
    const layout = (isA: (i: number) => boolean) =>
      Float32Array.from([...Array(n).keys()].flatMap((i) => onehot(isA(i) ? 0 : 1)));
    const q = layout((i) => i % 4 < 2);
    const attention = new Float32Array(2 * n);
    for (let i = 0; i < n; i++) attention[(i % 4 < 2 ? 0 : n) + i] = 1 / 8; // head 0 looks at A, head 1 at B
    const protos = discover(q, attention, n, d, { heads: [0, 1], epsilon: 0.05, iterations: 30 });
    // Frame 2: A moved to the top half, B to the bottom half.
    const masks = trackMasks(
      protos,
      layout((i) => i < 8),
      n,
      d,
    );
    const on = (c: number) => [...Array(n).keys()].filter((i) => masks[c * n + i]);
    expect(on(0)).toEqual([0, 1, 2, 3, 4, 5, 6, 7]);
    expect(on(1)).toEqual([8, 9, 10, 11, 12, 13, 14, 15]);
    expect(maskBox(masks.subarray(0, n), { gridH: 4, gridW: 4 }, 64, 64)).toEqual([0, 0, 64, 32]);
    // A wide grid (2 rows, 8 columns) over a 128x32 frame: the first row is 128x16.
    expect(maskBox(masks.subarray(0, n), { gridH: 2, gridW: 8 }, 128, 32)).toEqual([0, 0, 128, 16]);
    expect([...attentionMasks(attention, [1], n)].filter(Boolean)).toHaveLength(8);
  });
});

describe('tracking job', () => {
  const { engine, call, d } = dispatchEngine();
  afterAll(() => engine.close());

  it('tracks every frame, stores boxes, and exports MOT CSV', async () => {
    const work = tmpDir();
    const model = await tourProjectWithModel({ engine, call }, work);
    const media = (await call('library.list', {})).items[0];
    const job = await call('track.start', { modelId: model.id, mediaId: media?.id ?? 0, objects: 2, seed: 1 });
    await engine.requireProject().runner.idle();
    expect((await call('jobs.get', { id: job.id })).state).toBe('done');
    const boxes = await call('track.boxes', { runId: 1 });
    expect(boxes).toHaveLength(20 * 2);
    expect(new Set(boxes.map((b) => b.object))).toEqual(new Set([1, 2]));
    const out = await call('track.exportMot', { runId: 1, path: path.join(work, 'tracks.csv') });
    const lines = fs.readFileSync(out.path, 'utf8').trim().split('\n');
    expect(lines.length).toBe(out.rows);
    expect(lines[0]).toMatch(/^1,[12],[\d.]+,[\d.]+,[\d.]+,[\d.]+,1,-1,-1,-1$/);

    const masks = await call('track.exportMasks', { runId: 1, dir: path.join(work, 'masks') });
    expect(masks.frames).toBe(20);
    const files = fs.readdirSync(masks.dir).sort();
    expect(files).toHaveLength(20);
    expect(files[0]).toBe('frame_000001.png');
    const { grid, objects } = await call('track.frame', { runId: 1, frameIdx: 0 });
    // The 320x240 frames keep their 4:3 aspect: 14 rows by 19 columns of patches at 224.
    expect(grid).toEqual({ gridH: 14, gridW: 19 });
    const png = readGrayPng(path.join(masks.dir, 'frame_000001.png'));
    expect([png.width, png.height]).toEqual([media?.frameWidth, media?.frameHeight]);
    // the pixel at the centre of every grid cell carries the id of the object whose mask covers the cell
    for (let r = 0; r < grid.gridH; r++)
      for (let c = 0; c < grid.gridW; c++) {
        const x = Math.floor(((c + 0.5) * png.width) / grid.gridW);
        const y = Math.floor(((r + 0.5) * png.height) / grid.gridH);
        const owners = objects.filter((o) => o.mask[r * grid.gridW + c]).map((o) => o.object);
        expect(png.pixels[y * png.width + x]).toBe(owners.length ? Math.max(...owners) : 0);
      }

    // Issue 15 items 5 and 9: bad destinations get a typed error and a sentence at once, never INTERNAL or a hang.
    const refused = async (command: 'track.exportMot' | 'track.exportMasks', args: Record<string, unknown>) => {
      const r = await d.dispatch(command, { runId: 1, ...args });
      if (r.ok) throw new Error(`${command} ${JSON.stringify(args)} was accepted`);
      return r.error;
    };
    expect(await refused('track.exportMot', { path: work })).toMatchObject({
      code: 'PATH_REFUSED',
      message: expect.stringMatching(/is a folder\. Give a file name inside it/),
    });
    expect(await refused('track.exportMot', { path: path.join(out.path, 'inside.csv') })).toMatchObject({
      code: 'PATH_REFUSED',
      message: expect.stringMatching(/tracks\.csv is a file, so .* cannot be made inside it/),
    });
    expect(await refused('track.exportMasks', { dir: out.path })).toMatchObject({
      code: 'PATH_REFUSED',
      message: expect.stringMatching(/is a file, not a folder/),
    });
    if (process.platform === 'linux') {
      expect(await refused('track.exportMasks', { dir: '/proc/self/flaneur/masks' })).toMatchObject({
        code: 'PATH_REFUSED',
        message: expect.stringMatching(/on the system's proc file system/),
      });
    }
    const nested = await call('track.exportMot', { runId: 1, path: path.join(work, 'new', 'sub', 'tracks.csv') });
    expect(fs.readFileSync(nested.path, 'utf8').trim().split('\n')).toHaveLength(nested.rows);
  });
});

/** Reads an 8-bit grayscale PNG written with filter 0 on every row (what media/png.ts writes). */
function readGrayPng(file: string): { width: number; height: number; pixels: Uint8Array } {
  const buf = fs.readFileSync(file);
  const width = buf.readUInt32BE(16);
  const height = buf.readUInt32BE(20);
  const idat: Buffer[] = [];
  for (let o = 8; o < buf.length; ) {
    const len = buf.readUInt32BE(o);
    if (buf.toString('latin1', o + 4, o + 8) === 'IDAT') idat.push(buf.subarray(o + 8, o + 8 + len));
    o += 12 + len;
  }
  const raw = zlib.inflateSync(Buffer.concat(idat));
  const pixels = new Uint8Array(width * height);
  for (let y = 0; y < height; y++) {
    expect(raw[y * (width + 1)]).toBe(0);
    pixels.set(raw.subarray(y * (width + 1) + 1, (y + 1) * (width + 1)), y * width);
  }
  return { width, height, pixels };
}

describe('instance masks', () => {
  it('upsamples grid masks to the frame, higher ids winning overlaps, and rejects wrong shapes', () => {
    const a = Uint8Array.from([1, 1, 0, 0]);
    const b = Uint8Array.from([0, 1, 0, 1]);
    const m = instanceMask(
      [
        { object: 2, mask: b },
        { object: 1, mask: a },
      ],
      { gridH: 2, gridW: 2 },
      4,
      3,
    );
    // rows 0..1 map to grid row 0 (3·2/3 → y=0,1 → 0, y=2 → 1)
    expect(Array.from(m)).toEqual([1, 1, 2, 2, 1, 1, 2, 2, 0, 0, 2, 2]);
    expect(() => instanceMask([{ object: 1, mask: new Uint8Array(3) }], { gridH: 2, gridW: 2 }, 4, 4)).toThrow(
      /not 2×2/,
    );
    expect(() => instanceMask([{ object: 300, mask: a }], { gridH: 2, gridW: 2 }, 4, 4)).toThrow(/8-bit/);
    // A 1x2 grid over a 4x2 frame: left half object 1, right half object 2.
    expect(
      Array.from(
        instanceMask(
          [
            { object: 1, mask: Uint8Array.from([1, 0]) },
            { object: 2, mask: Uint8Array.from([0, 1]) },
          ],
          { gridH: 1, gridW: 2 },
          4,
          2,
        ),
      ),
    ).toEqual([1, 1, 2, 2, 1, 1, 2, 2]);
  });
});
