/**
 * Every analysis command of the CLI on the synthetic tour (tests/fixtures/synthetic), each checked against the
 * engine command its app view uses on the same project: exported features against the stored ones, segment apply's
 * IoU against the Segment view's (segment.apply with a truth mask), counts against the Count view's
 * (count.exemplar / count.auto), the MOT file against the Player's download (track.mot), retrieval against the
 * Retrieve view's commands. A ViT-Ti (4 blocks) at its initialisation and 20 frames keep it fast.
 */
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Engine } from '../../../native/engine/engine.js';
import { f16RowsToF32 } from '../../../native/features/knn.js';
import { findBinaries } from '../../../native/media/ffmpeg.js';
import { encodePng } from '../../../native/media/png.js';
import { parseSafetensors } from '../../../native/models/safetensors.js';
import { IoUMeter } from '../../../native/segment/labels.js';
import { readMask } from '../../../native/segment/masks.js';
import { readNpy, runCli } from '../../helpers/cli.js';
import { type EngineCall, withProjectEngine } from '../../helpers/dispatch.js';
import { fixturePath } from '../../helpers/fixtures.js';
import { writeInitViT } from '../../helpers/models.js';
import { tmpDir } from '../../helpers/tmp.js';

const ffmpeg = (args: string[]) =>
  execFileSync(findBinaries().ffmpeg.path, ['-v', 'error', '-y', ...args], { stdio: ['ignore', 'ignore', 'inherit'] });

/** Source frame `n` of the tour (10 fps) as a JPEG. */
const tourFrame = (n: number, file: string) =>
  ffmpeg([
    '-i',
    fixturePath('synthetic', 'tour.mp4'),
    '-vf',
    `select=eq(n\\,${n})`,
    '-frames:v',
    '1',
    '-q:v',
    '2',
    file,
  ]);

/** The category mask of source frame n (every 10th frame has one: sampled frame n/10 at 1 fps). */
const truthMask = (n: number) => fixturePath('synthetic', 'masks', `${String(n).padStart(4, '0')}.png`);

// Seven commands with real models on 2 shared cores: minutes under load, not the default 30 s.
describe('the CLI on the synthetic tour, against the views’ engine commands', { timeout: 180_000 }, () => {
  const home = tmpDir();
  const work = tmpDir();
  const project = path.join(work, 'project');
  const data = path.join(work, 'data');
  const cli = async (...args: string[]) => {
    const r = await runCli([...args, '--project', project, '--json']);
    if (r.code !== 0) throw new Error(`flaneur ${args.join(' ')} exited ${r.code}: ${r.stderr}`);
    return r.json<Record<string, unknown>>();
  };
  let mediaId = 0;
  let runId = 0;

  /** The app's engine on the same project, for the commands the views call. */
  const view = <T>(fn: (call: EngineCall, engine: Engine) => Promise<T>) => withProjectEngine(project, fn);

  beforeAll(async () => {
    process.env.FLANEUR_HOME = home;
    fs.mkdirSync(path.join(data, 'tour'), { recursive: true });
    fs.copyFileSync(fixturePath('synthetic', 'tour.mp4'), path.join(data, 'tour', 'tour.mp4'));
    // Its own model is #1: no starter model.
    await cli('project', 'create', project, '--no-starter-model');
    await cli('add', path.join(data, 'tour'), '--fps', '1', '--size', '240');
    const model = await cli('model', 'import', writeInitViT(path.join(work, 'vit.safetensors')));
    expect(model.id).toBe(1);
    const f = await cli('features', '--all', '--size', '224');
    const run = f.run as { id: number; frames: number; grid: number };
    expect(run).toMatchObject({ frames: 20, grid: 14 });
    runId = run.id;
    mediaId = ((await cli('library')).items as { id: number }[])[0]?.id ?? 0;
  }, 300_000);

  afterAll(() => {
    delete process.env.FLANEUR_HOME;
  });

  it('exports patch features as float32 [h, w, D] .npy grids and CLS vectors equal to the stored ones', async () => {
    const out = path.join(work, 'features');
    const r = await cli('features', 'export', '--out', out, '--what', 'both');
    expect(r.frames).toBe(20);
    const manifest = JSON.parse(fs.readFileSync(path.join(out, 'manifest.json'), 'utf8')) as {
      model: { id: number; sha256: string };
      run: { inputSize: number; grid: number; dim: number; preprocessing: Record<string, unknown> };
      frames: {
        mediaId: number;
        frame: number;
        frameIdx: number;
        timeS: number;
        source: string;
        files: string[];
        grid: [number, number];
      }[];
    };
    expect(manifest.run).toMatchObject({ inputSize: 224, grid: 14, dim: 192 });
    expect(manifest.run.preprocessing).toHaveProperty('mean');
    expect(manifest.frames).toHaveLength(20);
    expect(manifest.frames[0]).toMatchObject({ mediaId, frame: 1, frameIdx: 0, timeS: 0 });
    expect(manifest.frames[0]?.source).toBe(path.join(data, 'tour', 'tour.mp4'));
    expect(manifest.frames[0]?.files).toEqual([`${mediaId}/000001.cls.npy`, `${mediaId}/000001.patches.npy`]);
    await view(async (_call, engine) => {
      const store = engine.requireProject().project.features;
      {
        for (const f of manifest.frames) {
          const stored = store.get(runId, f.mediaId, f.frameIdx);
          if (!stored) throw new Error(`no stored features for frame ${f.frameIdx}`);
          const patches = readNpy(path.join(out, f.files[1] as string));
          // 320x240 frames keep their aspect: 14 rows of patches (the shorter side at 224 px), more columns.
          expect(f.grid[0]).toBe(14);
          expect(f.grid[1]).toBeGreaterThan(14);
          expect(patches.shape).toEqual([...f.grid, 192]);
          expect(patches.data).toEqual(f16RowsToF32(stored.patches));
          const cls = readNpy(path.join(out, f.files[0] as string));
          expect(cls.shape).toEqual([192]);
          expect(cls.data).toEqual(stored.cls);
        }
        // The same patches as safetensors, for one item.
        const st = path.join(work, 'features-st');
        await cli('features', 'export', '--out', st, '--format', 'safetensors', String(mediaId));
        const file = parseSafetensors(fs.readFileSync(path.join(st, String(mediaId), '000007.safetensors')), 'x');
        expect(file.tensors.get('patches')?.shape).toEqual([...(manifest.frames[6]?.grid ?? []), 192]);
        expect(file.float32('patches')).toEqual(
          f16RowsToF32(store.get(runId, mediaId, 6)?.patches ?? new Uint16Array()),
        );
      }
    });
  });

  it("segments with a bank built from example masks, scoring the same IoU as the Segment view's", async () => {
    const examples = path.join(data, 'examples');
    fs.mkdirSync(examples);
    // Two catalog frames named ITEM@N.png (frames 5 and 13 = source frames 40 and 120) and one photo pair.
    fs.copyFileSync(truthMask(40), path.join(examples, 'tour.mp4@5.png'));
    fs.copyFileSync(truthMask(120), path.join(examples, 'tour.mp4@13.png'));
    tourFrame(60, path.join(examples, 'street.jpg'));
    fs.copyFileSync(truthMask(60), path.join(examples, 'street.png'));
    fs.writeFileSync(path.join(examples, 'classes.txt'), 'background\ndisc\nbox\nkite\n');
    const bank = await cli('segment', 'bank', '--examples', examples, '--name', 'tour');
    expect(bank).toMatchObject({ id: 1, classes: ['background', 'disc', 'box', 'kite'] });
    expect(bank.patches).toBeGreaterThan(400);

    const truth = path.join(data, 'truth');
    fs.mkdirSync(truth);
    for (const n of [9, 17, 20]) fs.copyFileSync(truthMask((n - 1) * 10), path.join(truth, `tour.mp4@${n}.png`));
    const out = path.join(work, 'segmented');
    const r = await cli('segment', 'apply', '--bank', '1', 'tour.mp4', '--out', out, '--every', '5', '--truth', truth);
    const iou = r.iou as {
      mean: number;
      perClass: Record<string, number | null>;
      frames: { frame: number; mean: number; perClass: (number | null)[] }[];
    };
    // Every 5th frame (1, 6, 11, 16) and the three with truth.
    expect(r.masks).toBe(7);
    expect(fs.readdirSync(path.join(out, 'masks')).sort()).toContain(`${mediaId}-000009.png`);
    expect(iou.frames.map((f) => f.frame)).toEqual([9, 17, 20]);
    const total = new IoUMeter(4);
    await view(async (call) => {
      for (const f of iou.frames) {
        const shown = await call('segment.apply', {
          bankId: 1,
          mediaId,
          frameIdx: f.frame - 1,
          truthMask: path.join(truth, `tour.mp4@${f.frame}.png`),
        });
        expect(f.mean).toBe(shown.iou?.mean);
        expect(f.perClass).toEqual(shown.iou?.perClass);
        const pred = (await readMask(shown.labelFile, 320, 240, { kind: 'ids' }, 256)).labels;
        total.add(
          pred,
          (await readMask(path.join(truth, `tour.mp4@${f.frame}.png`), 320, 240, { kind: 'ids' }, 4)).labels,
        );
        // The exported mask is the view's mask.
        expect(
          (
            await readMask(
              path.join(out, 'masks', `${mediaId}-${String(f.frame).padStart(6, '0')}.png`),
              320,
              240,
              { kind: 'ids' },
              256,
            )
          ).labels,
        ).toEqual(pred);
      }
    });
    expect(iou.mean).toBeCloseTo(total.mean(), 12);
    expect(Object.values(iou.perClass)).toEqual(total.perClass());
    expect(iou.mean).toBeGreaterThan(0.3);
    const coco = JSON.parse(fs.readFileSync(path.join(out, 'coco.json'), 'utf8')) as {
      images: { width: number; height: number; file_name: string }[];
    };
    expect(coco.images).toHaveLength(7);
    expect(coco.images[0]).toMatchObject({ width: 320, height: 240 });
  });

  it('says how it read masks whose values are not the classes: 0/255 binary, and values past the classes', async () => {
    const cat = (await readMask(truthMask(40), 320, 240, { kind: 'ids' }, 256)).labels;
    const binary = path.join(data, 'binary');
    fs.mkdirSync(binary);
    fs.writeFileSync(
      path.join(binary, 'tour.mp4@5.png'),
      encodePng(
        Uint8Array.from(cat, (v) => (v ? 255 : 0)),
        320,
        240,
        6,
        1,
      ),
    );
    const args = ['segment', 'bank', '--examples', binary, '--classes', 'background,object', '--project', project];
    const read = await runCli(args);
    expect(read.code).toBe(0);
    expect(read.stderr).toMatch(
      /warning: The mask .*tour\.mp4@5\.png has only values 0 and 255: 255 was read as the second class \('object'\)/,
    );
    expect(read.stdout).toMatch(/classes background, object/);
    const json = await runCli([...args, '--json']);
    expect(json.json<{ warnings: string[] }>().warnings).toEqual([expect.stringMatching(/only values 0 and 255/)]);
    // Read as class ids, 255 is 'ignore': no warning, but the bank has no foreground patch.
    const ids = await runCli([...args, '--masks', 'ids', '--json']);
    expect(ids.code).toBe(0);
    expect(ids.json<{ warnings: string[] }>().warnings).toEqual([]);
    const bad = await runCli([...args, '--masks', 'palette']);
    expect(bad.code).toBe(2);
    expect(bad.stderr).toMatch(/--masks is one of auto, ids, binary, not palette/);
    // A four-class mask given two class names: values 2 and 3 are not classes of the bank.
    const four = path.join(data, 'four');
    fs.mkdirSync(four);
    fs.copyFileSync(truthMask(40), path.join(four, 'tour.mp4@5.png'));
    const mismatch = await runCli([
      'segment',
      'bank',
      '--examples',
      four,
      '--classes',
      'background,disc',
      '--project',
      project,
    ]);
    expect(mismatch.code).toBe(0);
    expect(mismatch.stderr).toMatch(/warning: The mask .* has values 2, 3 \(.*\) that are not classes of the bank/);
  });

  it('builds an annotation-free bank of pseudo-classes from chosen frames and from whole items', async () => {
    const one = await cli('segment', 'bank', '--cluster', '4', '--from', 'tour.mp4:1', '--from', 'tour.mp4:7');
    expect(one).toMatchObject({ classes: ['cluster 1', 'cluster 2', 'cluster 3', 'cluster 4'] });
    const all = await cli('segment', 'bank', '--cluster', '3', '--from', String(mediaId), '--name', 'whole');
    // Every patch of the 2 frames, and of all 20 frames of the item.
    expect((all.patches as number) / (one.patches as number)).toBe(10);
    const both = await runCli(['segment', 'bank', '--cluster', '3', '--examples', 'x', '--project', project]);
    expect(both.code).toBe(2);
    expect(both.stderr).toMatch(/give --examples DIR, or --cluster K with --from/);
  });

  it("counts from a box with the Count view's number, automatically, and over a video into a CSV", async () => {
    // Frame 5 (source frame 40): box #8 of the truth is a 57x57 box at (139, 159).
    const boxed = await cli('count', 'tour.mp4:5', '--box', '139,159,57,57');
    const auto = await cli('count', `${mediaId}:5`, '--auto');
    await view(async (call) => {
      const shown = await call('count.exemplar', { modelId: 1, mediaId, frameIdx: 4, boxes: [[139, 159, 57, 57]] });
      expect(boxed).toMatchObject({ frame: 5, count: shown.count, threshold: shown.threshold, points: shown.points });
      const autoShown = await call('count.auto', { modelId: 1, mediaId, frameIdx: 4 });
      expect(auto.count).toBe(autoShown.count);
    });
    expect(boxed.count).toBeGreaterThan(0);
    const csv = path.join(work, 'counts.csv');
    const v = await cli(
      'count',
      'video',
      'tour.mp4',
      '--box',
      '139,159,57,57',
      '--frame',
      '5',
      '--every',
      '4',
      '--out',
      csv,
    );
    expect(v.frames).toBe(5);
    const lines = fs.readFileSync(csv, 'utf8').trim().split('\n');
    expect(lines[0]).toBe('media_id,frame,time_s,count');
    expect(lines.slice(1).map((l) => l.split(',')[1])).toEqual(['1', '5', '9', '13', '17']);
  });

  it("tracks objects and writes the Player's MOT export byte for byte, and instance masks", async () => {
    const mot = path.join(work, 'tracks.txt');
    const masks = path.join(work, 'track-masks');
    const r = await cli('track', 'tour.mp4', '--objects', '2', '--seed', '1', '--mot', mot, '--masks', masks);
    expect(r).toMatchObject({ objects: 2, frames: 20 });
    await view(async (call) => {
      const { csv } = await call('track.mot', { runId: r.runId as number });
      // PlayerView downloads downloadCsv(name, [csv]): the one string, joined with nothing.
      expect(fs.readFileSync(mot)).toEqual(Buffer.from([csv].join('\n')));
    });
    expect(fs.readdirSync(masks)).toHaveLength(20);
  });

  it("retrieves similar frames, patches and duplicates as the Retrieve view's commands do", async () => {
    const similar = await cli('retrieve', 'similar', 'tour.mp4:6', '--k', '3');
    const patch = await cli('retrieve', 'patch', 'tour.mp4:6', '--at', '100,120', '--k', '4');
    const dups = await cli('duplicates', '--min', '0', '--limit', '5');
    await view(async (call) => {
      const shown = await call('retrieve.images', { runId, mediaId, frameIdx: 5, k: 3 });
      expect((similar.results as { frameIdx: number; sim: number }[]).map((x) => [x.frameIdx, x.sim])).toEqual(
        shown.results.map((x) => [x.frameIdx, x.sim]),
      );
      // (100, 120) in a 320x240 frame: the Retrieve view's click at (0.3125, 0.5) of the frame; row 7 of 14.
      const shownPatches = await call('retrieve.patches', {
        runId,
        mediaId,
        frameIdx: 5,
        point: [100 / 320, 0.5],
        k: 4,
      });
      expect(patch.query).toMatchObject({ patch: shownPatches.patch, row: 7 });
      expect((patch.results as { sim: number }[]).map((x) => x.sim)).toEqual(shownPatches.results.map((x) => x.sim));
      const shownDups = await call('retrieve.duplicates', { runId, threshold: 0, limit: 5 });
      expect((dups.pairs as { sim: number }[]).map((p) => p.sim)).toEqual(shownDups.pairs.map((p) => p.sim));
    });
  });

  it('maps the frames into a CSV, classifies a labelled folder, and computes FUNGI features', async () => {
    const labelled = path.join(data, 'labelled');
    for (const [cls, frames] of [
      ['start', [0, 10, 20]],
      ['end', [170, 180, 190]],
    ] as const) {
      fs.mkdirSync(path.join(labelled, cls), { recursive: true });
      for (const n of frames) tourFrame(n, path.join(labelled, cls, `${n}.jpg`));
    }
    await cli('add', labelled);
    await cli('features', '--all', '--size', '224');
    const csv = path.join(work, 'map.csv');
    const m = await cli('map', '--method', 'pca', '--out', csv);
    const rows = fs.readFileSync(csv, 'utf8').trim().split('\n');
    expect(rows[0]).toBe('media_id,path,frame,x,y,cluster');
    expect(rows).toHaveLength(1 + (m.points as number));
    expect(m.points).toBe(20 + 6 + 1); // the tour, the labelled frames, the example photo
    const c = await cli('classify', '--train', labelled);
    await view(async (call) => {
      const shown = await call('classify.knn', { runId, root: labelled });
      expect(c).toMatchObject({ accuracy: shown.accuracy, confusion: shown.confusion, classes: shown.classes });
    });
    expect(c.evaluated).toBe(6);
    const f = await cli('fungi', path.join(labelled, 'start', '0.jpg'), '--size', '32');
    expect(f.fungi).toMatchObject({ frames: 1 });
  });

  it('refuses an item that is not in the catalog and a frame past the end, in one sentence', async () => {
    const missing = await runCli(['retrieve', 'similar', 'nowhere.mp4', '--project', project]);
    expect(missing.code).toBe(1);
    expect(missing.stderr).toMatch(/nowhere\.mp4 is not in the catalog/);
    const past = await runCli(['count', 'tour.mp4:21', '--box', '1,1,5,5', '--project', project]);
    expect(past.code).toBe(1);
    expect(past.stderr.trim()).toBe('flaneur: tour.mp4 has frames 1 to 20, not 21.');
    // --size picks the run of that input size; there is none at 448.
    const sized = await runCli(['duplicates', '--size', '448', '--project', project]);
    expect(sized.code).toBe(1);
    expect(sized.stderr).toMatch(/No feature run at 448 px: extract them first/);
    expect((await runCli(['duplicates', '--size', '224', '--project', project])).code).toBe(0);
  });
});
