/**
 * `train.export` / `train.import`: a Flaneur run handed to PyTorch (the exported program, run with Debian's
 * python3-torch) and brought back. Needs a python3 with torch (FLANEUR_PYTHON, else /usr/bin/python3); without one
 * the torch tests are skipped with the reason (CI installs python3-torch, .ci/apt-packages.txt).
 */
import { type ChildProcess, spawn, spawnSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import type { CommandArgs } from '../../../native/api/contract.js';
import { findBinaries } from '../../../native/media/ffmpeg.js';
import { FrameStore } from '../../../native/media/frame-store.js';
import type { MediaRow } from '../../../native/store/media-repo.js';
import { decodePlan } from '../../../native/train/export-run.js';
import { runCli } from '../../helpers/cli.js';
import { fixturePath } from '../../helpers/fixtures.js';
import { TINY_VIT, writeViT } from '../../helpers/models.js';
import { tmpDir } from '../../helpers/tmp.js';
import { torchrunArgs } from '../../helpers/torchrun.js';
import { engineWithFrames, NECO_TINY, TINY_TRAIN } from '../../helpers/train.js';

const PYTHON = process.env.FLANEUR_PYTHON ?? '/usr/bin/python3';
const probe = spawnSync(PYTHON, ['-c', 'import torch, numpy; print(torch.__version__)'], { encoding: 'utf8' });
const TORCH = probe.status === 0 ? probe.stdout.trim() : null;
const SKIP = TORCH
  ? false
  : `no PyTorch: ${PYTHON} cannot import torch and numpy (install python3-torch, or set FLANEUR_PYTHON)`;
if (SKIP) console.warn(`tests/unit/train/export.test.ts: skipping the torch tests: ${SKIP}`);

const RUN = {
  ...TINY_TRAIN,
  steps: 5,
  previewEvery: 0,
  checkpointEvery: 5,
} as const satisfies CommandArgs<'train.start'>;
const DORA = {
  ...RUN,
  batch: 4,
  globalSize: 48,
  dora: { framesPerClip: 2, stride: 3, objects: 2 },
} as const satisfies CommandArgs<'train.start'>;

/** NeCo from scratch, 2 images per step (2 global 32 px crops of 2x2 patches, 2 local 16 px crops), 49 aligned. */
const NECO = {
  ...RUN,
  neco: { ...NECO_TINY, queue: 128 },
} as const satisfies CommandArgs<'train.start'>;

type Engine = Awaited<ReturnType<typeof engineWithFrames>>;

async function runJob(e: Engine, id: number) {
  await e.runner.idle();
  const done = await e.call('jobs.get', { id });
  expect(done.error?.message ?? done.state).toBe('done');
  return done;
}

async function exportRun(e: Engine, run: CommandArgs<'train.start'>): Promise<string> {
  const dir = path.join(tmpDir(), 'export');
  await runJob(e, (await e.call('train.export', { ...run, dir })).id);
  return dir;
}

function python(args: string[], cwd: string, env: Record<string, string> = {}) {
  const r = spawnSync(PYTHON, args, {
    cwd,
    encoding: 'utf8',
    env: { ...process.env, OMP_NUM_THREADS: '1', ...env },
  });
  if (r.status !== 0) throw new Error(`${args.join(' ')} exited ${r.status}:\n${r.stdout}\n${r.stderr}`);
  return r;
}

function metrics(dir: string): { step: number; loss: number; world: number }[] {
  const file = path.join(dir, 'run', 'metrics.jsonl');
  return fs
    .readFileSync(file, 'utf8')
    .split('\n')
    .filter((l) => l.trim())
    .map((l) => JSON.parse(l));
}

function expectRelClose(got: number[], want: number[], tol: number) {
  expect(got).toHaveLength(want.length);
  for (let i = 0; i < want.length; i++) {
    const rel = Math.abs((got[i] as number) - (want[i] as number)) / Math.abs(want[i] as number);
    expect(rel, `step ${i + 1}: ${got[i]} vs ${want[i]}`).toBeLessThan(tol);
  }
}

describe('train.export', () => {
  it('writes a self-contained folder: frames, run.json, starting state, the program and its README', async () => {
    const e = await engineWithFrames('export-layout');
    const dir = await exportRun(e, RUN);
    const cfg = JSON.parse(fs.readFileSync(path.join(dir, 'run.json'), 'utf8'));
    expect(cfg).toMatchObject({ format: 'flaneur-train-export', version: 1, objective: 'dino' });
    expect(cfg.args).toMatchObject({ steps: 5, batch: 2, seed: 7, globalSize: 32 });
    const [src] = cfg.data.sources;
    expect(fs.statSync(path.join(dir, src.file)).size).toBe(src.frames * src.width * src.height * 3);
    expect(src.pts).toHaveLength(src.frames);
    for (const f of ['train.py', 'flaneur_train/rng.py', 'init.safetensors', 'requirements.txt'])
      expect(fs.existsSync(path.join(dir, f)), f).toBe(true);
    const readme = fs.readFileSync(path.join(dir, 'README.md'), 'utf8');
    expect(readme).toContain('torchrun --standalone --nproc_per_node=N train.py --config run.json --resume');
    expect(readme).not.toContain('{{');
    // Another export into the same, now non-empty, folder is refused and leaves it as it was.
    const again = await e.call('train.export', { ...RUN, dir });
    await e.runner.idle();
    const failed = await e.call('jobs.get', { id: again.id });
    expect(failed.state).toBe('failed');
    expect(failed.error?.code).toBe('INVALID_ARGUMENT');
    expect(fs.existsSync(path.join(dir, 'run.json'))).toBe(true);
    // Bringing back a folder that is not an export says what to choose.
    const bad = await e.call('train.import', { path: tmpDir() });
    await e.runner.idle();
    expect((await e.call('jobs.get', { id: bad.id })).error?.code).toBe('NOT_FOUND');
    await e.engine.close();
  });
});

describe('which videos travel as their source (frames: auto)', () => {
  const tour = fixturePath('synthetic', 'tour.mp4');
  const st = fs.statSync(tour);
  const row = (o: Partial<MediaRow>): MediaRow => ({
    id: 3,
    kind: 'video',
    path: tour,
    bytes: st.size,
    mtimeMs: st.mtimeMs,
    contentHash: null,
    status: 'done',
    problem: null,
    probe: { fps: 30 },
    sampling: { policy: 'fps', fps: 2 },
    frameWidth: 640,
    frameHeight: 360,
    frameCount: 10_000,
    addedAt: '',
    updatedAt: '',
    ...o,
  });
  it('decodes a video whose raw frames exceed 512 MiB and its file, copies the rest and images', () => {
    // 10,000 frames of 640x360: 6.9 GB of raw RGB against a video of a few hundred kB.
    expect(decodePlan(row({}), 'auto')).toEqual({
      source: 'sources/3.mp4',
      bytes: st.size,
      vf: 'fps=fps=2:round=near,scale=640:360:flags=bicubic',
      skipFrame: false,
    });
    expect(decodePlan(row({ frameCount: 100 }), 'auto')).toBeNull(); // 69 MB: copied
    expect(decodePlan(row({ frameCount: 100 }), 'decode')).not.toBeNull();
    expect(decodePlan(row({}), 'copy')).toBeNull();
    expect(decodePlan(row({ kind: 'image', sampling: null }), 'decode')).toBeNull();
    expect(decodePlan(row({ sampling: { policy: 'keyframes' } }), 'auto')?.skipFrame).toBe(true);
    // A source that changed since sampling: auto copies the frames, decode refuses with a sentence.
    expect(decodePlan(row({ bytes: st.size + 1 }), 'auto')).toBeNull();
    expect(() => decodePlan(row({ path: '/nonexistent/walk.mp4' }), 'decode')).toThrow(
      /is missing or has changed since its frames were sampled/,
    );
  });
});

describe.skipIf(SKIP)(`the exported PyTorch program (torch ${TORCH})`, () => {
  for (const [objective, run] of [
    ['DINO', RUN],
    ['Dora', DORA],
    ['NeCo', NECO],
  ] as const) {
    it(`gives Flaneur's ${objective} losses on the first 5 steps, within 1e-3 relative (single process)`, async () => {
      const e = await engineWithFrames(`parity-${objective}`);
      const job = await e.call('train.start', run);
      await runJob(e, job.id);
      const flaneur = (await e.call('train.log', { jobId: job.id })).map((r) => r.loss);
      const dir = await exportRun(e, run);
      python(['train.py', '--config', 'run.json'], dir);
      await e.engine.close();
      const torch = metrics(dir).map((r) => r.loss);
      console.log(`${objective} losses: flaneur ${JSON.stringify(flaneur)} torch ${JSON.stringify(torch)}`);
      expectRelClose(torch, flaneur, 1e-3);
    }, 240_000);
  }
});

/**
 * The README's command, run with `python -m torch.distributed.run`. Debian's torch 1.13 under Python 3.11 cannot
 * parse its own default "--redirects 0 --tee 0" (Python 3.11 no longer iterates the zero flag of an enum.IntFlag),
 * so explicit non-zero values are given; torch 2 needs nothing.
 */
function readmeCommand(dir: string, resume: boolean): string[] {
  const readme = fs.readFileSync(path.join(dir, 'README.md'), 'utf8');
  const lines = readme.split('\n').map((l) => l.trim());
  const line = lines.find((l) => l.startsWith('torchrun --standalone') && l.endsWith('--resume') === resume);
  if (!line) throw new Error(`the README has no ${resume ? 'resume ' : ''}command`);
  return torchrunArgs(
    TORCH,
    line
      .split(/\s+/)
      .slice(1)
      .map((a) => (a === '--nproc_per_node=N' ? '--nproc_per_node=2' : a)),
  );
}

function start(args: string[], cwd: string): { child: ChildProcess; exit: Promise<number | null>; log: string[] } {
  const child = spawn(PYTHON, args, { cwd, env: { ...process.env, OMP_NUM_THREADS: '1' } });
  const log: string[] = [];
  child.stdout?.on('data', (d) => log.push(String(d)));
  child.stderr?.on('data', (d) => log.push(String(d)));
  const exit = new Promise<number | null>((resolve) => child.on('exit', (code) => resolve(code)));
  return { child, exit, log };
}

describe.skipIf(SKIP)('a run on torchrun', () => {
  it('trains on 2 CPU processes (gloo), resumes after a killed rank, and comes back as a model that segments a frame', async () => {
    const run = { ...RUN, steps: 40, checkpointEvery: 4 } as const satisfies CommandArgs<'train.start'>;
    const e = await engineWithFrames('torchrun');
    const local = await e.call('train.start', run);
    await runJob(e, local.id);
    const flaneur = (await e.call('train.log', { jobId: local.id })).map((r) => r.loss);
    const dir = await exportRun(e, run);

    // Start on 2 processes; once step 5 is logged (a checkpoint at 4 exists), kill rank 1.
    const first = start(readmeCommand(dir, false), dir);
    const metricsFile = path.join(dir, 'run', 'metrics.jsonl');
    const deadline = Date.now() + 240_000;
    while (!(fs.existsSync(metricsFile) && metrics(dir).some((r) => r.step >= 5))) {
      if (Date.now() > deadline || first.child.exitCode !== null)
        throw new Error(`torchrun stopped before step 5:\n${first.log.join('')}`);
      await new Promise((r) => setTimeout(r, 20));
    }
    process.kill(Number(fs.readFileSync(path.join(dir, 'run', 'rank-1.pid'), 'utf8')), 'SIGKILL');
    expect(await first.exit).not.toBe(0);
    const killed = metrics(dir);
    const lastKilled = killed.at(-1)?.step ?? 0;
    expect(lastKilled).toBeLessThan(run.steps);
    const checkpoints = fs.readdirSync(path.join(dir, 'run', 'checkpoints')).filter((f) => f.endsWith('.json'));
    const resumedFrom = Math.max(...checkpoints.map((f) => Number(f.slice(5, 12))));
    expect(resumedFrom).toBeGreaterThanOrEqual(4);
    // Without --resume the program refuses to start over the checkpoints.
    const refused = spawnSync(PYTHON, readmeCommand(dir, false), { cwd: dir, encoding: 'utf8' });
    expect(refused.status).not.toBe(0);
    expect(refused.stdout + refused.stderr).toContain('--resume');

    // The README's resume command continues from the last checkpoint to the end.
    const second = start(readmeCommand(dir, true), dir);
    expect(await second.exit, second.log.join('')).toBe(0);
    const log = metrics(dir);
    expect(log.map((r) => r.step)).toEqual(Array.from({ length: run.steps }, (_, i) => i + 1));
    expect(log.every((r) => r.world === 2)).toBe(true);
    // Steps up to the checkpoint are kept; the steps redone after it give the killed run's losses again.
    for (const r of killed) {
      const again = log[r.step - 1] as { loss: number };
      if (r.step <= resumedFrom) expect(again.loss).toBe(r.loss);
      else expect(Math.abs(again.loss - r.loss) / r.loss).toBeLessThan(1e-6);
    }
    // Two processes train the same run as Flaneur's single process (checked on the first 5 steps).
    expectRelClose(
      log.slice(0, 5).map((r) => r.loss),
      flaneur.slice(0, 5),
      1e-3,
    );
    expect(fs.existsSync(path.join(dir, 'run', 'encoder.safetensors'))).toBe(true);

    // Bring it back: a model with its provenance, and the run's curves as a training log.
    const imported = await e.call('train.import', { path: dir });
    await runJob(e, imported.id);
    await new Promise((r) => setTimeout(r, 300));
    const model = (await e.call('models.list', {})).find((m) => m.provenance?.trainedBy);
    expect(model?.provenance).toMatchObject({ steps: 40, processes: 2, device: 'cpu', objective: 'dino' });
    expect(model?.provenance?.wallSeconds).toBeGreaterThan(0);
    const curves = await e.call('train.log', { jobId: imported.id });
    expect(curves.map((r) => r.loss)).toEqual(log.map((r) => r.loss));

    // Segment a frame with it: features, an annotation-free bank, a frame's labels.
    const id = model?.id as number;
    await runJob(e, (await e.call('features.extract', { modelId: id, size: 32 })).id);
    const runId = (await e.call('features.runs', {})).find((r) => r.modelId === id)?.id as number;
    const mediaId = (await e.call('library.list', { limit: 10 })).items[0]?.id as number;
    const bank = await e.call('segment.clusterBank', {
      runId,
      name: 'imported',
      clusters: 3,
      frames: [0, 4, 8].map((frameIdx) => ({ mediaId, frameIdx })),
    });
    const seg = await e.call('segment.apply', { bankId: bank.id, mediaId, frameIdx: 2 });
    expect(seg.pixels.reduce((a, b) => a + b, 0)).toBe(seg.width * seg.height);
    await e.engine.close();
  }, 480_000);
});

/** A tiny DINOv2-style ViT (4 registers, layer scale 0.5) as a file the registry imports: NeCo's usual kind of base. */
function dinov2StyleModel(): string {
  const vit = { ...TINY_VIT, registers: 4, layerScale: true };
  return writeViT(path.join(tmpDir(), 'tiny-dinov2.safetensors'), vit, 3, (w) => {
    for (const [k, v] of w) if (k.endsWith('.gamma')) v.fill(0.5);
  });
}

describe.skipIf(SKIP)('NeCo from a registered DINOv2-style model', () => {
  it("gives Flaneur's losses on the first 5 steps (registers left out of the patches, layer scale), single process", async () => {
    const e = await engineWithFrames('neco-dinov2');
    const base = await e.call('models.import', { path: dinov2StyleModel(), name: 'tiny dinov2' });
    const run = { ...NECO, init: { kind: 'model', id: base.id } } as const satisfies CommandArgs<'train.start'>;
    const job = await e.call('train.start', run);
    await runJob(e, job.id);
    const flaneur = (await e.call('train.log', { jobId: job.id })).map((r) => r.loss);
    const dir = await exportRun(e, run);
    const cfg = JSON.parse(fs.readFileSync(path.join(dir, 'run.json'), 'utf8'));
    expect(cfg.vit).toMatchObject({ registers: 4, layerScale: true });
    python(['train.py', '--config', 'run.json'], dir);
    await e.engine.close();
    const torch = metrics(dir).map((r) => r.loss);
    console.log(`NeCo (DINOv2-style base) losses: flaneur ${JSON.stringify(flaneur)} torch ${JSON.stringify(torch)}`);
    expectRelClose(torch, flaneur, 1e-3);
  }, 240_000);
});

describe.skipIf(SKIP)('NeCo on torchrun', () => {
  it("trains on 2 processes, stops, resumes with the queue from the checkpoint, and keeps Flaneur's losses", async () => {
    const run = { ...NECO, checkpointEvery: 2 } as const satisfies CommandArgs<'train.start'>;
    const e = await engineWithFrames('neco-torchrun');
    const local = await e.call('train.start', run);
    await runJob(e, local.id);
    const flaneur = (await e.call('train.log', { jobId: local.id })).map((r) => r.loss);
    const dir = await exportRun(e, run);
    // 2 processes (one image each; teacher patches gathered for the queue) up to step 3, then the README's resume.
    const first = start([...readmeCommand(dir, false), '--stop-at', '3'], dir);
    expect(await first.exit, first.log.join('')).toBe(0);
    const ck = JSON.parse(fs.readFileSync(path.join(dir, 'run', 'checkpoints', 'step-0000003.json'), 'utf8'));
    expect(ck.counters.queueEntries).toBe(24);
    const second = start(readmeCommand(dir, true), dir);
    expect(await second.exit, second.log.join('')).toBe(0);
    const log = metrics(dir);
    expect(log.map((r) => [r.step, r.world])).toEqual([1, 2, 3, 4, 5].map((s) => [s, 2]));
    console.log(
      `NeCo 2 processes: flaneur ${JSON.stringify(flaneur)} torchrun ${JSON.stringify(log.map((r) => r.loss))}`,
    );
    expectRelClose(
      log.map((r) => r.loss),
      flaneur,
      1e-3,
    );
    // The student's backbone comes back as a NeCo model.
    const imported = await e.call('train.import', { path: dir });
    await runJob(e, imported.id);
    await new Promise((r) => setTimeout(r, 300));
    const model = (await e.call('models.list', {})).find((m) => m.provenance?.trainedBy);
    expect(model?.provenance).toMatchObject({ steps: 5, processes: 2, objective: 'neco' });
    expect(model?.origin).toMatch(/^NeCo run trained with torchrun: 5 of 5 steps on 2× cpu/);
    await e.engine.close();
  }, 480_000);
});

describe.skipIf(SKIP)('a video exported with its source (frames: decode)', () => {
  it("is decoded there with ffmpeg at the recorded timestamps: Flaneur's frames, and Flaneur's losses", async () => {
    const e = await engineWithFrames('decode');
    const local = await e.call('train.start', RUN);
    await runJob(e, local.id);
    const flaneur = (await e.call('train.log', { jobId: local.id })).map((r) => r.loss);
    const dir = path.join(tmpDir(), 'export');
    await runJob(e, (await e.call('train.export', { ...RUN, dir, frames: 'decode' })).id);
    const cfg = JSON.parse(fs.readFileSync(path.join(dir, 'run.json'), 'utf8'));
    const [src] = cfg.data.sources;
    // The source file and the index (timestamps, the filters Flaneur decoded with), no copied frames.
    expect(src.decode).toEqual({
      source: `sources/${src.media}.mp4`,
      bytes: fs.statSync(fixturePath('synthetic', 'tour.mp4')).size,
      vf: `fps=fps=2:round=near,scale=${src.width}:${src.height}:flags=bicubic`,
      skipFrame: false,
    });
    expect(fs.existsSync(path.join(dir, src.file))).toBe(false);
    expect(fs.readFileSync(path.join(dir, src.decode.source))).toEqual(
      fs.readFileSync(fixturePath('synthetic', 'tour.mp4')),
    );
    // Without frames and without ffmpeg the program says what is missing.
    const noFfmpeg = spawnSync(PYTHON, ['train.py', '--config', 'run.json', '--ffmpeg', '/nonexistent/ffmpeg'], {
      cwd: dir,
      encoding: 'utf8',
    });
    expect(noFfmpeg.status).not.toBe(0);
    expect(noFfmpeg.stderr).toContain('cannot run ffmpeg (/nonexistent/ffmpeg)');

    const ffmpeg = findBinaries().ffmpeg.path;
    python(['train.py', '--config', 'run.json', '--decode-only', '--ffmpeg', ffmpeg], dir);
    const decoded = fs.readFileSync(path.join(dir, src.file));
    const store = new FrameStore(e.engine.requireProject().project.cacheDir);
    const cached = fs.readFileSync(store.file(src.media)).subarray(0, src.frames * src.width * src.height * 3);
    expect(decoded.length).toBe(cached.length);
    let maxDiff = 0;
    let differing = 0;
    for (let i = 0; i < cached.length; i++) {
      const d = Math.abs((decoded[i] as number) - (cached[i] as number));
      if (d > 0) differing++;
      if (d > maxDiff) maxDiff = d;
    }
    console.log(
      `decoded there vs Flaneur's frames: ${src.frames} frames, max |diff| ${maxDiff}, ${differing} bytes differ`,
    );
    // The same ffmpeg build with the same filters gives the same bytes (another build may differ by swscale rounding).
    expect(maxDiff).toBe(0);
    // Training on the decoded frames gives Flaneur's losses; a second start finds the frames ready.
    const trained = python(['train.py', '--config', 'run.json', '--ffmpeg', ffmpeg], dir);
    expect(trained.stdout).not.toContain('decoding');
    expectRelClose(
      metrics(dir).map((r) => r.loss),
      flaneur,
      1e-3,
    );
    await e.engine.close();
  }, 240_000);
});

describe.skipIf(SKIP)('flaneur train export / train import', () => {
  it('exports from the command line, runs, and brings the run back as a model', async () => {
    process.env.FLANEUR_HOME = tmpDir();
    const project = path.join(tmpDir(), 'p');
    const dir = path.join(tmpDir(), 'cluster');
    const p = ['--project', project];
    expect((await runCli(['project', 'create', project])).code).toBe(0);
    const added = await runCli(['add', fixturePath('synthetic', 'tour.mp4'), '--fps', '1', '--size', '48', ...p]);
    expect(added.code, added.stderr).toBe(0);
    const exported = await runCli(['train', 'export', dir, '--preset', 'tiny', '--steps', '2', '--batch', '2', ...p]);
    expect(exported.code, exported.stderr).toBe(0);
    expect(exported.stdout).toContain('torchrun --standalone --nproc_per_node=N train.py --config run.json');
    // Nothing trained yet: the import says what to do.
    const early = await runCli(['train', 'import', dir, ...p]);
    expect(early.code).toBe(1);
    expect(early.stderr).toContain('no checkpoint yet');
    python(['train.py', '--config', 'run.json'], dir);
    const back = await runCli(['train', 'import', dir, '--json', ...p]);
    expect(back.code, back.stderr).toBe(0);
    const { model } = back.json<{ model: { name: string; origin: string; provenance: { steps: number } } }>();
    expect(model.provenance.steps).toBe(2);
    expect(model.origin).toMatch(/^DINO run trained with torchrun: 2 of 2 steps on 1× cpu in \d+ s/);
  }, 240_000);
});
