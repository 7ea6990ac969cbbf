/**
 * The CLI as a researcher scripts it in the second hour (issue 26, items 8-13), each step the exact command line a
 * user types (the project comes from FLANEUR_PROJECT): version and progress, device reasons, the first `npx`
 * (the prepare step), coordinates in the source file's pixels, mask names and scoring, larger input sizes decoded
 * from the source, copies resolved by content, paging, the default model, training that waits for its model.
 */
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, beforeEach, describe, expect, it, vi } from 'vitest';
import { formatProgress } from '../../../native/cli/session.js';
import type { Engine } from '../../../native/engine/engine.js';
import { encodePng } from '../../../native/media/png.js';
import { IoUMeter } from '../../../native/segment/labels.js';
import { readMask } from '../../../native/segment/masks.js';
import { runCli } from '../../helpers/cli.js';
import { type EngineCall, withProjectEngine } from '../../helpers/dispatch.js';
import { ROOT } from '../../helpers/engine-process.js';
import { makeImage } from '../../helpers/media.js';
import { writeInitViT } from '../../helpers/models.js';
import { tmpDir } from '../../helpers/tmp.js';

/** `flaneur …` as typed (no quoting needed: the test's paths have no spaces). */
const flaneur = (line: string) => runCli(line.replace(/^flaneur /, '').split(/\s+/));

/** A binary 0/255 mask: the left `fraction` of the picture is foreground. */
function binaryMask(file: string, width: number, height: number, fraction = 0.5): string {
  const px = new Uint8Array(width * height);
  for (let y = 0; y < height; y++) for (let x = 0; x < width * fraction; x++) px[y * width + x] = 255;
  fs.writeFileSync(file, encodePng(px, width, height, 6, 1));
  return file;
}

// Real models on 2 shared cores: minutes under load.
describe('the CLI in the second hour (issue 26)', { timeout: 240_000 }, () => {
  const home = tmpDir();
  const work = tmpDir();
  const project = path.join(work, 'project');
  const data = path.join(work, 'data');
  const street = path.join(data, 'street.jpg'); // 412x188, stored at 490x224
  const big = path.join(data, 'big.jpg'); // 900x600, stored at 336x224
  let streetId = 0;
  let stored = { width: 0, height: 0 };

  const ok = async (line: string) => {
    const r = await flaneur(line);
    if (r.code !== 0) throw new Error(`${line} exited ${r.code}: ${r.stderr}`);
    return r;
  };

  /** The app's engine on the same project, for the commands the views call. */
  const view = <T>(fn: (call: EngineCall, engine: Engine) => Promise<T>, dir = project) => withProjectEngine(dir, fn);

  beforeAll(async () => {
    process.env.FLANEUR_HOME = home;
    process.env.FLANEUR_PROJECT = project;
    fs.mkdirSync(data, { recursive: true });
    makeImage(street, 'testsrc2=size=412x188');
    makeImage(big, 'mandelbrot=size=900x600');
    // Its own models are #1 and #2 (the default-model case): no starter model.
    await ok(`flaneur project create ${project} --no-starter-model`);
    await ok(`flaneur add ${street} ${big}`);
    await ok(`flaneur model import ${writeInitViT(path.join(work, 'vit.safetensors'))}`);
    await ok('flaneur features --all');
    const lib = (await ok('flaneur library --json')).json<{
      items: { id: number; name: string; frameWidth: number; frameHeight: number }[];
    }>();
    const s = lib.items.find((m) => m.name === 'street.jpg');
    streetId = s?.id ?? 0;
    stored = { width: s?.frameWidth ?? 0, height: s?.frameHeight ?? 0 };
    expect(stored).toEqual({ width: 490, height: 224 });
  }, 300_000);

  beforeEach(() => {
    process.env.FLANEUR_HOME = home;
    process.env.FLANEUR_PROJECT = project;
  });

  afterAll(() => {
    delete process.env.FLANEUR_HOME;
    delete process.env.FLANEUR_PROJECT;
  });

  describe('8: version, progress, device, the first npx', () => {
    it('prints the version and exits 0: flaneur --version', async () => {
      const r = await flaneur('flaneur --version');
      expect(r.code).toBe(0);
      const pkg = JSON.parse(fs.readFileSync(path.join(ROOT, 'package.json'), 'utf8')) as { version: string };
      expect(r.stdout).toBe(`flaneur ${pkg.version}`);
    });

    it('prints progress in whole numbers and readable byte units', async () => {
      expect(formatProgress({ phase: 'ingesting', done: 1294403.1886792453, total: 3335442, unit: 'bytes' })).toBe(
        'ingesting 1.2 MiB of 3.2 MiB',
      );
      expect(formatProgress({ phase: 'extracting', done: 12.5, total: 40, unit: 'frames' })).toBe(
        'extracting 12/40 frames',
      );
      // What `flaneur add` printed on stderr while ingesting: no fractions anywhere.
      const copy = path.join(data, 'progress');
      fs.mkdirSync(copy);
      makeImage(path.join(copy, 'p.png'), 'testsrc2=size=64x48');
      const r = await ok(`flaneur add ${copy}`);
      expect(r.stderr).not.toMatch(/\d\.\d{3,}/);
    });

    it("explains ONNX Runtime's reasons as the Device view does: flaneur device", async () => {
      const raw = (await ok('flaneur device --json')).json<{
        providers: { name: string; reason: string | null; explained: string | null }[];
      }>();
      const human = (await ok('flaneur device')).stdout;
      for (const p of raw.providers.filter((x) => x.reason)) {
        expect(p.explained).toBeTruthy();
        expect(human).toContain(p.explained as string);
        expect(p.explained).not.toMatch(/Ort[A-Z]\w+|\.cc:\d+|ERR: \[/);
      }
      // CUDA without its provider library: what to install, not the entry point that failed.
      const cuda = raw.providers.find((p) => p.name === 'cuda');
      if (cuda?.reason && /shared library/.test(cuda.reason)) expect(cuda.explained).toMatch(/npm run gpu:cuda/);
    });

    it('prepares (the first npx) without rebuilding a build newer than its sources', () => {
      // A copy of the prepare script in a folder shaped like the repository, whose "build" writes a marker.
      const repo = path.join(work, 'repo');
      for (const d of ['tools', 'native', 'build/native', 'build/electron', 'build/renderer'])
        fs.mkdirSync(path.join(repo, d), { recursive: true });
      fs.copyFileSync(path.join(ROOT, 'tools', 'build-if-stale.mjs'), path.join(repo, 'tools', 'build-if-stale.mjs'));
      fs.writeFileSync(
        path.join(repo, 'package.json'),
        JSON.stringify({ name: 'x', scripts: { build: "node -e \"require('fs').writeFileSync('built', '1')\"" } }),
      );
      fs.writeFileSync(path.join(repo, 'native', 'a.ts'), 'export {};');
      const past = new Date(Date.now() - 60_000);
      fs.utimesSync(path.join(repo, 'native', 'a.ts'), past, past);
      fs.utimesSync(path.join(repo, 'package.json'), past, past);
      for (const o of ['build/native/cli-main.js', 'build/electron/main.js', 'build/renderer/index.html'])
        fs.writeFileSync(path.join(repo, o), '');
      const prepare = () =>
        spawnSync(process.execPath, [path.join(repo, 'tools', 'build-if-stale.mjs')], { cwd: repo, encoding: 'utf8' });
      const fresh = prepare();
      expect(fresh.status).toBe(0);
      expect(fresh.stderr).toMatch(/the build is up to date/);
      expect(fs.existsSync(path.join(repo, 'built'))).toBe(false);
      // A source changed after the build: built again.
      fs.writeFileSync(path.join(repo, 'native', 'a.ts'), 'export const a = 1;');
      const future = new Date(Date.now() + 60_000);
      fs.utimesSync(path.join(repo, 'native', 'a.ts'), future, future);
      expect(prepare().status).toBe(0);
      expect(fs.existsSync(path.join(repo, 'built'))).toBe(true);
    });
  });

  describe("9: boxes and points in the source file's pixels", () => {
    it('counts from a box in source pixels as the Count view does with the box converted exactly', async () => {
      const r = (await ok(`flaneur count ${street} --box 100,50,40,40 --json`)).json<{
        count: number;
        pixels: string;
        width: number;
        height: number;
        points: { x: number; y: number; score: number }[];
      }>();
      expect(r).toMatchObject({ pixels: 'source', width: 412, height: 188 });
      const fx = stored.width / 412;
      const fy = stored.height / 188;
      const shown = await view((call) =>
        call('count.exemplar', {
          modelId: 1,
          mediaId: streetId,
          frameIdx: 0,
          boxes: [[100 * fx, 50 * fy, 40 * fx, 40 * fy]],
        }),
      );
      expect(r.count).toBe(shown.count);
      expect(r.points).toEqual(shown.points.map((p) => ({ ...p, x: p.x / fx, y: p.y / fy })));
      // The same box in stored-frame pixels, on request.
      const same = (
        await ok(`flaneur count ${street} --stored-pixels --box ${100 * fx},${50 * fy},${40 * fx},${40 * fy} --json`)
      ).json<{ count: number; pixels: string }>();
      expect(same).toMatchObject({ count: shown.count, pixels: 'stored' });
    });

    it('refuses a box outside the source with a sentence: flaneur count street.jpg --box 400,100,40,40', async () => {
      // 400+40 fits the 490-pixel stored frame, not the 412-pixel image.
      const r = await flaneur(`flaneur count ${street} --box 400,100,40,40`);
      expect(r.code).toBe(1);
      expect(r.stderr.trim()).toBe(
        'flaneur: The box 400,100,40,40 is not inside street.jpg (412x188 source pixels; --stored-pixels for the 490x224 stored frame).',
      );
    });

    it('finds the patch at a point in source pixels: flaneur retrieve patch street.jpg:1 --at 309,47', async () => {
      const r = (await ok(`flaneur retrieve patch ${street}:1 --at 309,47 --json`)).json<{
        query: { patch: number };
      }>();
      const runId = (await view((call) => call('features.runs', {})))[0]?.id ?? 0;
      const shown = await view((call) =>
        call('retrieve.patches', { runId, mediaId: streetId, frameIdx: 0, point: [309 / 412, 47 / 188] }),
      );
      expect(r.query.patch).toBe(shown.patch);
    });
  });

  describe('10 and 12: masks named like their images, copies resolved by content', () => {
    it('builds a bank of binary masks without class names, saying the 0/255 reading once', async () => {
      const ex = path.join(data, 'examples');
      fs.mkdirSync(ex);
      // street.jpg and big.jpg copied beside their masks: the catalog's items by content.
      fs.copyFileSync(street, path.join(ex, 'street.jpg'));
      fs.copyFileSync(big, path.join(ex, 'big.jpg'));
      binaryMask(path.join(ex, 'street.png'), 412, 188);
      binaryMask(path.join(ex, 'big.png'), 900, 600, 0.3);
      const r = await ok(`flaneur segment bank --examples ${ex} --name binary`);
      expect(r.stdout).toMatch(/bank #1 "binary" .* classes background, foreground/);
      expect(r.stderr).toMatch(/classes: background, foreground \(binary masks/);
      const warnings = r.stderr.split('\n').filter((l) => l.startsWith('warning:'));
      expect(warnings).toHaveLength(1);
      expect(warnings[0]).toMatch(/only values 0 and 255.*\(the same for 1 other mask\(s\)\)/);
      // No item was added for the copies: they are street.jpg and big.jpg.
      expect(r.stderr).toMatch(/street\.jpg has the same content as #\d+ .*street\.jpg: using that item/);
      const lib = (await ok('flaneur library --json')).json<{ total: number }>();
      expect(lib.total).toBe(3);
    });

    it('scores truth masks named name.png beside name.jpg at the source resolution', async () => {
      const truth = path.join(data, 'truth');
      fs.mkdirSync(truth);
      fs.copyFileSync(street, path.join(truth, 'street.jpg'));
      binaryMask(path.join(truth, 'street.png'), 412, 188, 0.4);
      const out = path.join(work, 'segmented');
      const line = `flaneur segment apply --bank 1 ${street} --out ${out} --truth ${truth}`;
      const r = (await ok(`${line} --json`)).json<{
        iou: { resolution: string; mean: number; frames: { size: [number, number]; mean: number }[] };
      }>();
      expect(r.iou.resolution).toBe('source');
      expect(r.iou.frames.map((f) => f.size)).toEqual([[412, 188]]);
      const pred = await readMask(path.join(out, 'masks', `${streetId}-000001.png`), 412, 188, { kind: 'ids' }, 256);
      const want = await readMask(path.join(truth, 'street.png'), 412, 188, { kind: 'binary' }, 2);
      const meter = new IoUMeter(2);
      meter.add(pred.labels, want.labels);
      expect(r.iou.mean).toBeCloseTo(meter.mean(), 12);
      const human = await ok(line);
      expect(human.stdout).toMatch(/\(1 frame\(s\) segmented, 1 scored\)/);
      expect(human.stdout).toMatch(
        /IoU over 1 frame\(s\) with truth \(pixels summed\), at the source files' own resolution/,
      );
    });

    it('says which item a skipped duplicate duplicates, lists it in library --problems, and resolves it', async () => {
      const copy = path.join(data, 'copy.jpg');
      fs.copyFileSync(street, copy);
      const added = await ok(`flaneur add ${copy}`);
      expect(added.stdout).toContain(`skipped ${copy}: a duplicate of #${streetId} street.jpg (same content)`);
      const problems = await ok('flaneur library --problems');
      expect(problems.stdout).toContain(`duplicate\t${copy}\tsame content as #${streetId} street.jpg (skipped)`);
      const counted = await ok(`flaneur count ${copy} --box 100,50,40,40 --json`);
      expect(counted.json<{ mediaId: number }>().mediaId).toBe(streetId);
      expect(counted.stderr).toContain(`${copy} has the same content as #${streetId}`);
    });
  });

  describe('11: a larger input size than the stored frames', () => {
    it('decodes from the source at that size: flaneur features big.jpg --size 448', async () => {
      const r = await ok(`flaneur features ${big} --size 448 --json`);
      // 900x600 stored at 336x224: the model's 448 input (672x448) decoded from the file itself.
      expect(r.stderr).toMatch(/#\d+ big.jpg: decoded from the source at 672x448 \(stored frames are 336x224\)/);
      expect(r.json<{ notes: string[] }>().notes).toHaveLength(1);
    });

    it('computes the example images of segment bank --size 448 from the source', async () => {
      const ex = path.join(data, 'examples-448');
      fs.mkdirSync(ex);
      makeImage(path.join(ex, 'new.jpg'), 'mandelbrot=size=640x480');
      binaryMask(path.join(ex, 'new.png'), 640, 480);
      const r = await ok(`flaneur segment bank --examples ${ex} --size 448`);
      // Its features at 448 are computed for the bank from the file itself, not from the 298x224 stored frame.
      expect(r.stderr).toMatch(/Frame 1 of new.jpg: decoded from the source at 592x448 \(stored frames are 298x224\)/);
      expect(r.stdout).toMatch(/classes background, foreground/);
    });
  });

  describe('13: paging, feature runs, the default model, training', () => {
    it('lists every item past 1,000 and pages on request: flaneur library --limit 10 --offset 1000', async () => {
      const many = path.join(work, 'many');
      await ok(`flaneur project create ${many}`);
      await view(async (_call, engine) => {
        const media = engine.requireProject().project.media;
        for (let i = 0; i < 1005; i++)
          media.upsert({ path: path.join(data, `x${i}.jpg`), bytes: 1, mtimeMs: 0, contentHash: null });
      }, many);
      process.env.FLANEUR_PROJECT = many;
      const all = (await ok('flaneur library --json')).json<{ total: number; items: unknown[] }>();
      expect(all.total).toBe(1005);
      expect(all.items).toHaveLength(1005);
      const page = await ok('flaneur library --limit 10 --offset 1000');
      expect(page.stdout).toContain('items 1001 to 1005 of 1005');
      expect(page.stdout.split('\n').filter((l) => l.startsWith('#'))).toHaveLength(5);
    });

    it('tells an aspect-kept run from a square one, naming the policy one way: flaneur features runs', async () => {
      await ok('flaneur features --all --square');
      const runs = (await ok('flaneur features runs --json')).json<
        { resize: string; preprocessing: { resize: string } }[]
      >();
      expect(runs.map((r) => r.resize).sort()).toEqual(['aspect', 'aspect', 'square']);
      for (const r of runs) expect(r.preprocessing.resize).toBe(r.resize);
      const human = (await ok('flaneur features runs')).stdout;
      expect(human).toMatch(/224 px, aspect kept \(shorter side 14 patches\)/);
      expect(human).toMatch(/224 px, square \(grid 14x14\)/);
    });

    it('uses the project default model without --model, says which, and lets it be set: flaneur model default 1', async () => {
      await ok(`flaneur model import ${writeInitViT(path.join(work, 'vit2.safetensors'), 2)} --name second`);
      const newest = await ok(`flaneur count ${street} --box 100,50,40,40`);
      expect(newest.stderr).toMatch(/model #2 second \(the project's default: the newest;/);
      expect((await ok('flaneur model list')).stdout).toMatch(/^\*#2\tsecond/m);
      expect((await ok('flaneur model default 1')).stdout).toMatch(/^default model: #1 vit$/);
      const chosen = await ok(`flaneur count ${street} --box 100,50,40,40`);
      expect(chosen.stderr).toMatch(/model #1 vit \(the project's default;/);
      const given = await ok(`flaneur count ${street} --box 100,50,40,40 --model 2`);
      expect(given.stderr).toMatch(/model #2 second \(--model\)/);
      // Without --run: the default model's latest run, named.
      const similar = await ok(`flaneur retrieve similar ${street}`);
      expect(similar.stderr).toMatch(/feature run #\d+: model #1 vit, 224 px/);
      expect((await ok('flaneur model default --clear')).stdout).toMatch(/#2 second \(the newest; none chosen\)/);
    });

    it('prints done only once its model is registered: flaneur train --preset tiny --steps 2 --batch 2', async () => {
      const r = (await ok('flaneur train --preset tiny --steps 2 --batch 2 --json')).json<{
        state: string;
        model: { id: number; name: string };
        isDefault: boolean;
      }>();
      expect(r.state).toBe('done');
      expect(r.isDefault).toBe(true);
      const models = (await ok('flaneur model list --json')).json<{ id: number; name: string }[]>();
      expect(models.map((m) => m.id)).toContain(r.model.id);
      // Importing the exported encoder again: the model that is there, said so.
      const encoder = fs
        .readdirSync(path.join(project, 'checkpoints'))
        .map((d) => path.join(project, 'checkpoints', d, 'export', 'encoder.safetensors'))
        .find((f) => fs.existsSync(f)) as string;
      const again = await ok(`flaneur model import ${encoder}`);
      expect(again.stdout).toMatch(new RegExp(`^already in the project \\(same SHA-256\\): #${r.model.id} `));
    });

    it('answers an import that races a registration of the same weights with that model, never a UNIQUE error', async () => {
      const file = writeInitViT(path.join(work, 'vit3.safetensors'), 3);
      await view(async (call, engine) => {
        const first = await call('models.import', { path: file });
        // The race: this import looked the hash up before the other registration (a training job's export, in the
        // process that ran it) inserted its row.
        vi.spyOn(engine.requireProject().project.models, 'bySha').mockReturnValueOnce(undefined);
        const second = await call('models.import', { path: file });
        expect(second.id).toBe(first.id);
      });
    });
  });
});
