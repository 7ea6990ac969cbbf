/**
 * ShareLock as an objective of the one trainer (`train.sharelock`), end to end on Fashion-MNIST (tests/fixtures/fashion,
 * 300 images in 10 class folders) with a ViT-Ti/16 at initialisation and the tiny random Llama: the head is trained
 * on the prompts of 5 seen classes, registered, and the 5 unseen classes are named by text alone (zero-shot).
 * The accuracy is reported, not asserted: with a random LLM and an untrained vision encoder the features mean
 * nothing, so only the mechanics are checked here; quality needs a real LLM and vision encoder (not offline here).
 */
import fs from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { CommandArgs, TextModelInfo } from '../../../native/api/contract.js';
import { l2normalizeRows } from '../../../native/features/knn.js';
import { readSafetensors } from '../../../native/models/safetensors.js';
import { ModelSession, ort } from '../../../native/runtime/session.js';
import { readShareLockHead } from '../../../native/text/head-file.js';
import { buildTextProjector } from '../../../native/text/sharelock.js';
import { pendingRegistration } from '../../../native/train/checkpoint.js';
import { classPrompt, labelledClass } from '../../../native/train/sharelock-data.js';
import { dispatchEngine } from '../../helpers/dispatch.js';
import { fixturePath } from '../../helpers/fixtures.js';
import { fashionShareLockProject } from '../../helpers/text-head.js';
import { tmpDir } from '../../helpers/tmp.js';
import { cancelThenResume, exportedMetadata } from '../../helpers/train.js';

const ROOT = fixturePath('fashion', 'train');
const UNSEEN = ['bag', 'coat', 'sandal', 'shirt', 'trouser'];
const runtime = { provider: 'cpu' as const, threads: 1 };

describe('ShareLock training objective', () => {
  const work = tmpDir('flaneur-sharelock-train-');
  const { engine, call } = dispatchEngine();
  const idle = () => engine.requireProject().runner.idle();
  let runId = 0;
  let llm: TextModelInfo;
  let visionSha = '';
  afterAll(() => engine.close());

  beforeAll(async () => {
    const p = await fashionShareLockProject({ engine, call }, work);
    ({ runId, llm } = p);
    visionSha = p.vision.sha256;
  }, 300_000);

  const args = (o: Partial<CommandArgs<'train.sharelock'>> = {}): CommandArgs<'train.sharelock'> => ({
    textModel: llm.id,
    runId,
    classes: { root: ROOT, unseen: UNSEEN },
    steps: 30,
    batch: 64,
    hidden: 32,
    layers: 2,
    lr: 1e-2,
    warmupSteps: 3,
    checkpointEvery: 10,
    seed: 3,
    ...o,
  });

  it('trains on the seen classes only, registers the head, and names the unseen classes by text', async () => {
    const job = await call('train.sharelock', args());
    await idle();
    const done = await call('jobs.get', { id: job.id });
    expect(done.error?.message ?? done.state).toBe('done');
    const items = (await call('jobs.items', { id: job.id })).items;
    const data = items.find((i) => i.key === 'data')?.result as { seen: string[]; unseen: string[]; pairs: number };
    expect(data.unseen).toEqual(UNSEEN);
    expect(data.seen).toEqual(['ankle_boot', 'dress', 'pullover', 'sneaker', 'tshirt_top']);
    expect(data.pairs).toBe(150); // 30 images of each seen class, none of the unseen
    const log = await call('train.log', { jobId: job.id });
    expect(log.map((r) => r.step)).toEqual(Array.from({ length: 30 }, (_, i) => i + 1));
    for (const r of log) expect(Number.isFinite(r.loss)).toBe(true);

    await engine.modelsRegistered();
    const head = (await call('text.models.list', {})).find((m) => m.kind === 'sharelock-head');
    expect(head?.head?.textModel.key).toBe(llm.key);
    expect(head?.head?.vision.sha256).toBe(visionSha);
    expect(head?.head?.config).toMatchObject({ textDim: 32, visionDim: 192, hidden: 32, layers: 2 });
    expect(head?.origin).toMatch(/5 seen classes \(ankle_boot, .*held out: bag, coat, sandal, shirt, trouser\)/);

    // Zero-shot on the unseen classes: their prompts through the trained head, each image to its nearest prompt.
    const project = engine.requireProject().project;
    const file = path.join(project.dir, head?.file as string);
    const { weights } = readShareLockHead(readSafetensors(file), 'head');
    const prompts = UNSEEN.map((c) => classPrompt('a photo of a {}', c));
    const feats = await call('text.features', { model: llm.id, texts: prompts });
    const session = await ModelSession.create(buildTextProjector(weights.config, weights.tensors), runtime);
    const out = await session.run({
      text: new ort.Tensor('float32', Float32Array.from(feats.features.flat()), [prompts.length, 32]),
    });
    await session.release();
    const classEmb = out.embedding?.data as Float32Array;
    let correct = 0;
    let total = 0;
    for (const r of project.features.allCls(runId)) {
      const truth = UNSEEN.indexOf(labelledClass(ROOT, project.media.get(r.mediaId)?.path ?? '') ?? '');
      if (truth < 0) continue;
      const img = l2normalizeRows(r.cls.slice(), 192);
      let best = -1;
      let bestSim = Number.NEGATIVE_INFINITY;
      for (let c = 0; c < UNSEEN.length; c++) {
        let s = 0;
        for (let k = 0; k < 192; k++) s += (img[k] as number) * (classEmb[c * 192 + k] as number);
        if (s > bestSim) [best, bestSim] = [c, s];
      }
      total++;
      if (best === truth) correct++;
    }
    expect(total).toBe(150);
    const accuracy = correct / total;
    console.log(
      `ShareLock zero-shot on 5 unseen Fashion-MNIST classes (tiny random LLM, untrained ViT): accuracy ${accuracy.toFixed(3)} (chance 0.2)`,
    );
    expect(accuracy).toBeGreaterThanOrEqual(0);
  }, 300_000);

  it('trains on a captions file, alone and with a labelled folder, skipping captions of images not in the library', async () => {
    const lines = ['bag', 'coat', 'dress'].flatMap((c) =>
      fs
        .readdirSync(path.join(ROOT, c))
        .slice(0, 4)
        .map((f) => JSON.stringify({ path: path.join(c, f), caption: `a small grey ${c} on black` })),
    );
    lines.push(JSON.stringify({ path: 'nowhere/missing.png', caption: 'an image that is not in the library' }));
    const file = path.join(work, 'captions.jsonl');
    fs.writeFileSync(file, `${lines.join('\n')}\n`);
    const { classes: _classes, ...captionsOnly } = args({ captions: { file, imagesDir: ROOT }, steps: 3 });
    const only = await call('train.sharelock', captionsOnly);
    const both = await call('train.sharelock', args({ captions: { file, imagesDir: ROOT }, steps: 3 }));
    await idle();
    const data = async (id: number) => {
      const done = await call('jobs.get', { id });
      expect(done.error?.message ?? done.state).toBe('done');
      return (await call('jobs.items', { id })).items.find((i) => i.key === 'data')?.result;
    };
    expect(await data(only.id)).toMatchObject({ pairs: 12, images: 12, texts: 3, captions: 13, captionsSkipped: 1 });
    // the 150 class prompts of the seen classes plus the 12 captions (of seen and unseen classes' images alike)
    expect(await data(both.id)).toMatchObject({ pairs: 162, texts: 8, captions: 13, captionsSkipped: 1 });
    await engine.modelsRegistered();
    const heads = (await call('text.models.list', {})).filter((m) => m.kind === 'sharelock-head');
    expect(heads.find((h) => h.name.includes(`(job ${only.id})`))?.origin).toMatch(/on 12 pairs .*\(12 captions\)/);

    // The provider that ran (the trainer's, as for every objective) is in the head's file.
    expect(exportedMetadata(engine, only.id)).toMatchObject({
      provider: 'cpu',
      steps: '3',
      trained_by: 'flaneur train.sharelock',
    });
    // A head not registered when its job ended (the engine stopped in between) is registered when the project opens.
    const project = engine.requireProject().project;
    const head = heads.find((h) => h.name.includes(`(job ${only.id})`)) as TextModelInfo;
    project.textModels.remove(head.id);
    fs.writeFileSync(pendingRegistration(path.join(project.dir, head.file)), '');
    const dir = project.dir;
    await call('project.close', {});
    await call('project.open', { path: dir });
    await expect
      .poll(async () => (await call('text.models.list', {})).filter((m) => m.name === head.name).length)
      .toBe(1);
    expect(fs.existsSync(pendingRegistration(path.join(dir, head.file)))).toBe(false);
  }, 300_000);

  it('resumes a cancelled run from its checkpoint with exactly the losses of an uninterrupted run', async () => {
    const heavy = args({ classes: { root: ROOT }, hidden: 1024, layers: 4, batch: 128, steps: 24, checkpointEvery: 4 });
    const ref = await call('train.sharelock', heavy);
    await idle();
    const reference = (await call('train.log', { jobId: ref.id })).map((r) => r.loss);
    expect(reference).toHaveLength(24);
    const job = await call('train.sharelock', heavy);
    await cancelThenResume({ engine, call }, job.id, 6, 24);
    const log = await call('train.log', { jobId: job.id });
    expect(log.map((r) => r.step)).toEqual(Array.from({ length: 24 }, (_, i) => i + 1));
    expect(log.map((r) => r.loss)).toEqual(reference);
    // half of the 10 classes drawn with the seed, recorded with the run
    const data = (await call('jobs.items', { id: job.id })).items.find((i) => i.key === 'data')?.result as {
      seen: string[];
      unseen: string[];
    };
    expect(data.seen.length + data.unseen.length).toBe(10);
    expect(data.seen.filter((c) => data.unseen.includes(c))).toEqual([]);
  }, 300_000);
});
