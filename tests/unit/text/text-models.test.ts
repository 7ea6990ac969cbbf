/**
 * The project's text models: language models registered where they are, ShareLock heads copied in, text features
 * through the cache, and a head refusing a language model or vision model it was not trained with.
 */
import fs from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { ModelInfo, TextModelInfo } from '../../../native/api/contract.js';
import { Rng } from '../../../native/base/rng.js';
import { checkPairing } from '../../../native/engine/text-models.js';
import { textModelKey } from '../../../native/text/feature-cache.js';
import { headMetadata } from '../../../native/text/head-file.js';
import { LlamaEncoder, openGgufLlama } from '../../../native/text/llama.js';
import { encodeShareLockWeights, initShareLock, shareLockConfig } from '../../../native/text/sharelock.js';
import { dispatchEngine } from '../../helpers/dispatch.js';
import { randomLlamaWeights, tinyLlamaConfig, writeTinyLlama } from '../../helpers/llama-models.js';
import { writeInitViT, writeTinyViT } from '../../helpers/models.js';
import { tmpDir } from '../../helpers/tmp.js';

const config = tinyLlamaConfig();

describe('text models of a project', () => {
  const work = tmpDir('flaneur-textmodels-');
  const { engine, call } = dispatchEngine({ jobWorkers: false });
  let gguf: string;
  let other: string;
  let vision: ModelInfo;
  let otherVision: ModelInfo;
  let llm: TextModelInfo;

  beforeAll(async () => {
    await call('project.create', { path: path.join(work, 'p') });
    gguf = writeTinyLlama(path.join(work, 'llm'), 'gguf', randomLlamaWeights(config, 3), config);
    other = writeTinyLlama(path.join(work, 'llm2'), 'safetensors', randomLlamaWeights(config, 4), config);
    vision = await call('models.import', { path: writeInitViT(path.join(work, 'vit.safetensors')) });
    otherVision = await call('models.import', { path: writeTinyViT(7) });
  });
  afterAll(() => engine.close());

  it('registers a GGUF language model where it is, saying its size and the memory it needs', async () => {
    const r = await call('text.models.import', { path: gguf });
    llm = r;
    expect(r.existed).toBe(false);
    expect(r.kind).toBe('llm');
    expect(r.file).toBe(gguf); // not copied
    expect(r.key).toBe(textModelKey(gguf));
    expect(r.name).toBe('tiny-llama-test'); // GGUF's general.name
    expect(r.llm).toMatchObject({ format: 'gguf', arch: 'llama', dim: 32, layers: 2, fits: true });
    expect(r.summary).toMatch(/parameters .* needs about .* of memory/);
    expect(r.head).toBeNull();
    const again = await call('text.models.import', { path: gguf });
    expect(again).toMatchObject({ id: r.id, existed: true });
    expect((await call('text.models.list', {})).map((m) => m.id)).toEqual([r.id]);
  });

  it('encodes texts once and answers the same features from the cache afterwards', async () => {
    const texts = ['a photo of a dog', 'a photo of a cat', 'a photo of a dog'];
    const first = await call('text.features', { model: llm.id, texts });
    expect(first).toMatchObject({ model: llm.id, dim: 32, computed: 2 });
    const direct = await LlamaEncoder.load(openGgufLlama(gguf), { runtime: { provider: 'cpu', threads: 1 } });
    const want = await direct.encodeTexts(texts);
    await direct.close();
    for (let i = 0; i < texts.length; i++) {
      const got = first.features[i] as number[];
      const w = want[i] as Float32Array;
      expect(got.length).toBe(32);
      for (let k = 0; k < 32; k++) expect(got[k]).toBeCloseTo(w[k] as number, 5);
    }
    const second = await call('text.features', { model: llm.id, texts, vectors: false });
    expect(second).toMatchObject({ computed: 0, features: [] });
  });

  it('imports a ShareLock head into the project and says what it pairs with', async () => {
    const c = shareLockConfig(32, 192, { hidden: 16, layers: 2 });
    const weights = { config: c, tensors: new Map() as Map<string, Float32Array> };
    const init = initShareLock(c, new Rng(5));
    for (const [k, v] of [...init.params, ...init.buffers]) weights.tensors.set(k, v);
    const file = path.join(work, 'head.safetensors');
    fs.writeFileSync(
      file,
      encodeShareLockWeights(
        weights,
        headMetadata({
          textModel: { key: llm.key, name: llm.name, dim: 32 },
          vision: {
            modelId: vision.id,
            sha256: vision.sha256,
            name: vision.name,
            architecture: { family: 'dino', patchSize: 16, dim: 192, registers: 0 },
          },
          origin: 'trained in a test',
        }),
      ),
    );
    const head = await call('text.models.import', { path: file, name: 'test head' });
    expect(head).toMatchObject({
      kind: 'sharelock-head',
      name: 'test head',
      existed: false,
      origin: 'trained in a test',
    });
    expect(head.head?.config).toEqual({ textDim: 32, visionDim: 192, hidden: 16, layers: 2, dropout: 0.2 });
    expect(head.head?.textModel.key).toBe(llm.key);
    expect(head.head?.vision.sha256).toBe(vision.sha256);
    expect(fs.existsSync(path.join(work, 'p', head.file))).toBe(true);
    expect(head.file).toMatch(/^models[/\\]text[/\\][0-9a-f]{64}\.safetensors$/);

    const project = engine.requireProject().project;
    expect(() => checkPairing(project, head.id, llm.id, vision.id)).not.toThrow();
    const llm2 = await call('text.models.import', { path: other });
    expect(llm2.llm?.format).toBe('safetensors');
    expect(() => checkPairing(project, head.id, llm2.id, null)).toThrow(
      /was trained on the features of tiny-llama-test .* gives other features/,
    );
    expect(() => checkPairing(project, head.id, null, otherVision.id)).toThrow(
      /was trained against the image features of .* places images elsewhere/,
    );
  });

  it('encodes a long list as a job with progress; a cancelled one keeps what it encoded and a resume does the rest', async () => {
    const project = engine.requireProject().project;
    const texts = Array.from({ length: 3000 }, (_, i) => `caption ${i} of a long list`);
    const job = await call('text.features.start', { model: llm.id, texts });
    expect(job).toMatchObject({ kind: 'text.features', title: 'Text features of 3000 texts' });
    const cached = () => project.textFeatures.get(llm.key, texts).size;
    while (cached() < 64) await new Promise((r) => setTimeout(r, 5));
    await call('jobs.cancel', { id: job.id });
    await engine.requireProject().runner.idle();
    expect((await call('jobs.get', { id: job.id })).state).toBe('cancelled');
    const kept = cached();
    expect(kept).toBeGreaterThanOrEqual(64);
    expect(kept).toBeLessThan(3000);
    await call('jobs.resume', { id: job.id });
    await engine.requireProject().runner.idle();
    const done = await call('jobs.get', { id: job.id });
    expect(done).toMatchObject({ state: 'done', progress: { done: 3000, total: 3000 } });
    const item = (await call('jobs.items', { id: job.id })).items.find((i) => i.key === 'features');
    expect(item?.result).toEqual({ model: llm.id, texts: 3000, computed: 3000 - kept });
    // the small call reads them all from the cache now
    expect(await call('text.features', { model: llm.id, texts: texts.slice(0, 5), vectors: false })).toMatchObject({
      computed: 0,
    });
  }, 300_000);

  it('removes a head with its copy and a language model without its file, refusing while a job uses it', async () => {
    const project = engine.requireProject().project;
    const [first, head] = (await call('text.models.list', {})) as TextModelInfo[];
    if (!first || !head || head.kind !== 'sharelock-head') throw new Error('the earlier tests registered none');
    const copy = path.join(work, 'p', head.file);
    expect(fs.existsSync(copy)).toBe(true);
    const left = await call('text.models.remove', { id: head.id });
    expect(left.map((m) => m.id)).not.toContain(head.id);
    expect(fs.existsSync(copy)).toBe(false);
    await expect(call('text.models.remove', { id: head.id })).rejects.toThrow(/No language model or ShareLock head/);

    // a queued ShareLock training reads the language model: it stays until the job has ended
    const job = project.jobs.insert({
      kind: 'train.sharelock',
      title: 'ShareLock head',
      args: { textModel: first.id, runId: 1 },
      progress: { phase: 'queued', done: 0, total: null, unit: 'steps', rate: null, etaS: null },
    });
    await expect(call('text.models.remove', { id: first.id })).rejects.toThrow(
      new RegExp(`"${first.name}" is in use by job #${job.id} .*cancel it, then remove it`),
    );
    expect((await call('text.models.list', {})).map((m) => m.id)).toContain(first.id);
    project.jobs.setState(job.id, 'cancelled');
    // the features test loaded it; removing it closes it now, not when another model is next used
    expect(engine.textEncoders.heldKey()).toBe(first.key);
    const after = await call('text.models.remove', { id: first.id });
    expect(after.map((m) => m.id)).not.toContain(first.id);
    expect(engine.textEncoders.heldKey()).toBeNull();
    expect(fs.existsSync(first.file)).toBe(true); // the user's file is theirs
  });

  it('refuses a file that is neither a language model nor a head, and a model without a tokenizer', async () => {
    const txt = path.join(work, 'notes.txt');
    fs.writeFileSync(txt, 'hello');
    await expect(call('text.models.import', { path: txt })).rejects.toThrow(
      /neither a language model .* nor a ShareLock head/,
    );
    const bare = writeTinyLlama(path.join(work, 'bare'), 'safetensors', randomLlamaWeights(config, 5), config, {
      tokenizer: 'none',
    });
    await expect(call('text.models.import', { path: bare })).rejects.toThrow(/has no tokenizer Flaneur can read/);
  });
});

describe('text models in the task worker', () => {
  const work = tmpDir('flaneur-textmodels-worker-');
  const { engine, call } = dispatchEngine();
  afterAll(() => engine.close());

  it('closes the language model the task worker keeps loaded when it is forgotten or removed', async () => {
    await call('project.create', { path: path.join(work, 'p') });
    const llm = await call('text.models.import', {
      path: writeTinyLlama(path.join(work, 'llm'), 'gguf', randomLlamaWeights(config, 3), config),
    });
    // encoded in the task worker, which keeps the model loaded for the next call
    expect((await call('text.features', { model: llm.id, texts: ['a photo of a dog'] })).computed).toBe(1);
    expect(engine.textEncoders.heldKey()).toBeNull(); // not in the engine's own process
    // what `text.models.remove` runs after removing it: the worker's copy is closed (and there is none after)
    expect(await engine.command('text.models.forget', { key: llm.key })).toEqual({ released: 1 });
    expect(await engine.command('text.models.forget', { key: llm.key })).toEqual({ released: 0 });
    // loaded again, then removed: the removal closed it
    expect((await call('text.features', { model: llm.id, texts: ['a photo of a cat'] })).computed).toBe(1);
    await call('text.models.remove', { id: llm.id });
    expect(await engine.command('text.models.forget', { key: llm.key })).toEqual({ released: 0 });
  }, 120_000);
});
